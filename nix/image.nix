# The one OCI image of the product, as upstream's: the operator Deployment runs `fio-operator run`
# from it and the scan DaemonSet runs `fio-operator daemon` from the same image
# (RELATED_IMAGE_OPERATOR); `fio-scanner` is there for hands-on use on a node.
# Its configuration (name, entrypoint, user, labels, directories) is nix/image.json, which
# scripts/image.py (the build without Nix) reads too, so the two cannot drift.
# Reproducible: dockerTools fixes `created` and every mtime to the epoch and orders layers by
# store path, so the same inputs give the same image digest.
{
  lib,
  dockerTools,
  fio,
  tag ? fio.version,
}:

let
  spec = lib.importJSON ./image.json;
in
dockerTools.buildLayeredImage {
  inherit (spec) name;
  inherit tag;
  # Static binaries: the image is /bin/fio-operator, /bin/fio-scanner and the directories below.
  contents = [ fio ];
  extraCommands = lib.concatMapStrings (d: ''
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
