# fio-operator and fio-scanner: the workspace's two binaries (the root package; the library
# crates under src/ come with them). Built from Cargo.lock alone (every
# dependency is a crates.io crate, so cargoLock needs no extra hashes), with the Rust toolchain of
# the nixpkgs the flake pins. The flake calls this with pkgsStatic: a static musl build, so the
# image holds the two binaries and nothing else (no libc, no OpenSSL: TLS is rustls).
{ lib, rustPlatform }:

let
  toml = lib.importTOML ../Cargo.toml;
  manifest = toml.package;
  # The version is the workspace's (`version.workspace = true` in the package).
  inherit (toml.workspace.package) version;
in
rustPlatform.buildRustPackage {
  pname = manifest.name;
  inherit version;

  # Only what cargo reads: the sources, the declared test and bench targets (cargo refuses a
  # manifest whose targets are missing), and deploy/monitoring (include_str! in the operator).
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../tests
      ../benches
      ../deploy
    ];
  };
  cargoLock.lockFile = ../Cargo.lock;

  # Cargo.toml's profile of what ships (thin LTO), as scripts/image.py builds.
  buildType = "dist";
  cargoBuildFlags = [ "--bins" ];
  # The test suites need root, Debian's aide and a Kubernetes control plane: they run in
  # .ci/run; the flake's checks run the scanner's suites and the k3s VM test instead.
  doCheck = false;

  meta = {
    description = manifest.description;
    license = lib.licenses.asl20;
    mainProgram = "fio-operator";
    platforms = lib.platforms.linux;
  };
}
