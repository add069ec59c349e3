#!/usr/bin/env bash
# The local demo (README's main command): the operator on a real Kubernetes control plane.
#
#   ./scripts/demo.sh
#
# 1. builds (once, cached) and starts a control plane on loopback: etcd, kube-apiserver,
#    kube-controller-manager, kube-scheduler and kwok (scripts/testenv.sh), with 3 fake nodes
#    node-1..node-3 (label node-role.kubernetes.io/worker);
# 2. installs deploy/crds, deploy/namespace.yaml and deploy/rbac (not the operator Deployment:
#    the operator runs here as a local process);
# 3. builds fio-operator and fio-scanner (cargo build --release) and runs `fio-operator run` and
#    one `fio-operator daemon` per node, each with a token of its service account
#    (file-integrity-operator; file-integrity-daemon, bound to the DaemonSet's pod on that node
#    as a kubelet's would be), each daemon over a sample node root
#    $FIO_DEMO_DIR/node-N standing for that node's / (its /etc/kubernetes holds aide.db.gz);
# 4. creates the FileIntegrity of deploy/samples (gracePeriod lowered to 30 s), prints the
#    kubeconfig and commands to try, and waits. Ctrl-C stops the processes and the control plane.
#
# The DaemonSet's pods are scheduled onto the fake nodes and reported Running by kwok; the real
# work is done by the local daemon processes, one per node, started once the node's pod runs.
#
# Environment: FIO_DEMO_DIR (default /tmp/fio-demo: node roots, logs, kubeconfigs, and the
# control plane in $FIO_DEMO_DIR/testenv), FIO_DEMO_NODES (3), FIO_DEMO_GRACE_PERIOD (30),
# FIO_LOG (the operator's and daemons' log filter, default info). The demo's control plane uses
# its own ports (apiserver 17443; FIO_DEMO_APISERVER_PORT ...) so that it never touches the one
# of the tests (scripts/testenv.sh, /tmp/fio-testenv, port 16443).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DEMO=$(realpath -m "${FIO_DEMO_DIR:-/tmp/fio-demo}")
NODES=${FIO_DEMO_NODES:-3}
GRACE=${FIO_DEMO_GRACE_PERIOD:-30}
NS=openshift-file-integrity
SAMPLE=deploy/samples/worker-fileintegrity.yaml
IMAGE=quay.io/file-integrity-operator/file-integrity-operator:latest

export FIO_TESTENV_DIR=$DEMO/testenv
export FIO_TESTENV_APISERVER_PORT=${FIO_DEMO_APISERVER_PORT:-17443}
export FIO_TESTENV_ETCD_PORT=${FIO_DEMO_ETCD_PORT:-13379}
export FIO_TESTENV_ETCD_PEER_PORT=${FIO_DEMO_ETCD_PEER_PORT:-13380}
export FIO_TESTENV_SCHEDULER_PORT=${FIO_DEMO_SCHEDULER_PORT:-17259}
export FIO_TESTENV_KWOK_PORT=${FIO_DEMO_KWOK_PORT:-17080}

