# Real kubelet nodes for scripts/testenv.sh (`nodes --real N`: the control-plane node real-0,
# labelled node-role.kubernetes.io/control-plane and tainted NoSchedule, where the operator runs,
# and the worker nodes real-1..real-N, labelled node-role.kubernetes.io/worker). Sourced by it:
# uses its log, die, now, elapsed, gen_cert, write_kubeconfig, curl_admin, nodes_ready and the
# variables DIR, P, KUBELET, APISERVER_PORT.
#
# A real node is no VM: a mount namespace whose / is the node's own root directory
# ($DIR/real/<node>/root: a private copy of /etc, fresh /var /run /tmp /root, the host's /usr
# bound read-only, /proc /sys /dev bound in, made rshared so that HostToContainer propagation
# works), its own containerd (Debian's 1.6 + runc, overlayfs, cgroupfs) and kubelet (built from
# the control plane's Kubernetes module), its own bridge and pod subnet, its own cgroup root
# /fio-<node> in every hierarchy. The host's network namespace is shared: the kubelet serves on
# the bridge's address, and the pods' one route beyond their bridge leads to the service network,
# where 10.0.NET.1:443 (the `kubernetes` Service) is a socat forwarding to the loopback apiserver.
# Nothing is masqueraded or forwarded: traffic stays on loopback and on these bridges.
#
# Every process of a node (its supervisor, containerd, the shims, the kubelet, the containers)
# lives under the pids cgroup /fio-<node>, which is how `down` finds and kills them all.

REAL_PREFIX=real
SVC_IP=10.0.$NET_ID.1
CLUSTER_DNS=10.0.$NET_ID.10
REAL_SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)

# node index -> /24 prefix of its bridge and pods, bridge, cgroup root (per network number)
real_net() { echo "10.$((250 + NET_ID)).$1"; }
real_bridge() { echo "fio${NET_ID}br$1"; }
real_cgroup() { echo "fio$NET_ID-$REAL_PREFIX-$1"; }

