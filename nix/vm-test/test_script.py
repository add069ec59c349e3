# The NixOS VM test's script (nix/k3s-test.nix prepends NS, FI, INSTALL and SAMPLE; the test
# driver provides start_all, subtest and the machines `server` and `agent`). Linted by
# tests/deploy_manifests.rs with pyflakes, with the same names declared.
import json


def kubectl(cmd):
    return server.succeed(f"kubectl {cmd}")


def statuses():
    out = kubectl(f"-n {NS} get fileintegritynodestatuses -o json")
    return {s["nodeName"]: s["lastResult"] for s in json.loads(out)["items"]}


def wait_condition(node, condition):
    server.wait_until_succeeds(
        f"kubectl -n {NS} get fileintegritynodestatuses -o json | "
        f"jq -e '.items[] | select(.nodeName == \"{node}\") | .lastResult.condition == \"{condition}\"'",
        timeout=300,
    )


def backups():
    return int(agent.succeed("ls /etc/kubernetes/ | grep -c '^aide.db.gz.backup-' || true").strip())


start_all()
server.wait_for_unit("k3s")
agent.wait_for_unit("k3s")
server.wait_until_succeeds("kubectl get node agent", timeout=300)
server.wait_until_succeeds("kubectl wait --for=condition=Ready node --all --timeout=10s", timeout=300)
for node in ["server", "agent"]:
    kubectl(f"label node {node} node-role.kubernetes.io/worker= --overwrite")

with subtest("install from deploy/ and the sample FileIntegrity"):
    rendered = server.succeed(f"kubectl kustomize --load-restrictor LoadRestrictionsNone {INSTALL}")
    assert "file-integrity-operator:e2e" in rendered, "the install does not use the e2e image"
    server.succeed(
        f"kubectl kustomize --load-restrictor LoadRestrictionsNone {INSTALL} "
        "| kubectl apply --server-side -f -"
    )
    server.wait_until_succeeds(
        f"kubectl -n {NS} rollout status deploy/file-integrity-operator --timeout=10s", timeout=300
    )
    # only on the control plane (k3s labels its server node-role.kubernetes.io/control-plane)
    node = kubectl(f"-n {NS} get pods -l name=file-integrity-operator -o jsonpath='{{.items[0].spec.nodeName}}'")
    assert node.strip() == "server", node
    kubectl(f"apply -f {SAMPLE}")
    kubectl(f"-n {NS} patch fileintegrity {FI} --type merge -p '{{\"spec\":{{\"config\":{{\"gracePeriod\":15}}}}}}'")
    server.wait_until_succeeds(
        f"kubectl -n {NS} get fileintegrity {FI} -o jsonpath='{{.status.phase}}' | grep -qx Active",
        timeout=600,
    )
    wait_condition("server", "Succeeded")
    wait_condition("agent", "Succeeded")

with subtest("the daemon pod is not privileged and the daemon is confined"):
    pod = json.loads(kubectl(f"-n {NS} get pods -l app=aide-{FI} -o json"))["items"][0]
    sc = pod["spec"]["containers"][0]["securityContext"]
    assert not sc.get("privileged", False), sc
    assert sorted(sc["capabilities"]["add"]) == ["DAC_READ_SEARCH", "SETPCAP", "SYS_ADMIN"], sc
    pid = agent.succeed("pgrep -o -f 'fio-operator daemon --owner'").strip()
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
    kubectl(f"-n {NS} annotate fileintegrity {FI} file-integrity.openshift.io/re-init=agent")
    wait_condition("agent", "Succeeded")
    agent.succeed("ls /etc/kubernetes/aide.db.gz.backup-*")

# The machine-config operator's MachineConfigPool API (as tests/fixtures/machineconfigpool-crd.yaml)
# and a pool for the agent that has rolled rendered-1 out: the operator re-initialises a node
# after an update only when its pool confirms it.
POOL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "machineconfigpools.machineconfiguration.openshift.io"},
    "spec": {
        "group": "machineconfiguration.openshift.io",
        "scope": "Cluster",
        "names": {"kind": "MachineConfigPool", "listKind": "MachineConfigPoolList",
                  "plural": "machineconfigpools", "singular": "machineconfigpool"},
        "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                      "schema": {"openAPIV3Schema": {"type": "object",
                                                     "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}
POOL = {
    "apiVersion": "machineconfiguration.openshift.io/v1",
    "kind": "MachineConfigPool",
    "metadata": {"name": "vm-agent"},
    "spec": {"nodeSelector": {"matchLabels": {"kubernetes.io/hostname": "agent"}},
             "configuration": {"name": "rendered-2"}},
}

with subtest("a MachineConfig update pauses the agent and re-initialises it once"):
    server.succeed(f"echo '{json.dumps(POOL_CRD)}' | kubectl apply -f -")
    kubectl("wait --for=condition=Established crd/machineconfigpools.machineconfiguration.openshift.io --timeout=60s")
    server.succeed(f"echo '{json.dumps(POOL)}' | kubectl apply -f -")
    kubectl(
        "patch machineconfigpool vm-agent --subresource=status --type=merge "
        "-p '{\"status\":{\"configuration\":{\"name\":\"rendered-1\"}}}'"
    )
    before = backups()
    kubectl(
        "annotate node agent --overwrite "
        "machineconfiguration.openshift.io/currentConfig=rendered-1 "
        "machineconfiguration.openshift.io/desiredConfig=rendered-2 "
        "machineconfiguration.openshift.io/state=Working"
    )
    # the pause is recorded in the status (and the node added to the holdoff annotation)
    server.wait_until_succeeds(
        f"kubectl -n {NS} get fileintegrity {FI} -o json | jq -e '.status.nodePauses.agent'",
        timeout=120,
    )
    agent.succeed("echo '# changed by the update' >> /etc/hosts")
    kubectl(
        "annotate node agent --overwrite "
        "machineconfiguration.openshift.io/currentConfig=rendered-2 "
        "machineconfiguration.openshift.io/state=Done"
    )
    agent.wait_until_succeeds(
        f"test $(ls /etc/kubernetes/ | grep -c '^aide.db.gz.backup-') -eq {before + 1}",
        timeout=300,
    )
    wait_condition("agent", "Succeeded")