if [[ -t 2 ]]; then B=$'\033[1m' N=$'\033[0m'; else B= N=; fi
say() { printf '%s[demo %s]%s %s\n' "$B" "$(date +%H:%M:%S)" "$N" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[[ $NODES =~ ^[1-9][0-9]*$ ]] || die "FIO_DEMO_NODES must be a positive number"
[[ $GRACE =~ ^[0-9]+$ ]] || die "FIO_DEMO_GRACE_PERIOD must be a number of seconds"

# ---- processes ----------------------------------------------------------------------------------

PIDS=()   # "name:pid:log"
STOPPING=

# A process left behind by a demo that was killed (SIGKILL): pid file entries "name pid".
stop_leftovers() {
    local name pid exe
    [[ -f $DEMO/pids ]] || return 0
    while read -r name pid; do
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
        case ${exe##*/} in
        fio-operator* | fio-scanner*) say "stopping $name ($pid) left by an earlier demo"; kill -TERM "$pid" 2>/dev/null || true ;;
        esac
    done <"$DEMO/pids"
    rm -f "$DEMO/pids"
}

start() { # name log command... (environment assignments through `env`)
    local name=$1 log=$2; shift 2
    printf '==== %s: %s ====\n' "$(date -Is)" "$*" >>"$log"
    "$@" >>"$log" 2>&1 </dev/null &
    PIDS+=("$name:$!:$log")
    echo "$name $!" >>"$DEMO/pids"
}

alive() { kill -0 "$1" 2>/dev/null; }

cleanup() {
    local rc=$?
    [[ -z $STOPPING ]] || return 0
    STOPPING=1
    trap - INT TERM
    echo >&2
    say "stopping"
    local entry name pid deadline
    for entry in "${PIDS[@]}"; do
        pid=${entry#*:}; pid=${pid%%:*}
        kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 10))
    for entry in "${PIDS[@]}"; do
        name=${entry%%:*}; pid=${entry#*:}; pid=${pid%%:*}
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        if alive "$pid"; then
            say "$name ($pid) ignored SIGTERM for 10 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
        say "stopped $name"
    done
    rm -f "$DEMO/pids"
    scripts/testenv.sh down || true
    say "node roots and logs are kept in $DEMO"
    exit "$rc"
}

check_alive() { # fail with the log of a process that exited
    local entry name pid log
    for entry in "${PIDS[@]}"; do
        name=${entry%%:*}; pid=${entry#*:}; pid=${pid%%:*}; log=${entry##*:}
        if ! alive "$pid"; then
            tail -n 30 "$log" >&2 || true
            die "$name exited (log: $log)"
        fi
    done
}

# ---- sample node roots --------------------------------------------------------------------------

# A small host tree covering the rules of the operator's default AIDE configuration (/boot,
# /root, /usr, /etc; /etc/kubernetes holds the database). Same shape as the tests' node roots.
make_root() { # dir node
    local r=$1 node=$2
    rm -rf "$r"
    mkdir -p "$r/etc/ssh" "$r/etc/kubernetes" "$r/usr/bin" "$r/usr/lib" "$r/boot/loader/entries" "$r/root/.kube"
    printf 'search cluster.local\nnameserver 10.0.0.10\n' >"$r/etc/resolv.conf"
    printf '127.0.0.1 localhost\n::1 localhost\n10.1.0.2 %s\n' "$node" >"$r/etc/hosts"
    printf '%s\n' "$node" >"$r/etc/hostname"
    printf 'PermitRootLogin no\nPasswordAuthentication no\n' >"$r/etc/ssh/sshd_config"
    chmod 600 "$r/etc/ssh/sshd_config"
    printf "#!/bin/sh\necho 'kubelet (simulated)'\n" >"$r/usr/bin/kubelet"
    printf "#!/bin/sh\necho 'crio (simulated)'\n" >"$r/usr/bin/crio"
    printf '#!/bin/true\n' >"$r/usr/bin/sh"
    chmod 755 "$r/usr/bin/kubelet" "$r/usr/bin/crio" "$r/usr/bin/sh"
    printf 'NAME="Simulated CoreOS"\nID=rhcos\n' >"$r/usr/lib/os-release"
    printf 'not a kernel\n' >"$r/boot/vmlinuz-6.1.0"
    printf 'title Simulated\nlinux /vmlinuz-6.1.0\n' >"$r/boot/loader/entries/ostree-1.conf"
    printf "alias ll='ls -l'\n" >"$r/root/.bashrc"
    printf '# excluded by the default rules\n' >"$r/root/.kube/config"
    chmod 600 "$r/root/.kube/config"
}

# ---- kubeconfigs --------------------------------------------------------------------------------

# kubeconfig FILE SA [ARGS...]: the admin kubeconfig's cluster with a token of the service
# account (ARGS go to `kubectl create token`, e.g. to bind it to a pod).
write_kubeconfig() {
    local file=$1 sa=$2 server ca token
    shift 2
    server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
    ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
    token=$(kubectl -n "$NS" create token "$sa" --duration=24h "$@")
    (
        umask 077
        cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fio-demo
  cluster:
    server: $server
    certificate-authority-data: $ca
users:
- name: $sa
  user:
    token: $token
contexts:
- name: $sa
  context:
    cluster: fio-demo
    user: $sa
    namespace: $NS
current-context: $sa
EOF
    )
}

# ---- main ---------------------------------------------------------------------------------------

mkdir -p "$DEMO"
stop_leftovers

say "building the control plane (cached after the first time; 12-20 min cold)"
scripts/testenv.sh build
say "building fio-operator and fio-scanner (cargo build --release)"
cargo build --release --bin fio-operator --bin fio-scanner
OPERATOR=$ROOT/target/release/fio-operator
BIN=$(scripts/testenv.sh bin)
export PATH=$BIN:$PATH   # kubectl of the control plane's version
export KUBECONFIG=$FIO_TESTENV_DIR/admin.kubeconfig

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A fresh cluster each time (a control plane left by a killed demo is stopped; `up` wipes etcd).
scripts/testenv.sh down >/dev/null 2>&1 || true
scripts/testenv.sh up >/dev/null
scripts/testenv.sh nodes "$NODES"

say "installing deploy/crds, deploy/namespace.yaml, deploy/rbac"
kubectl apply --server-side -f deploy/crds/ >/dev/null
kubectl wait --for condition=Established --timeout=60s \
    crd/fileintegrities.fileintegrity.openshift.io crd/fileintegritynodestatuses.fileintegrity.openshift.io >/dev/null
kubectl apply -f deploy/namespace.yaml -f deploy/rbac/ >/dev/null

rm -rf "$DEMO/logs" "$DEMO/kubeconfigs" "$DEMO"/node-*
mkdir -p "$DEMO/logs" "$DEMO/kubeconfigs"
write_kubeconfig "$DEMO/kubeconfigs/operator.kubeconfig" file-integrity-operator
for i in $(seq "$NODES"); do make_root "$DEMO/node-$i" "node-$i"; done

say "starting fio-operator run (log: $DEMO/logs/operator.log)"
start operator "$DEMO/logs/operator.log" env -u NODE_NAME \
    WATCH_NAMESPACE="$NS" KUBECONFIG="$DEMO/kubeconfigs/operator.kubeconfig" \
    RELATED_IMAGE_OPERATOR="$IMAGE" OPERATOR_NAME=file-integrity-operator FIO_LOG="${FIO_LOG:-info}" \
    "$OPERATOR" run

FI=$(kubectl patch --local -f "$SAMPLE" --type=merge -p '{}' -o jsonpath='{.metadata.name}')
DS=aide-$FI
say "creating FileIntegrity $FI from $SAMPLE with gracePeriod $GRACE"
kubectl patch --local -f "$SAMPLE" --type=merge -o yaml \
    -p "{\"spec\":{\"config\":{\"gracePeriod\":$GRACE}}}" | kubectl apply -f - >/dev/null

say "waiting for DaemonSet $DS to run a pod on every node"
deadline=$((SECONDS + 90))
until kubectl -n "$NS" get "ds/$DS" >/dev/null 2>&1; do
    check_alive
    ((SECONDS < deadline)) || { tail -n 30 "$DEMO/logs/operator.log" >&2; die "no DaemonSet $DS after 90 s"; }
    sleep 0.5
done
kubectl -n "$NS" rollout status "ds/$DS" --timeout=90s >/dev/null
check_alive

# The daemons confine themselves (read-only node root, capabilities, seccomp, Landlock), which
# needs root; as another user they run unconfined, saying so in their logs.
HARDEN=()
if [[ $(id -u) -ne 0 ]]; then HARDEN=(--insecure-no-harden); fi
for i in $(seq "$NODES"); do
    # As a kubelet would: a token bound to the DaemonSet's pod on the node, which the API server
    # stamps with the node's name (the admission policy of deploy/rbac admits results only so).
    pod=$(kubectl -n "$NS" get pods -l "app=$DS" --field-selector "spec.nodeName=node-$i" \
        -o jsonpath='{.items[0].metadata.name} {.items[0].metadata.uid}')
    [[ $pod == *" "?* ]] || die "no pod of DaemonSet $DS on node-$i"
    write_kubeconfig "$DEMO/kubeconfigs/daemon-node-$i.kubeconfig" file-integrity-daemon \
        --bound-object-kind Pod --bound-object-name "${pod% *}" --bound-object-uid "${pod#* }"
    say "starting fio-operator daemon for node-$i over $DEMO/node-$i (log: $DEMO/logs/daemon-node-$i.log)"
    start "daemon-node-$i" "$DEMO/logs/daemon-node-$i.log" env -u WATCH_NAMESPACE \
        NODE_NAME="node-$i" KUBECONFIG="$DEMO/kubeconfigs/daemon-node-$i.kubeconfig" FIO_LOG="${FIO_LOG:-info}" \
        "$OPERATOR" daemon --owner="$FI" --namespace="$NS" --hostroot="$DEMO/node-$i" \
        --interval="$GRACE" --max-backups=5 "${HARDEN[@]}"
done
sleep 2
check_alive

cat <<EOF

The operator and $NODES node daemons run. In another terminal:

  export KUBECONFIG=$KUBECONFIG
  export PATH=$BIN:\$PATH   # the control plane's kubectl

  kubectl -n $NS get fileintegrities
  kubectl -n $NS get ds/$DS
  kubectl -n $NS get pods -lapp=$DS
  kubectl -n $NS get fileintegritynodestatuses

Change a file on node-2 (it is Failed after the next scan, within ${GRACE} s):

  echo '#foobar' >> $DEMO/node-2/etc/resolv.conf
  kubectl -n $NS get fileintegritynodestatuses
  kubectl -n $NS get cm $DS-node-2-failed -o jsonpath='{.data.integritylog}'

Re-initialise the databases (all nodes; or =node-2 for one), then look at the backups:

  kubectl -n $NS annotate fileintegrities/$FI file-integrity.openshift.io/re-init=
  ls -l $DEMO/node-*/etc/kubernetes

Pause node-1 as a MachineConfig update would, then end the update (node-1 re-initialises once):

  kubectl annotate node node-1 --overwrite machineconfiguration.openshift.io/currentConfig=a \\
    machineconfiguration.openshift.io/desiredConfig=b machineconfiguration.openshift.io/state=Working
  kubectl -n $NS get fileintegrities/$FI -o jsonpath='{.metadata.annotations}'
  kubectl annotate node node-1 --overwrite machineconfiguration.openshift.io/currentConfig=b \\
    machineconfiguration.openshift.io/state=Done

Metrics (plain HTTP on loopback: no serving certificate here):

  curl -s http://127.0.0.1:8585/metrics-fio | grep -v '^#'

Logs (in place of \`oc logs pod/$DS-xxxxx\`):

  tail -f $DEMO/logs/daemon-node-1.log
  tail -f $DEMO/logs/operator.log

Ctrl-C stops the operator, the daemons and the control plane.
EOF

while :; do
    sleep 2 &
    wait $! || true
    check_alive
done
