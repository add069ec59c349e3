#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the operator's integration tests and the demo,
# built from Go modules (no containers, no downloads but the Go module proxy).
#
#   scripts/testenv.sh build          build (once) and cache kube-apiserver, kube-controller-manager,
#                                     kube-scheduler, kubectl, etcd, kwok
#   scripts/testenv.sh up [DIR]       generate PKI, start etcd + apiserver (wait /readyz) + KCM +
#                                     scheduler + kwok in the background; write DIR/env and
#                                     DIR/admin.kubeconfig. Idempotent: a running env is reused.
#   scripts/testenv.sh nodes N [DIR]  create kwok fake nodes node-1..node-N, wait until Ready
#   scripts/testenv.sh nodes --real N [DIR]
#                                     start real kubelet nodes: real-0 (control plane, tainted;
#                                     where the operator runs) and workers real-1..real-N
#                                     (containerd, runc, a mount namespace each:
#                                     scripts/testenv-realnodes.sh); images
#                                     listed in FIO_TESTENV_REAL_IMAGES (OCI archives) are imported
#   scripts/testenv.sh olm [DIR]      OLM on the running control plane: its CRDs, namespace olm,
#                                     olm-operator and catalog-operator (scripts/testenv-olm.sh)
#   scripts/testenv.sh olm-bin        print the cached bin directory of OLM, opm, operator-verify
#   scripts/testenv.sh down [DIR]     stop everything (SIGTERM, wait, SIGKILL), remove pid files;
#                                     real nodes: every process, cgroup, bridge, root and sysctl
#   scripts/testenv.sh status [DIR]   show what runs; exit 0 only if all is up and /readyz is OK
#   scripts/testenv.sh env [DIR]      print DIR/env
#   scripts/testenv.sh bin            print the cached bin directory (builds nothing)
#   scripts/testenv.sh pin-k8s 1.X.Y  (maintainers) regenerate testenv/k8s/go.mod for another release
#
# DIR defaults to ${FIO_TESTENV_DIR:-/tmp/fio-testenv}. The cache lives in
# ${FIO_TESTENV_CACHE:-$HOME/.cache/fio-testenv}/<key>/bin, key = k8s/etcd/kwok versions + go version
# + a hash of testenv/*/go.{mod,sum}. See testenv/README.md (versions, ports, timings, pitfalls).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TESTENV_SRC=$ROOT/testenv
CACHE=${FIO_TESTENV_CACHE:-${HOME:-/root}/.cache/fio-testenv}

# Loopback ports (override with the environment; they are written to DIR/env).
ETCD_PORT=${FIO_TESTENV_ETCD_PORT:-12379}
ETCD_PEER_PORT=${FIO_TESTENV_ETCD_PEER_PORT:-12380}
APISERVER_PORT=${FIO_TESTENV_APISERVER_PORT:-16443}
SCHEDULER_PORT=${FIO_TESTENV_SCHEDULER_PORT:-16259}
KWOK_PORT=${FIO_TESTENV_KWOK_PORT:-16080}
# Fake addresses written into object status only (nothing ever connects to them).
# The environment's network number (0-3; the demo uses 1): its Service range 10.0.NET.0/24 and,
# for real nodes, their bridges, subnets and cgroups, so that two environments can run at once.
NET_ID=${FIO_TESTENV_NET:-0}
[[ $NET_ID =~ ^[0-3]$ ]] || { echo "FIO_TESTENV_NET must be 0, 1, 2 or 3" >&2; exit 2; }
SERVICE_CIDR=10.0.$NET_ID.0/24
POD_CIDR=10.244.0.1/16   # kwok form: first address handed out
NODE_IP=127.0.0.1

COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
# shellcheck source=scripts/testenv-realnodes.sh
source "$ROOT/scripts/testenv-realnodes.sh"
# shellcheck source=scripts/testenv-olm.sh
source "$ROOT/scripts/testenv-olm.sh"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)

