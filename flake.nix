{
  description = "File integrity operator for Kubernetes in Rust: fio-operator, fio-scanner, their OCI image";

  # One input, locked in flake.lock to a nixos-25.11 revision (README, "Nix": which one and how
  # to move it).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs:
        let
          # Static (musl): the binaries depend on nothing, the image is two files.
          fio = pkgs.pkgsStatic.callPackage ./nix/package.nix { };
        in
        {
          inherit fio;
          default = fio;
          image = pkgs.callPackage ./nix/image.nix { inherit fio; };
        });

      checks = forAllSystems (pkgs:
        let
          inherit (self.packages.${pkgs.stdenv.hostPlatform.system}) fio image;
          # The crate's own gates, with the same vendored dependencies as the package, built
          # natively (clippy must match the compiler; the static package cross-compiles to musl).
          native = pkgs.callPackage ./nix/package.nix { };
          cargoCheck = name: command: native.overrideAttrs (old: {
            pname = "${old.pname}-${name}";
            nativeBuildInputs = old.nativeBuildInputs ++ [ pkgs.clippy pkgs.rustfmt ];
            buildPhase = ''
              runHook preBuild
              ${command}
              runHook postBuild
            '';
            installPhase = "touch $out";
            doCheck = false;
          });
        in
        {
          inherit fio image;
          clippy = cargoCheck "clippy" "cargo clippy --offline --release --all-targets -- -D warnings";
          fmt = cargoCheck "fmt" "cargo fmt --check";
        }
        // pkgs.lib.optionalAttrs (pkgs.stdenv.hostPlatform.system == "x86_64-linux") {
          k3s-two-nodes = pkgs.callPackage ./nix/k3s-test.nix { inherit image; };
        });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.fio ];
          packages = [ pkgs.clippy pkgs.rustfmt pkgs.cargo-nextest pkgs.aide pkgs.kubectl ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
