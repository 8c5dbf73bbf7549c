{
  description = "kiln: Docker multi-stage builds, the Nix way";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = nixpkgs.legacyPackages.${system};
        kiln = pkgs.rustPlatform.buildRustPackage {
          pname = "kiln";
          version = "0.1.0";
          src = ./.;
          cargoLock.lockFile = ./Cargo.lock;
          # The end-to-end tests need a Docker engine and host toolchains;
          # the Nix build sandbox has neither.
          doCheck = false;
          meta.mainProgram = "kiln";
        };
        # `nix run .#hello-scratch` builds that example (the Go examples use
        # the host's Go under /usr/lib/go-VERSION: Debian's golang-go).
        examples = [ "hello-c" "hello-builder" "hello-scratch" "go-module" "http-sqlite" "size-compare" ];
        exampleApp = name: flake-utils.lib.mkApp {
          drv = pkgs.writeShellApplication {
            name = "kiln-example-${name}";
            runtimeInputs = [ kiln ];
            text = ''
              cd ${./examples}/${name}
              exec kiln build "$@"
            '';
          };
        };
      in
      {
        packages.default = kiln;
        apps = pkgs.lib.genAttrs examples exampleApp // {
          default = flake-utils.lib.mkApp { drv = kiln; };
        };
        devShells.default = pkgs.mkShell {
          inputsFrom = [ kiln ];
          packages = with pkgs; [
            cargo rustc rustfmt clippy
            docker podman skopeo go busybox hyperfine b3sum
          ];
        };
      });
}