log() { printf '[testenv %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# ------------------------------------------------------------------------------------------------
# versions and cache key

modver() { # go.mod module-path -> version in its require
    awk -v m="$2" '{ for (i = 1; i < NF; i++) if ($i == m && $(i + 1) ~ /^v/) { print $(i + 1); exit } }' "$1"
}

versions() {
    # CI runs without ~/.bashrc: find the image's Go where PATH lacks it
    command -v go >/dev/null || [[ ! -x /usr/local/go/bin/go ]] || PATH=/usr/local/go/bin:$PATH
    command -v go >/dev/null || die "go not found in PATH (Go >= 1.24 is needed to build the control plane)"
    K8S_VERSION=$(modver "$TESTENV_SRC/k8s/go.mod" k8s.io/kubernetes)
    ETCD_VERSION=$(modver "$TESTENV_SRC/etcd/go.mod" go.etcd.io/etcd/server/v3)
    KWOK_VERSION=$(modver "$TESTENV_SRC/kwok/go.mod" sigs.k8s.io/kwok)
    [[ -n $K8S_VERSION && -n $ETCD_VERSION && -n $KWOK_VERSION ]] ||
        die "cannot read the pinned versions from $TESTENV_SRC/{k8s,etcd,kwok}/go.mod"
    GO_VERSION=$(GOTOOLCHAIN=local go env GOVERSION)
    local hash
    hash=$(cat "$TESTENV_SRC"/k8s/go.mod "$TESTENV_SRC"/k8s/go.sum \
        "$TESTENV_SRC"/etcd/go.mod "$TESTENV_SRC"/etcd/go.sum \
        "$TESTENV_SRC"/kwok/go.mod "$TESTENV_SRC"/kwok/go.sum | sha256sum | cut -c1-10)
    KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_${GO_VERSION}_${hash}"
    BIN=$CACHE/$KEY/bin
    # The real nodes' kubelet: its own wrapper module (so that adding it did not change the key
    # of the control plane above), pinned to the same k8s.io/kubernetes release.
    local kubelet_version
    kubelet_version=$(modver "$TESTENV_SRC/kubelet/go.mod" k8s.io/kubernetes)
    [[ $kubelet_version == "$K8S_VERSION" ]] ||
        die "testenv/kubelet pins k8s.io/kubernetes $kubelet_version, testenv/k8s $K8S_VERSION: run pin-k8s"
    hash=$(cat "$TESTENV_SRC"/kubelet/go.mod "$TESTENV_SRC"/kubelet/go.sum | sha256sum | cut -c1-10)
    KUBELET_KEY="kubelet-${K8S_VERSION}_${GO_VERSION}_${hash}"
    KUBELET=$CACHE/$KUBELET_KEY/bin/kubelet
}

have_bins() {
    local b
    for b in "${BINARIES[@]}"; do [[ -x $BIN/$b ]] || return 1; done
}

# ------------------------------------------------------------------------------------------------
# build

k8s_ldflags() { # the version stamps of an upstream build: `--version` and /version say the release
    local kv=${K8S_VERSION#v} minor
    minor=$(cut -d. -f2 <<<"$kv")
    local V=k8s.io/component-base/version CV=k8s.io/client-go/pkg/version date
    date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    local ldf="-s -w -X $V.gitVersion=$K8S_VERSION -X $V.gitMajor=1 -X $V.gitMinor=$minor"
    ldf+=" -X $V.gitTreeState=clean -X $V.buildDate=$date"
    ldf+=" -X $CV.gitVersion=$K8S_VERSION -X $CV.gitMajor=1 -X $CV.gitMinor=$minor"
    ldf+=" -X $CV.gitTreeState=clean -X $CV.buildDate=$date"
    echo "$ldf"
}

build_kubelet() {
    [[ -x $KUBELET ]] && return 0
    local t0 work out rc=0
    t0=$(now)
    work=$CACHE/$KUBELET_KEY/src
    out=$CACHE/$KUBELET_KEY/bin.tmp
    rm -rf "$work" "$out"
    mkdir -p "$work" "$out"
    cp -r "$TESTENV_SRC/kubelet" "$work/"
    log "building the kubelet ($KUBELET_KEY, log: $CACHE/$KUBELET_KEY/build.log)"
    (cd "$work/kubelet" && GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local \
        go build -trimpath -ldflags "$(k8s_ldflags)" -o "$out/kubelet" k8s.io/kubernetes/cmd/kubelet) \
        >"$CACHE/$KUBELET_KEY/build.log" 2>&1 || rc=$?
    if ((rc != 0)); then tail -n 40 "$CACHE/$KUBELET_KEY/build.log" >&2; die "kubelet build failed"; fi
    local v
    v=$("$out/kubelet" --version)
    [[ $v == "Kubernetes $K8S_VERSION" ]] || die "kubelet --version says: $v"
    rm -rf "$CACHE/$KUBELET_KEY/bin" "$work"
    mv "$out" "$CACHE/$KUBELET_KEY/bin"
    log "kubelet built in $(elapsed "$t0"): $KUBELET"
}

cmd_build() {
    versions
    if have_bins; then
        log "cached: $BIN"
        build_kubelet
        build_olm
        return 0
    fi
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.build.lock"
    if ! flock -n 9; then
        log "waiting for another build (lock $CACHE/.build.lock)"
        flock 9
    fi
    if have_bins; then log "cached: $BIN (built by another process)"; exec 9>&-; return 0; fi

    local t0 work out
    t0=$(now)
    work=$CACHE/$KEY/src
    out=$CACHE/$KEY/bin.tmp
    rm -rf "$work" "$out"
    mkdir -p "$work" "$out"
    # Build from a copy: -mod=mod may touch go.mod/go.sum, and the repo's copies stay untouched.
    cp -r "$TESTENV_SRC/k8s" "$TESTENV_SRC/etcd" "$TESTENV_SRC/kwok" "$work/"

    export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
    local ldf
    ldf=$(k8s_ldflags)

    log "building $KEY with $(go version) on $(nproc) cores (logs: $CACHE/$KEY/build-*.log)"
    local pids=() names=(k8s etcd kwok) i rc=0
    # The three builds run side by side: they overlap downloads and the (serial) link steps.
    gobuild() { # name dir go-build-args...
        local name=$1 dir=$2; shift 2
        local rc=0
        (cd "$dir" && go build -trimpath "$@") >"$CACHE/$KEY/build-$name.log" 2>&1 || rc=$?
        log "$name: go build finished (rc=$rc) after $(elapsed "$t0")"
        return $rc
    }
    gobuild k8s "$work/k8s" -ldflags "$ldf" -o "$out/" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl & pids+=($!)
    gobuild etcd "$work/etcd" -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3 & pids+=($!)
    gobuild kwok "$work/kwok" -ldflags "-s -w" -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok & pids+=($!)
    for i in 0 1 2; do
        if ! wait "${pids[$i]}"; then
            rc=1
            log "build of ${names[$i]} failed:"
            tail -n 40 "$CACHE/$KEY/build-${names[$i]}.log" >&2
        fi
    done
    ((rc == 0)) || die "build failed"

    local v
    v=$("$out/kube-apiserver" --version)
    [[ $v == "Kubernetes $K8S_VERSION" ]] || die "kube-apiserver --version says: $v"
    v=$("$out/etcd" --version)
    [[ $v == *"etcd Version: ${ETCD_VERSION#v}"* ]] || die "etcd --version says: $v"
    rm -rf "$CACHE/$KEY/bin"
    mv "$out" "$CACHE/$KEY/bin"
    rm -rf "$work"
    log "build done in $(elapsed "$t0"): $BIN ($(du -sh "$BIN" | cut -f1))"
    build_kubelet
    build_olm
    exec 9>&-
}

# Regenerate testenv/k8s/go.mod for another Kubernetes release: the go/godebug lines and the
# staging replace lines come from that release's own go.mod (staging module k8s.io/X at v0.MINOR.PATCH).
cmd_pin_k8s() {
    local kv=${1#v} d=$TESTENV_SRC/k8s tmp modfile minor_patch
    [[ $kv =~ ^1\.[0-9]+\.[0-9]+$ ]] || die "usage: testenv.sh pin-k8s 1.MINOR.PATCH"
    minor_patch=${kv#1.}
    export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
    tmp=$(mktemp -d)
    modfile=$(cd "$tmp" && go mod download -json "k8s.io/kubernetes@v$kv" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
    rm -rf "$tmp"
    [[ -f $modfile ]] || die "cannot download the go.mod of k8s.io/kubernetes@v$kv"
    {
        printf '// Wrapper module: builds kube-apiserver, kube-controller-manager, kube-scheduler and kubectl\n'
        printf '// for scripts/testenv.sh (see testenv/README.md). Regenerate with scripts/testenv.sh pin-k8s 1.X.Y.\n'
        printf 'module local.test/fio-testenv/k8s\n\n'
        awk '$1 == "go" && NF == 2 { print; print "" }' "$modfile"
        awk '$1 == "godebug" { print; print "" }' "$modfile"
        printf '// Generated by `scripts/testenv.sh pin-k8s %s`: every staging module of k8s.io/kubernetes,\n' "$kv"
        printf '// pinned to its published tag v0.%s.\nreplace (\n' "$minor_patch"
        awk -v v="v0.$minor_patch" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }' "$modfile"
        printf ')\n'
    } >"$d/go.mod"
    rm -f "$d/go.sum"
    (cd "$d" && go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$kv" \
        "k8s.io/kubernetes/cmd/kube-controller-manager@v$kv" "k8s.io/kubernetes/cmd/kube-scheduler@v$kv" \
        "k8s.io/kubernetes/cmd/kubectl@v$kv" && go mod tidy)
    log "pinned k8s.io/kubernetes v$kv in $d/go.mod ($(grep -c '=> k8s.io/' "$d/go.mod") staging replace lines)"
}

cmd_bin() {
    versions
    have_bins || die "not built yet: run scripts/testenv.sh build"
    echo "$BIN"
}

# ------------------------------------------------------------------------------------------------
# process helpers

pidfile() { echo "$DIR/$1.pid"; }

# alive and not a zombie: an exited process stays a zombie until its parent (here often init,
# which may reap only every few seconds) collects it; as a zombie it holds no port and no file.
running() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && ${st:0:1} != Z && ${st:0:1} != X ]]
}

# pid of a running component, verified against /proc (a stale pid file or a recycled pid is ignored)
alive_pid() {
    local f pid exe
    f=$(pidfile "$1")
    [[ -f $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    exe=${exe% (deleted)}
    [[ ${exe##*/} == "$1" ]] || return 1
    echo "$pid"
}

start_bg() { # name cmd... : detached (own session), logs in DIR/name.log, pid in DIR/name.pid
    local name=$1; shift
    rm -f "$(pidfile "$name")"
    # own session (no terminal signals), no inherited lock fds, pid written by the process itself
    setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$(pidfile "$name")" "$@" \
        >"$DIR/$name.log" 2>&1 </dev/null 8>&- 9>&- &
    local i
    for i in $(seq 50); do [[ -s $(pidfile "$name") ]] && return 0; sleep 0.1; done
    die "$name did not start"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

curl_admin() { # curl as admin (client certificate) against the apiserver; extra args follow
    curl -sS --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" "$@"
}

apiserver_ready() {
    [[ -f $P/ca.crt ]] && curl -sf --max-time 3 --cacert "$P/ca.crt" "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

wait_for() { # description timeout-seconds component-to-watch command...
    local what=$1 timeout=$2 watch=$3; shift 3
    local t0 deadline
    t0=$(now)
    deadline=$((SECONDS + timeout))
    until "$@"; do
        if [[ -n $watch ]] && ! alive_pid "$watch" >/dev/null; then
            tail -n 30 "$DIR/$watch.log" >&2 || true
            die "$watch exited while waiting for $what (log: $DIR/$watch.log)"
        fi
        if ((SECONDS >= deadline)); then
            [[ -z $watch ]] || tail -n 30 "$DIR/$watch.log" >&2 || true
            die "timed out after ${timeout}s waiting for $what"
        fi
        sleep 0.2
    done
    log "$what after $(elapsed "$t0")"
}

# ------------------------------------------------------------------------------------------------
# PKI (all X.509 v3 with SANs: rustls rejects v1 certificates and matches SANs only)

gen_cert() { # name subject extensions
    openssl req -newkey rsa:2048 -nodes -keyout "$P/$1.key" -out "$P/$1.csr" -subj "$2" 2>/dev/null
    printf '%s\n' "$3" >"$P/$1.ext"
    openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
        -days 3650 -out "$P/$1.crt" -extfile "$P/$1.ext" 2>/dev/null
    rm -f "$P/$1.csr" "$P/$1.ext"
}

ensure_pki() {
    if [[ -f $P/.complete && -f $P/apiserver-kubelet-client.crt ]] &&
        openssl x509 -noout -ext subjectAltName -in "$P/apiserver.crt" 2>/dev/null | grep -q 10.0.3.1 &&
        openssl x509 -checkend 86400 -noout -in "$P/ca.crt" >/dev/null 2>&1; then
        return 0
    fi
    log "generating PKI in $P"
    rm -rf "$P"
    mkdir -p "$P"
    chmod 700 "$P"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$P/ca.key" -out "$P/ca.crt" \
        -subj "/CN=fio-testenv-ca" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    gen_cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,IP:10.0.1.1,IP:10.0.2.1,IP:10.0.3.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    gen_cert admin "/O=system:masters/CN=admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    # the apiserver's identity towards the real nodes' kubelets (logs, exec)
    gen_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    openssl genrsa -out "$P/sa.key" 2048 2>/dev/null
    openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
    touch "$P/.complete"
}

write_kubeconfig() { # [cert name in $P, default admin] [file, default $DIR/admin.kubeconfig]
    local user=${1:-admin} file=${2:-$DIR/admin.kubeconfig}
    cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fio-testenv
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$P/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$P/$user.crt")
    client-key-data: $(base64 -w0 "$P/$user.key")
contexts:
- name: fio-testenv
  context:
    cluster: fio-testenv
    user: $user
current-context: fio-testenv
EOF
    mv "$file.tmp" "$file"
}

write_env() {
    local c upper pid bin=$BIN
    # the binaries actually running (an older cache key if go.mod changed since `up`)
    if pid=$(alive_pid kube-apiserver); then bin=$(dirname "$(readlink "/proc/$pid/exe")"); fi
    {
        echo "# written by scripts/testenv.sh up; source it, or read KUBECONFIG from it"
        echo "export KUBECONFIG=$DIR/admin.kubeconfig"
        echo "export FIO_TESTENV_DIR=$DIR"
        echo "export FIO_TESTENV_BIN=$bin"
        echo "export FIO_TESTENV_APISERVER=https://127.0.0.1:$APISERVER_PORT"
        echo "export FIO_TESTENV_K8S_VERSION=$K8S_VERSION"
        for c in "${COMPONENTS[@]}"; do
            upper=$(tr 'a-z-' 'A-Z_' <<<"$c")
            echo "export FIO_TESTENV_${upper}_PID=$(alive_pid "$c" || echo)"
        done
    } >"$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
}

# ------------------------------------------------------------------------------------------------
# up / down / status

all_up() {
    local c
    for c in "${COMPONENTS[@]}"; do alive_pid "$c" >/dev/null || return 1; done
    apiserver_ready
}

cmd_up() {
    versions
    if all_up; then
        write_env
        log "already up in $DIR"
        cat "$DIR/env"
        return 0
    fi
    have_bins || cmd_build
    stop_all quiet
    local t0 p
    t0=$(now)
    for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$SCHEDULER_PORT" "$KWOK_PORT"; do
        port_free "$p" || die "127.0.0.1:$p is already in use (another testenv with another DIR? run: ss -ltnp | grep $p)"
    done
    mkdir -p "$DIR"
    # a failed start leaves nothing running
    trap 'log "up failed: stopping what was started (logs: $DIR/*.log)"; stop_all quiet' EXIT
    ensure_pki
    write_kubeconfig
    rm -rf "$DIR/etcd-data"   # every `up` starts with an empty cluster

    start_bg etcd "$BIN/etcd" --name fio-testenv --data-dir "$DIR/etcd-data" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "fio-testenv=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync --logger=zap --log-level=warn \
        --quota-backend-bytes=4294967296
    wait_for "etcd /health" 60 etcd \
        curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" -o /dev/null

    start_bg kube-apiserver "$BIN/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
        --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
        --cert-dir="$P" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
        --client-ca-file="$P/ca.crt" \
        --service-account-issuer="https://127.0.0.1:$APISERVER_PORT" \
        --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --authorization-mode=Node,RBAC --allow-privileged=true \
        --enable-admission-plugins=NodeRestriction \
        --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$P/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types=InternalIP \
        --profiling=false --v=1
    wait_for "kube-apiserver /readyz" 180 kube-apiserver apiserver_ready

    start_bg kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig="$DIR/admin.kubeconfig" --leader-elect=false --secure-port=0 \
        --controllers='*' \
        --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
        --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
        --flex-volume-plugin-dir="$DIR/flexvolume" \
        --node-monitor-grace-period=1h --profiling=false --v=1
    start_bg kube-scheduler "$BIN/kube-scheduler" \
        --kubeconfig="$DIR/admin.kubeconfig" --authentication-kubeconfig="$DIR/admin.kubeconfig" \
        --authorization-kubeconfig="$DIR/admin.kubeconfig" --authentication-skip-lookup=true \
        --leader-elect=false \
        --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --profiling=false --v=1
    # Heartbeats: kwok 0.7 picks its 10-20 min status heartbeat only with
    # --node-lease-duration-seconds=0 (the condition is inverted in its code), and no leases then;
    # with a lease duration it patches every node's status every 20-45 s and renews a lease every
    # ~10 s: with 1,000 fake nodes (benches/scale.rs) that is ~60 writes a second, which starves
    # etcd on a 2-core machine. The controller-manager's grace period is raised to match, so
    # nodes stay Ready. Real kubelets heartbeat more often, on real control planes.
    printf 'apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n' >"$DIR/kwok.yaml"
    start_bg kwok "$BIN/kwok" --config="$DIR/kwok.yaml" \
        --kubeconfig="$DIR/admin.kubeconfig" \
        --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
        --cidr="$POD_CIDR" --node-ip="$NODE_IP" --node-lease-duration-seconds=0 \
        --server-address="127.0.0.1:$KWOK_PORT"

    wait_for "kube-scheduler /healthz" 60 kube-scheduler \
        curl -sfk --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz" -o /dev/null
    wait_for "kwok /healthz" 60 kwok curl -sf --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz" -o /dev/null
    # KCM serves nothing (--secure-port=0): its serviceaccount controller creating the `default`
    # ServiceAccount shows that the controllers run.
    wait_for "kube-controller-manager (ServiceAccount default/default)" 60 kube-controller-manager \
        curl_admin -f -o /dev/null "https://127.0.0.1:$APISERVER_PORT/api/v1/namespaces/default/serviceaccounts/default"
    trap - EXIT
    write_env
    log "up in $(elapsed "$t0"): $DIR (logs: $DIR/*.log)"
    cat "$DIR/env"
}

stop_all() { # [quiet]
    local c pid pids=() deadline group entry
    # clients first, then the apiserver, then etcd
    for group in "${OLM_COMPONENTS[*]} kwok kube-scheduler kube-controller-manager" "kube-apiserver" "etcd"; do
        pids=()
        for c in $group; do
            if pid=$(alive_pid "$c"); then
                kill -TERM "$pid" 2>/dev/null || true
                pids+=("$c:$pid")
            fi
        done
        deadline=$((SECONDS + 20))
        for entry in "${pids[@]}"; do
            c=${entry%%:*}; pid=${entry#*:}
            while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
            if running "$pid"; then
                log "$c ($pid) ignored SIGTERM for 20s: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                while running "$pid"; do sleep 0.1; done
            fi
            [[ ${1:-} == quiet ]] || log "stopped $c ($pid)"
        done
    done
    for c in "${COMPONENTS[@]}" "${OLM_COMPONENTS[@]}"; do rm -f "$(pidfile "$c")"; done
}

cmd_down() {
    if [[ ! -d $DIR ]]; then log "nothing in $DIR"; return 0; fi
    local t0
    t0=$(now)
    cmd_real_down
    stop_all
    rm -f "$DIR/env"
    log "down in $(elapsed "$t0")"
}

cmd_status() {
    local c pid rc=0
    for c in "${COMPONENTS[@]}"; do
        if pid=$(alive_pid "$c"); then echo "$c: running ($pid)"; else echo "$c: stopped"; rc=1; fi
    done
    if apiserver_ready; then echo "apiserver /readyz: ok"; else echo "apiserver /readyz: not ready"; rc=1; fi
    return $rc
}

cmd_env() {
    [[ -f $DIR/env ]] || die "no $DIR/env: run scripts/testenv.sh up"
    cat "$DIR/env"
}

# ------------------------------------------------------------------------------------------------
# nodes

node_json() {
    cat <<EOF
{"apiVersion":"v1","kind":"Node","metadata":{"name":"$1",
 "annotations":{"node.alpha.kubernetes.io/ttl":"0","kwok.x-k8s.io/node":"fake"},
 "labels":{"kubernetes.io/hostname":"$1","kubernetes.io/os":"linux","kubernetes.io/arch":"amd64",
  "node-role.kubernetes.io/worker":"","type":"kwok"}},
 "spec":{},
 "status":{"allocatable":{"cpu":"32","memory":"256Gi","pods":"110"},
  "capacity":{"cpu":"32","memory":"256Gi","pods":"110"},
  "nodeInfo":{"architecture":"amd64","operatingSystem":"linux","kubeletVersion":"$2","kubeProxyVersion":"$2",
   "bootID":"","containerRuntimeVersion":"","kernelVersion":"","machineID":"","osImage":"","systemUUID":""},
  "phase":"Running"}}
EOF
}

node_ready() {
    curl_admin -f "https://127.0.0.1:$APISERVER_PORT/api/v1/nodes/$1" 2>/dev/null |
        tr -d ' \n' | grep -q '"type":"Ready","status":"True"'
}

nodes_ready() { # N [name prefix, default node]
    local i
    for i in $(seq "$1"); do node_ready "${2:-node}-$i" || return 1; done
}

cmd_nodes() {
    local n=$1 i code t0 kv
    [[ $n =~ ^[0-9]+$ ]] || die "usage: testenv.sh nodes N [DIR]"
    [[ -f $P/admin.crt ]] && apiserver_ready || die "the control plane in $DIR is not up: run scripts/testenv.sh up"
    kv=$(sed -n 's/^export FIO_TESTENV_K8S_VERSION=//p' "$DIR/env" 2>/dev/null)
    t0=$(now)
    for i in $(seq "$n"); do
        code=$(node_json "node-$i" "${kv:-fake}" | curl_admin -o "$DIR/.node.out" -w '%{http_code}' -X POST \
            -H 'Content-Type: application/json' --data-binary @- \
            "https://127.0.0.1:$APISERVER_PORT/api/v1/nodes")
        case $code in
        201) ;;
        409) log "node-$i exists" ;;
        *) cat "$DIR/.node.out" >&2; die "creating node-$i: HTTP $code" ;;
        esac
    done
    rm -f "$DIR/.node.out"
    wait_for "$n node(s) Ready" 120 kwok nodes_ready "$n"
}

# ------------------------------------------------------------------------------------------------

set_dir() {
    DIR=$(realpath -m "${1:-${FIO_TESTENV_DIR:-/tmp/fio-testenv}}")
    P=$DIR/pki
}

lock_dir() { # one up/down/nodes at a time per DIR
    mkdir -p "$DIR"
    exec 8>"$DIR/.lock"
    flock 8
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

cmd=${1:-}
shift || true
case $cmd in
build) cmd_build ;;
pin-k8s) [[ $# -ge 1 ]] || usage 2; cmd_pin_k8s "$1" ;;
bin) cmd_bin ;;
olm-bin) cmd_olm_bin ;;
olm)
    set_dir "${1:-}"; lock_dir; versions
    [[ -f $P/admin.crt ]] && apiserver_ready || die "the control plane in $DIR is not up: run scripts/testenv.sh up"
    cmd_olm ;;
up) set_dir "${1:-}"; lock_dir; cmd_up ;;
down) set_dir "${1:-}"; [[ ! -d $DIR ]] || lock_dir; cmd_down ;;
status) set_dir "${1:-}"; cmd_status ;;
env) set_dir "${1:-}"; cmd_env ;;
nodes)
    if [[ ${1:-} == --real ]]; then
        [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage 2
        n=$2; set_dir "${3:-}"; lock_dir; versions
        [[ -f $P/admin.crt ]] && apiserver_ready || die "the control plane in $DIR is not up: run scripts/testenv.sh up"
        cmd_real_nodes "$n"
    else
        [[ $# -ge 1 ]] || usage 2; n=$1; set_dir "${2:-}"; lock_dir; cmd_nodes "$n"
    fi ;;
-h | --help | help) usage 0 ;;
*) usage 2 ;;
esac
