# The one OCI image of the product, as upstream's: the operator Deployment runs `fio-operator run`
# from it and the scan DaemonSet runs `fio-operator daemon` from the same image
# (RELATED_IMAGE_OPERATOR); `fio-scanner` is there for hands-on use on a node.
#
# The layout and configuration are scripts/image.py's (the build without Nix), both read from
# nix/image.json: the static binaries as regular files in /bin (copied out of the store, not
# linked into it: no /nix/store path in the image), the directories with their modes, the
# entrypoint, user, environment and labels, `created` at the epoch. The two builders give the
# same layout and configuration; their digests differ because their toolchains do (nixpkgs'
# Rust and musl here, rustup's there).
#
# Reproducible: dockerTools fixes every mtime, and `created` is set, so the same inputs give the
# same image. The result is a docker-archive tarball (`docker load`, `ctr images import`,
# `skopeo copy docker-archive:FILE ...`); scripts/image.py writes an OCI archive.
{
  lib,
  dockerTools,
  fio,
  tag ? fio.version,
}:

let
  spec = lib.importJSON ./image.json;
  copyBinary = b: ''
    cp ${fio}/bin/${b} ${spec.binDir}/${b}
    chmod 0755 ${spec.binDir}/${b}
  '';
in
dockerTools.buildLayeredImage {
  inherit (spec) name;
  inherit tag;
  created = spec.created;
  # The files' times too, as scripts/image.py writes them.
  mtime = spec.created;
  # Nothing from the store: the customisation layer below is the whole image (without this,
  # any store path a copied binary happens to name would be added as a layer).
  contents = [ ];
  includeStorePaths = false;
  extraCommands =
    ''
      mkdir -p ${spec.binDir}
    ''
    + lib.concatMapStrings copyBinary spec.binaries
    + lib.concatMapStrings (d: ''
      mkdir -p ${d.path}
      chmod ${d.mode} ${d.path}
    '') spec.directories;
  config = {
    Entrypoint = spec.entrypoint;
    Cmd = spec.cmd;
    Env = spec.env;
    # Numeric and non-root, for the Deployment's runAsNonRoot; the DaemonSet sets runAsUser 0.
    User = spec.user;
    Labels = spec.labels // {
      "org.opencontainers.image.version" = fio.version;
    };
  };
}
