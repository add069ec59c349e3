# The one OCI image of the product, as upstream's: the operator Deployment runs `fio-operator run`
# from it and the scan DaemonSet runs `fio-operator daemon` from the same image
# (RELATED_IMAGE_OPERATOR); `fio-scanner` is there for hands-on use on a node.
# Reproducible: dockerTools fixes `created` and every mtime to the epoch and orders layers by
# store path, so the same inputs give the same image digest.
{ dockerTools, fio, tag ? fio.version }:

dockerTools.buildLayeredImage {
  name = "quay.io/file-integrity-operator/file-integrity-operator";
  inherit tag;
  # Static binaries: the image is /bin/fio-operator, /bin/fio-scanner and an empty /tmp.
  contents = [ fio ];
  extraCommands = ''
    mkdir -p tmp
    chmod 1777 tmp
  '';
  config = {
    Entrypoint = [ "/bin/fio-operator" ];
    Cmd = [ "run" ];
    Env = [ "PATH=/bin" ];
    # Numeric and non-root, for the Deployment's runAsNonRoot; the DaemonSet sets runAsUser 0.
    User = "65532:65532";
    Labels = {
      "org.opencontainers.image.title" = "file-integrity-operator";
      "org.opencontainers.image.version" = fio.version;
      "org.opencontainers.image.licenses" = "Apache-2.0";
    };
  };
}
