#!/usr/bin/env bash
# The local demo (README's main command): the product as users run it, on a real Kubernetes
# control plane with real nodes.
#
#   ./scripts/demo.sh
#
# 1. builds (once, cached) the control plane and the kubelet from Go modules, and the product's
#    image without Nix (scripts/image.py: static fio-operator + fio-scanner, reproducible);
# 2. starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler on loopback, a real
#    control-plane kubelet node real-0 (where the operator runs) and 2 real worker nodes
#    real-1, real-2 (scripts/testenv.sh nodes --real: containerd + runc, a mount
#    namespace per node whose / is $FIO_DEMO_DIR/testenv/real/real-N/root), the image imported;
# 3. installs the operator from deploy/ (through nix/vm-test: the image tag `e2e`): the operator
#    runs as a pod of its Deployment, the daemons as pods of the DaemonSet aide-<name>;
# 4. creates the sample FileIntegrity (deploy/samples) with a smaller AIDE configuration (the
#    default one hashes all of /usr, here the host's, on every scan) and gracePeriod 30 s,
#    prints the commands to try (the seed's, kubectl logs included), and waits. Ctrl-C stops
#    everything (pods, nodes, control plane).
#
# Needs root (namespaces, cgroups, bridges) and Debian's containerd, runc,
# containernetworking-plugins and socat (.ci/run installs them).
# Environment: FIO_DEMO_DIR (default /tmp/fio-demo), FIO_DEMO_NODES (2), FIO_DEMO_GRACE_PERIOD
# (30). The demo's control plane uses its own ports (apiserver 17443; FIO_DEMO_APISERVER_PORT
# ...) and network number 1 (Service 10.0.1.0/24, nodes 10.251.N.0/24), so that it never touches
# the tests' (scripts/testenv.sh, /tmp/fio-testenv, port 16443, network 0).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DEMO=$(realpath -m "${FIO_DEMO_DIR:-/tmp/fio-demo}")
NODES=${FIO_DEMO_NODES:-2}
GRACE=${FIO_DEMO_GRACE_PERIOD:-30}
NS=openshift-file-integrity
SAMPLE=deploy/samples/worker-fileintegrity.yaml

export FIO_TESTENV_DIR=$DEMO/testenv
export FIO_TESTENV_APISERVER_PORT=${FIO_DEMO_APISERVER_PORT:-17443}
export FIO_TESTENV_ETCD_PORT=${FIO_DEMO_ETCD_PORT:-13379}
export FIO_TESTENV_ETCD_PEER_PORT=${FIO_DEMO_ETCD_PEER_PORT:-13380}
export FIO_TESTENV_SCHEDULER_PORT=${FIO_DEMO_SCHEDULER_PORT:-17259}
export FIO_TESTENV_KWOK_PORT=${FIO_DEMO_KWOK_PORT:-17080}
export FIO_TESTENV_NET=1

