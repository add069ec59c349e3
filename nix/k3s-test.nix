# NixOS VM test: a two-node k3s cluster (server + agent), the product installed from deploy/ with
# the image built by this flake (loaded into each node's containerd, no registry), the sample
# FileIntegrity over both nodes. Checks what an administrator would: phase Active and every node
# Succeeded; the daemon confined as designed (capabilities, no_new_privs, seccomp) in a pod that
# is not privileged; a changed file on the agent -> Failed, re-init -> Succeeded with a backup;
# a MachineConfig-style update of the agent pauses and re-initialises it once.
# Needs KVM (system feature "kvm" / "nixos-test"); not run on the development machine (see NOTES.md).
{ pkgs, image }:

let
  ns = "openshift-file-integrity";
  fi = "worker-fileintegrity";
  # The image under the tag nix/vm-test/kustomization.yaml installs.
  e2eImage = image.override { tag = "e2e"; };
  # deploy/ through nix/vm-test/kustomization.yaml (the real-node tests install the same file).
  # kustomize refuses an absolute resource root: the store path of deploy/ is linked into the
  # kustomization's directory under the relative name the file gives, `deploy`.
  install = pkgs.runCommand "fio-install" { } ''
    mkdir -p $out
    cp ${./vm-test/kustomization.yaml} $out/kustomization.yaml
    ln -s ${../deploy} $out/deploy
  '';
  common = { config, ... }: {
    virtualisation = {
      memorySize = 2048;
      diskSize = 4096;
    };
    networking.firewall.enable = false;
    services.k3s = {
      enable = true;
      tokenFile = pkgs.writeText "k3s-token" "fio-vm-test";
      nodeIP = config.networking.primaryIPAddress;
      # Offline: the pause image and k3s's own images from the airgap bundle, ours from the flake.
      images = [ pkgs.k3s.airgap-images e2eImage ];
      extraFlags = [ "--flannel-iface eth1" ];
    };
  };
in
pkgs.testers.runNixOSTest {
  name = "fio-k3s-two-nodes";
  nodes = {
    server = { pkgs, ... }: {
      imports = [ common ];
      services.k3s = {
        role = "server";
        clusterInit = true;
        disable = [ "coredns" "local-storage" "metrics-server" "servicelb" "traefik" ];
      };
      environment.systemPackages = [ pkgs.kubectl pkgs.jq ];
      environment.sessionVariables.KUBECONFIG = "/etc/rancher/k3s/k3s.yaml";
    };
    agent = { nodes, ... }: {
      imports = [ common ];
      services.k3s = {
        role = "agent";
        serverAddr = "https://${nodes.server.networking.primaryIPAddress}:6443";
      };
    };
  };

  # The script is a file of its own (linted by tests/deploy_manifests.rs); the values it takes
  # from Nix come first.
  testScript = ''
    NS = "${ns}"
    FI = "${fi}"
    INSTALL = "${install}"
    SAMPLE = "${../deploy/samples/worker-fileintegrity.yaml}"
  '' + builtins.readFile ./vm-test/test_script.py;
}