cgroup_hierarchies() { # the v1 hierarchies, then the v2 one of a hybrid host (runc joins it too)
    local d
    for d in /sys/fs/cgroup/*/; do
        d=${d%/}
        [[ -f $d/cgroup.procs ]] && echo "$d"
    done
}

# The node's root directory, its configuration files and its client certificate.
real_prepare() { # index
    local i=$1 name="$REAL_PREFIX-$1" net
    net=$(real_net "$i")
    local nd=$DIR/real/$name r=$DIR/real/$name/root
    rm -rf "$nd"
    mkdir -p "$r"/{usr,proc,sys,dev,tmp,root,run,opt/testenv/bin,opt/testenv/images} \
        "$r"/var/{lib/kubelet/pki,lib/containerd,lib/cni,log,tmp}
    chmod 1777 "$r/tmp" "$r/var/tmp"
    local l
    for l in bin lib lib64 sbin; do [[ -L /$l ]] && ln -s "$(readlink "/$l")" "$r/$l"; done
    cp -a /etc "$r/etc"
    rm -rf "$r/etc/kubernetes" "$r/etc/cni" "$r/etc/containerd"
    mkdir -p "$r/etc/kubernetes/pki" "$r/etc/cni/net.d" "$r/etc/containerd"
    echo "$name" >"$r/etc/hostname"
    real_cgroup "$i" >"$nd/cgroup"   # for the tests: where the node's processes are
    cp "$P/ca.crt" "$r/etc/kubernetes/pki/ca.crt"
    # The CA the kubelet trusts for clients (the API server), where OpenShift's kubelets read it:
    # the machine-config daemon rewrites this file when the signer rotates (tests rotate it).
    cp "$P/ca.crt" "$r/etc/kubernetes/kubelet-ca.crt"

    [[ -f $P/node-$name.crt ]] || gen_cert "node-$name" "/O=system:nodes/CN=system:node:$name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    write_kubeconfig "node-$name" "$r/etc/kubernetes/kubelet.kubeconfig"
    # Written before containerd starts: its CRI plugin reads the CNI configuration at start.
    cat >"$r/etc/cni/net.d/10-fio.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "fio-$name", "plugins": [{
  "type": "bridge", "bridge": "$(real_bridge "$i")", "isGateway": false, "ipMasq": false,
  "ipam": {"type": "host-local", "dataDir": "/var/lib/cni/networks",
           "ranges": [[{"subnet": "$net.0/24", "rangeStart": "$net.10", "gateway": "$net.1"}]],
           "routes": [{"dst": "10.0.$NET_ID.0/24"}]}}]}
EOF
    cat >"$r/etc/containerd/config.toml" <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REAL_PAUSE_REF"
  # root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to start
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
EOF
    cat >"$r/var/lib/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $net.1
port: 10250
readOnlyPort: 0
healthzBindAddress: $net.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: /etc/kubernetes/kubelet-ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: /$(real_cgroup "$i")
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
clusterDNS: [$CLUSTER_DNS]
clusterDomain: cluster.local
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
resolvConf: /etc/resolv.conf
registerNode: true
rotateCertificates: false
serializeImagePulls: false
# the host's disk and memory are shared by every node: no evictions over the host's usage
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
}

# Runs inside the node's new mount namespace (unshare --mount --propagation private): enters
# the node's cgroups, pivots into its root, starts containerd, imports the images, runs the kubelet.
real_node_main() { # index name root kubelet-bin-dir images-dir
    local i=$1 name=$2 r=$3 bindir=$4 images=$5 h net
    net=$(real_net "$i")
    # The kubelet (and this supervisor) in kubelet.service, containerd and its shims in
    # containerd.service: a node's host processes are named by their unit, as under systemd.
    for h in $(cgroup_hierarchies); do echo $$ >"$h/$(real_cgroup "$i")/kubelet.service/cgroup.procs"; done
    mount --bind "$r" "$r"
    mount --rbind /usr "$r/usr"
    mount -o remount,bind,ro "$r/usr"
    mount --rbind /dev "$r/dev"
    mount --rbind /sys "$r/sys"
    mount --rbind /proc "$r/proc"
    mount --bind "$bindir" "$r/opt/testenv/bin"
    mount -o remount,bind,ro "$r/opt/testenv/bin"
    mount --bind "$images" "$r/opt/testenv/images"
    cd "$r"
    mkdir -p .oldroot
    pivot_root . .oldroot
    cd /
    umount -l /.oldroot
    rmdir /.oldroot
    mount --make-rshared /
    (
        for h in $(cgroup_hierarchies); do echo "$BASHPID" >"$h/$(real_cgroup "$i")/containerd.service/cgroup.procs"; done
        exec containerd --config /etc/containerd/config.toml
    ) >/var/log/containerd.log 2>&1 &
    local ctr_pid=$!
    local n=0
    until ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1; do
        kill -0 "$ctr_pid" 2>/dev/null || { echo "containerd exited" >&2; exit 1; }
        ((++n < 300)) || { echo "containerd did not answer in 30s" >&2; exit 1; }
        sleep 0.1
    done
    # Node 0 is the control plane's node (where the operator runs), tainted as kubeadm does.
    local taints=""
    ((i > 0)) || taints=--register-with-taints=node-role.kubernetes.io/control-plane=:NoSchedule
    local img
    for img in /opt/testenv/images/*.oci.tar; do
        ctr --address /run/containerd/containerd.sock -n k8s.io images import --no-unpack "$img" >&2
    done
    /opt/testenv/bin/kubelet --config=/var/lib/kubelet/config.yaml \
        --kubeconfig=/etc/kubernetes/kubelet.kubeconfig --hostname-override="$name" \
        --node-ip="$net.1" --root-dir=/var/lib/kubelet --cert-dir=/var/lib/kubelet/pki \
        --node-labels="fio-testenv/real=true" $taints --v=1 >/var/log/kubelet.log 2>&1 &
    echo $! >/run/kubelet.pid
    wait -n
    echo "a node process exited: containerd or kubelet (see /var/log)" >&2
    exit 1
}

real_pids() { # index -> every pid in the node's pids cgroup tree
    local d=/sys/fs/cgroup/pids/$(real_cgroup "$1")
    [[ -d $d ]] || return 0
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
}

real_sysctls_save() {
    [[ -f $DIR/real/sysctls ]] && return 0
    local s
    for s in "${REAL_SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$DIR/real/sysctls"
}

real_sysctls_restore() {
    [[ -f $DIR/real/sysctls ]] || return 0
    local kv
    while read -r kv; do sysctl -q -w "$kv" >/dev/null || log "cannot restore $kv"; done <"$DIR/real/sysctls"
    rm -f "$DIR/real/sysctls"
}

real_service_proxy() { # the `kubernetes` Service's address -> the loopback apiserver
    # on lo (this kernel has no dummy links): a packet from a bridge to it is delivered locally
    ip addr replace "$SVC_IP/32" dev lo
    local pf=$DIR/real/svc-proxy.pid
    if [[ -f $pf ]] && running "$(<"$pf")"; then return 0; fi
    setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$pf" \
        socat "TCP-LISTEN:443,bind=$SVC_IP,fork,reuseaddr" "TCP:127.0.0.1:$APISERVER_PORT" \
        >"$DIR/real/svc-proxy.log" 2>&1 </dev/null 8>&- 9>&- &
    local n=0
    until (exec 3<>"/dev/tcp/$SVC_IP/443") 2>/dev/null; do
        ((++n < 100)) || die "the service proxy $SVC_IP:443 does not answer (log: $DIR/real/svc-proxy.log)"
        sleep 0.1
    done
}

cmd_real_nodes() { # N
    local n=$1 i t0 name h net
    [[ -x $KUBELET ]] || build_kubelet
    local t
    for t in containerd runc ctr socat ip unshare /usr/lib/cni/bridge /usr/lib/cni/host-local; do
        command -v "$t" >/dev/null ||
            die "$t not found: install Debian's containerd runc socat iproute2 util-linux containernetworking-plugins (.ci/run does)"
    done
    t0=$(now)
    mkdir -p "$DIR/real/images"
    python3 "$ROOT/scripts/image.py" pause --out "$DIR/real/images" >"$DIR/real/pause-image.log" 2>&1 ||
        { cat "$DIR/real/pause-image.log" >&2; die "building the pause image failed"; }
    REAL_PAUSE_REF=$(awk '{print $1}' <(tail -n 1 "$DIR/real/pause-image.log"))
    rm -f "$DIR/real/images/pause"
    local extra
    for extra in ${FIO_TESTENV_REAL_IMAGES:-}; do cp "$extra" "$DIR/real/images/"; done
    real_sysctls_save
    real_service_proxy
    for i in $(seq 0 "$n"); do
        name=$REAL_PREFIX-$i
        net=$(real_net "$i")
        if [[ -f $DIR/real/$name/supervisor.pid ]] && running "$(<"$DIR/real/$name/supervisor.pid")"; then
            log "$name runs already"
            continue
        fi
        real_node_down "$i" quiet
        real_prepare "$i"
        ip link add "$(real_bridge "$i")" type bridge
        ip addr add "$net.1/24" dev "$(real_bridge "$i")"
        ip link set "$(real_bridge "$i")" up
        local unit
        for h in $(cgroup_hierarchies); do
            for unit in "" kubelet.service containerd.service; do
                mkdir -p "$h/$(real_cgroup "$i")/$unit"
                if [[ -f $h/cpuset.cpus ]]; then
                    cat "$h/cpuset.cpus" >"$h/$(real_cgroup "$i")/$unit/cpuset.cpus"
                    cat "$h/cpuset.mems" >"$h/$(real_cgroup "$i")/$unit/cpuset.mems"
                fi
            done
        done
        NET_ID=$NET_ID setsid unshare --mount --propagation private \
            bash -c 'echo $$ > "$1"; shift; source "$0"; real_node_main "$@"' \
            "$ROOT/scripts/testenv-realnodes.sh" "$DIR/real/$name/supervisor.pid" \
            "$i" "$name" "$DIR/real/$name/root" "$(dirname "$KUBELET")" "$DIR/real/images" \
            >"$DIR/real/$name/supervisor.log" 2>&1 </dev/null 8>&- 9>&- &
    done
    real_wait_ready "$n"
    local role
    for i in $(seq 0 "$n"); do
        role=worker
        ((i > 0)) || role=control-plane
        curl_admin -f -o /dev/null -X PATCH -H 'Content-Type: application/merge-patch+json' \
            --data "{\"metadata\":{\"labels\":{\"node-role.kubernetes.io/$role\":\"\"}}}" \
            "https://127.0.0.1:$APISERVER_PORT/api/v1/nodes/$REAL_PREFIX-$i" ||
            die "labelling $REAL_PREFIX-$i"
    done
    log "control-plane node $REAL_PREFIX-0 and $n worker node(s) Ready in $(elapsed "$t0") (roots: $DIR/real/<node>/root, logs: .../root/var/log)"
}

real_wait_ready() { # N
    local n=$1 i deadline=$((SECONDS + 120))
    until nodes_ready "$n" "$REAL_PREFIX" && node_ready "$REAL_PREFIX-0"; do
        for i in $(seq 0 "$n"); do
            local sp=$DIR/real/$REAL_PREFIX-$i/supervisor.pid
            if [[ -f $sp ]] && ! running "$(<"$sp")"; then
                tail -n 20 "$DIR/real/$REAL_PREFIX-$i/supervisor.log" \
                    "$DIR/real/$REAL_PREFIX-$i/root/var/log/"{containerd,kubelet}.log >&2 2>/dev/null || true
                die "$REAL_PREFIX-$i stopped while starting (logs above)"
            fi
        done
        ((SECONDS < deadline)) || die "real nodes not Ready after 120s (logs: $DIR/real/*/root/var/log)"
        sleep 0.2
    done
}