if [[ -t 2 ]]; then B=$'\033[1m' N=$'\033[0m'; else B= N=; fi
say() { printf '%s[demo %s]%s %s\n' "$B" "$(date +%H:%M:%S)" "$N" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[[ $NODES =~ ^[1-9]$ ]] || die "FIO_DEMO_NODES must be 1 to 9"
[[ $GRACE =~ ^[0-9]+$ ]] || die "FIO_DEMO_GRACE_PERIOD must be a number of seconds"
[[ $(id -u) -eq 0 ]] || die "run as root: real nodes need namespaces, cgroups and bridges"

# The demo's AIDE configuration: upstream's default without /usr and /boot (a real node here
# shares the host's /usr, 5 GB to hash on every scan). The operator prepares it as upstream's.
AIDE_CONF='@@define DBDIR /hostroot/etc/kubernetes
@@define LOGDIR /hostroot/etc/kubernetes
database=file:@@{DBDIR}/aide.db.gz
database_out=file:@@{DBDIR}/aide.db.gz.new
gzip_dbout=yes
report_url=file:@@{LOGDIR}/aide.log.new
report_url=stdout
PERMS = p+u+g+acl+selinux+xattrs
CONTENT_EX = sha512+ftype+p+u+g+n+acl+selinux+xattrs
/etc/ CONTENT_EX
/root/\..* PERMS
/root/ CONTENT_EX
/opt/ CONTENT_EX'

mkdir -p "$DEMO"
say "building the control plane and the kubelet (cached after the first time; 12-20 min cold)"
scripts/testenv.sh build
say "building the product image (scripts/image.py product --tag e2e: static binaries)"
python3 scripts/image.py product --tag e2e
BIN=$(scripts/testenv.sh bin)
export PATH=$BIN:$PATH   # kubectl of the control plane's version
export KUBECONFIG=$FIO_TESTENV_DIR/admin.kubeconfig

cleanup() {
    local rc=$?
    trap - INT TERM EXIT
    echo >&2
    say "stopping the pods, the nodes and the control plane"
    scripts/testenv.sh down || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A fresh cluster each time (a control plane left by a killed demo is stopped; `up` wipes etcd).
scripts/testenv.sh down >/dev/null 2>&1 || true
scripts/testenv.sh up >/dev/null
FIO_TESTENV_REAL_IMAGES=$ROOT/target/image/file-integrity-operator.oci.tar \
    scripts/testenv.sh nodes --real "$NODES"
REAL=$FIO_TESTENV_DIR/real

say "installing the operator: kubectl apply --server-side -k nix/vm-test (deploy/, image tag e2e)"
kubectl apply --server-side -k nix/vm-test >/dev/null
kubectl -n "$NS" rollout status deploy/file-integrity-operator --timeout=180s >/dev/null
say "the operator runs on the control-plane node $(kubectl -n "$NS" get pods -lname=file-integrity-operator -o jsonpath='{.items[0].spec.nodeName}')"

# OpenShift's MachineConfigPool API (its CRD, as the tests install it) and a pool for real-1
# that has rolled rendered-1 out: a node update's changes are accepted per path only when
# its pool confirms it.
kubectl apply --server-side -f tests/fixtures/machineconfigpool-crd.yaml >/dev/null
kubectl wait --for=condition=Established crd/machineconfigpools.machineconfiguration.openshift.io --timeout=60s >/dev/null
kubectl apply -f - >/dev/null <<'POOL'
{"apiVersion": "machineconfiguration.openshift.io/v1", "kind": "MachineConfigPool",
 "metadata": {"name": "demo-real-1"},
 "spec": {"nodeSelector": {"matchLabels": {"kubernetes.io/hostname": "real-1"}},
          "configuration": {"name": "rendered-1"}}}
POOL
kubectl patch machineconfigpool demo-real-1 --subresource=status --type=merge \
    -p '{"status":{"configuration":{"name":"rendered-1"}}}' >/dev/null

FI=$(kubectl patch --local -f "$SAMPLE" --type=merge -p '{}' -o jsonpath='{.metadata.name}')
DS=aide-$FI
say "creating FileIntegrity $FI from $SAMPLE (ConfigMap demo-aide-conf, gracePeriod $GRACE)"
kubectl -n "$NS" create configmap demo-aide-conf --from-literal=aide.conf="$AIDE_CONF" >/dev/null
kubectl patch --local -f "$SAMPLE" --type=merge -o yaml \
    -p "{\"spec\":{\"config\":{\"name\":\"demo-aide-conf\",\"namespace\":\"$NS\",\"key\":\"aide.conf\",\"gracePeriod\":$GRACE}}}" |
    kubectl apply -f - >/dev/null

say "waiting for FileIntegrity $FI to be Active"
deadline=$((SECONDS + 300))
until [[ $(kubectl -n "$NS" get fileintegrity "$FI" -o jsonpath='{.status.phase}' 2>/dev/null) == Active ]]; do
    ((SECONDS < deadline)) || { kubectl -n "$NS" get pods -o wide >&2; die "not Active after 300 s"; }
    sleep 1
done
kubectl -n "$NS" get pods -o wide >&2

cat <<EOF

The operator and its daemons run as pods on $NODES real nodes. In another terminal:

  export KUBECONFIG=$KUBECONFIG
  export PATH=$BIN:\$PATH   # the control plane's kubectl

  kubectl -n $NS get fileintegrities
  kubectl -n $NS get ds/$DS
  kubectl -n $NS get pods -lapp=$DS
  kubectl -n $NS logs pod/\$(kubectl -n $NS get pods -lapp=$DS -o jsonpath='{.items[0].metadata.name}')
  kubectl -n $NS get fileintegritynodestatuses

Change a file on real-2 (its / is $REAL/real-2/root; Failed after the next scan, within ${GRACE} s):

  echo '#foobar' >> $REAL/real-2/root/etc/resolv.conf
  kubectl -n $NS get fileintegritynodestatuses
  kubectl -n $NS get cm $DS-real-2-failed -o jsonpath='{.data.integritylog}'

Re-initialise the databases (all nodes; or =real-2 for one), then look at the backups:

  kubectl -n $NS annotate fileintegrities/$FI file-integrity.openshift.io/re-init=
  ls -lR $REAL/real-*/root/etc/kubernetes/aide.*

Update real-1 as the machine-config operator would: its pool targets rendered-2, the node is
paused while Working; what changes meanwhile is accepted per path when it is Done at rendered-2
(the pool confirms it), with no re-init:

  kubectl patch machineconfigpool demo-real-1 --type=merge -p '{"spec":{"configuration":{"name":"rendered-2"}}}'
  kubectl annotate node real-1 --overwrite machineconfiguration.openshift.io/currentConfig=rendered-1 \\
    machineconfiguration.openshift.io/desiredConfig=rendered-2 machineconfiguration.openshift.io/state=Working
  kubectl -n $NS get fileintegrities/$FI -o jsonpath='{.status.nodePauses}'
  echo updated > $REAL/real-1/root/etc/demo-update.conf
  kubectl annotate node real-1 --overwrite machineconfiguration.openshift.io/currentConfig=rendered-2 \\
    machineconfiguration.openshift.io/state=Done
  kubectl -n $NS get fileintegritynodestatuses $FI-real-1 -o jsonpath='{.acceptedChanges}'

The same annotations set by the node itself while its pool rolls nothing out end the pause
with nothing accepted (a NodeUpdateUnconfirmed Warning Event; kubectl -n $NS get events).

Metrics (plain HTTP /metrics on 8383, as upstream; HTTPS /metrics-fio on 8585 waits for a
serving certificate, which this cluster has no service CA to make):

  kubectl -n $NS port-forward deploy/file-integrity-operator 8383 &
  curl -s http://127.0.0.1:8383/metrics | grep -v '^#'

Node logs: $REAL/real-N/root/var/log/{kubelet,containerd}.log

Ctrl-C stops the pods, the nodes and the control plane.
EOF

while :; do
    sleep 5 &
    wait $! || true
    scripts/testenv.sh status >/dev/null || die "the control plane stopped (logs: $FIO_TESTENV_DIR/*.log)"
done
