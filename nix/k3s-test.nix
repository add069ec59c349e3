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
  # deploy/ with the image this flake built (kustomize reads the directory from the store).
  install = pkgs.runCommand "fio-install" { } ''
    mkdir -p $out
    cat > $out/kustomization.yaml <<EOF
    apiVersion: kustomize.config.k8s.io/v1beta1
    kind: Kustomization
    resources:
      - ${../deploy}
    images:
      - name: quay.io/file-integrity-operator/file-integrity-operator
        newTag: "${image.imageTag}"
    EOF
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
      images = [ pkgs.k3s.airgap-images image ];
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

  testScript = ''
    import json

    def kubectl(cmd):
        return server.succeed(f"kubectl {cmd}")

    def statuses():
        out = kubectl("-n ${ns} get fileintegritynodestatuses -o json")
        return {s["nodeName"]: s["lastResult"] for s in json.loads(out)["items"]}

    def wait_condition(node, condition):
        server.wait_until_succeeds(
            "kubectl -n ${ns} get fileintegritynodestatuses -o json | "
            f"jq -e '.items[] | select(.nodeName == \"{node}\") | .lastResult.condition == \"{condition}\"'",
            timeout=300,
        )

    start_all()
    server.wait_for_unit("k3s")
    agent.wait_for_unit("k3s")
    server.wait_until_succeeds("kubectl get node agent", timeout=300)
    server.wait_until_succeeds("kubectl wait --for=condition=Ready node --all --timeout=10s", timeout=300)
    for node in ["server", "agent"]:
        kubectl(f"label node {node} node-role.kubernetes.io/worker= --overwrite")

    with subtest("install from deploy/ and the sample FileIntegrity"):
        server.succeed(
            "kubectl kustomize --load-restrictor LoadRestrictionsNone ${install} "
            "| kubectl apply --server-side -f -"
        )
        server.wait_until_succeeds("kubectl -n ${ns} rollout status deploy/file-integrity-operator --timeout=10s", timeout=300)
        kubectl("apply -f ${../deploy/samples/worker-fileintegrity.yaml}")
        kubectl("-n ${ns} patch fileintegrity ${fi} --type merge -p '{\"spec\":{\"config\":{\"gracePeriod\":15}}}'")
        server.wait_until_succeeds(
            "kubectl -n ${ns} get fileintegrity ${fi} -o jsonpath='{.status.phase}' | grep -qx Active",
            timeout=600,
        )
        wait_condition("server", "Succeeded")
        wait_condition("agent", "Succeeded")

    with subtest("the daemon pod is not privileged and the daemon is confined"):
        pod = json.loads(kubectl("-n ${ns} get pods -l app=aide-${fi} -o json"))["items"][0]
        sc = pod["spec"]["containers"][0]["securityContext"]
        assert not sc.get("privileged", False), sc
        assert sorted(sc["capabilities"]["add"]) == ["DAC_READ_SEARCH", "SETPCAP", "SYS_ADMIN"], sc
        pid = agent.succeed("pgrep -o -f 'fio-operator daemon'").strip()
        status = agent.succeed(f"cat /proc/{pid}/status")
        assert "CapEff:\t0000000000000004" in status, status
        assert "CapBnd:\t0000000000000004" in status, status
        assert "NoNewPrivs:\t1" in status, status
        assert "Seccomp:\t2" in status, status
        agent.succeed("test -s /etc/kubernetes/aide.db.gz")

    with subtest("a changed file on the agent fails it; re-init recovers it"):
        agent.succeed("echo '# changed by the test' >> /etc/hosts")
        wait_condition("agent", "Failed")
        assert statuses()["server"]["condition"] == "Succeeded"
        kubectl("-n ${ns} annotate fileintegrity ${fi} file-integrity.openshift.io/re-init=agent")
        wait_condition("agent", "Succeeded")
        agent.succeed("ls /etc/kubernetes/aide.db.gz.backup-*")

    with subtest("a MachineConfig update pauses the agent and re-initialises it once"):
        backups = agent.succeed("ls /etc/kubernetes/ | grep -c '^aide.db.gz.backup-'").strip()
        kubectl(
            "annotate node agent --overwrite "
            "machineconfiguration.openshift.io/currentConfig=rendered-1 "
            "machineconfiguration.openshift.io/desiredConfig=rendered-2 "
            "machineconfiguration.openshift.io/state=Working"
        )
        server.wait_until_succeeds(
            "kubectl -n ${ns} get fileintegrity ${fi} "
            "-o jsonpath='{.metadata.annotations.file-integrity\\.openshift\\.io/holdoff}' | grep -qx agent",
            timeout=120,
        )
        agent.succeed("echo '# changed by the update' >> /etc/hosts")
        kubectl(
            "annotate node agent --overwrite "
            "machineconfiguration.openshift.io/currentConfig=rendered-2 "
            "machineconfiguration.openshift.io/state=Done"
        )
        agent.wait_until_succeeds(
            f"test $(ls /etc/kubernetes/ | grep -c '^aide.db.gz.backup-') -eq {int(backups) + 1}",
            timeout=300,
        )
        wait_condition("agent", "Succeeded")
  '';
}