real_node_down() { # index [quiet]
    local i=$1 name="$REAL_PREFIX-$1" pids h deadline
    local r=$DIR/real/$name/root
    # the kubelet first (so that it does not restart what is being killed), then everything else
    if [[ -f $r/run/kubelet.pid ]]; then kill -TERM "$(<"$r/run/kubelet.pid")" 2>/dev/null || true; fi
    deadline=$((SECONDS + 20))
    while pids=$(real_pids "$i") && [[ -n $pids ]]; do
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        ((SECONDS < deadline)) || { log "$name: processes survive SIGKILL: $pids"; break; }
        sleep 0.1
    done
    for h in $(cgroup_hierarchies); do
        [[ -d $h/$(real_cgroup "$i") ]] || continue
        find "$h/$(real_cgroup "$i")" -depth -type d -exec rmdir {} + 2>/dev/null ||
            log "$name: cgroup $h/$(real_cgroup "$i") not removed"
    done
    ip link del "$(real_bridge "$i")" 2>/dev/null || true
    if [[ -d $DIR/real/$name ]]; then
        # the mounts were private to the node's namespace, gone with its last process
        if grep -q " $DIR/real/$name/" /proc/self/mountinfo; then
            die "$name: mounts remain under $DIR/real/$name"
        fi
        rm -rf "$DIR/real/$name"
    fi
    [[ ${2:-} == quiet ]] || log "stopped real node $name"
}

cmd_real_down() {
    [[ -d $DIR/real ]] || return 0
    local d i
    for d in "$DIR"/real/"$REAL_PREFIX"-*/; do
        [[ -d $d ]] || continue
        i=${d%/}
        i=${i##*-}
        real_node_down "$i"
    done
    if [[ -f $DIR/real/svc-proxy.pid ]]; then
        kill -TERM "$(<"$DIR/real/svc-proxy.pid")" 2>/dev/null || true
        rm -f "$DIR/real/svc-proxy.pid"
    fi
    ip addr del "$SVC_IP/32" dev lo 2>/dev/null || true
    real_sysctls_restore
}
