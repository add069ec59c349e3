# OLM for scripts/testenv.sh (sourced by it: uses its log, die, now, elapsed, modver, start_bg,
# alive_pid, wait_for, gen_cert and the variables DIR, P, BIN, CACHE, GO_VERSION, TESTENV_SRC).
#
# The operator framework's own programs, built from their Go modules (testenv/olm, one wrapper
# module, versions pinned in its go.mod): OLM's olm-operator and catalog-operator, the copy tool
# of its bundle-unpack Jobs (cpb), operator-registry's opm, and operator-framework/api's bundle
# validator (operator-verify). `olm` starts the two operators as processes beside the control
# plane (as the controller-manager runs), after applying OLM's CRDs from the same module. The
# bundle-unpack Jobs run on the real nodes with two images built here from these binaries
# (scripts/image.py olm): opm's, and the util image (cpb, and a cp: testenv/olm-util/cp.rs).

OLM_COMPONENTS=(olm catalog)
OLM_NAMESPACE=olm
OLM_OPM_IMAGE=localhost/fio-testenv/opm:1
OLM_UTIL_IMAGE=localhost/fio-testenv/olm-util:1

olm_versions() {
    OLM_VERSION=$(modver "$TESTENV_SRC/olm/go.mod" github.com/operator-framework/operator-lifecycle-manager)
    [[ -n $OLM_VERSION ]] || die "cannot read OLM's version from $TESTENV_SRC/olm/go.mod"
    local hash
    hash=$(cat "$TESTENV_SRC"/olm/go.mod "$TESTENV_SRC"/olm/go.sum | sha256sum | cut -c1-10)
    OLM_KEY="olm-${OLM_VERSION}_${GO_VERSION}_${hash}"
    OLM_DIR=$CACHE/$OLM_KEY
}

have_olm() {
    local b
    for b in olm catalog cpb opm operator-verify; do [[ -x $OLM_DIR/bin/$b ]] || return 1; done
    compgen -G "$OLM_DIR/crds/*.yaml" >/dev/null
}

build_olm() {
    olm_versions
    have_olm && return 0
    local t0 work out rc=0 moddir
    t0=$(now)
    work=$OLM_DIR/src
    out=$OLM_DIR/out.tmp
    rm -rf "$work" "$out"
    mkdir -p "$work" "$out/bin" "$out/crds"
    cp -r "$TESTENV_SRC/olm" "$work/"
    log "building OLM, opm and operator-verify ($OLM_KEY, log: $OLM_DIR/build.log)"
    # opm's tags are operator-registry's own release tags (no gpgme, which needs cgo).
    (cd "$work/olm" && GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local \
        go build -trimpath -tags "json1 containers_image_openpgp" -ldflags "-s -w" -o "$out/bin/" \
        github.com/operator-framework/operator-lifecycle-manager/cmd/olm \
        github.com/operator-framework/operator-lifecycle-manager/cmd/catalog \
        github.com/operator-framework/operator-lifecycle-manager/util/cpb \
        github.com/operator-framework/operator-registry/cmd/opm \
        github.com/operator-framework/api/cmd/operator-verify) >"$OLM_DIR/build.log" 2>&1 || rc=$?
    if ((rc != 0)); then tail -n 40 "$OLM_DIR/build.log" >&2; die "OLM build failed"; fi
    moddir=$(cd "$work/olm" && GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local \
        go list -m -f '{{.Dir}}' github.com/operator-framework/operator-lifecycle-manager)
    cp "$moddir"/deploy/chart/crds/*.yaml "$out/crds/"
    rm -rf "$OLM_DIR/bin" "$OLM_DIR/crds" "$work"
    mv "$out/bin" "$out/crds" "$OLM_DIR/"
    rmdir "$out"
    log "OLM $OLM_VERSION built in $(elapsed "$t0"): $OLM_DIR/bin"
}

cmd_olm_bin() {
    versions
    olm_versions
    have_olm || die "OLM is not built yet: run scripts/testenv.sh build"
    echo "$OLM_DIR/bin"
}

olm_kubectl() { "$BIN/kubectl" --kubeconfig "$DIR/admin.kubeconfig" "$@"; }

# OLM's CRDs, its namespace, and its two operators (idempotent: running ones are kept).
cmd_olm() {
    build_olm
    local t0 c
    t0=$(now)
    olm_kubectl apply --server-side --force-conflicts -f "$OLM_DIR/crds/" >/dev/null
    olm_kubectl wait --for condition=established --timeout=60s -f "$OLM_DIR/crds/" >/dev/null
    olm_kubectl create namespace "$OLM_NAMESPACE" --dry-run=client -o yaml | olm_kubectl apply -f - >/dev/null
    # Both serve /healthz on a fixed port: HTTP :8080, or HTTPS :8443 with a certificate. Two
    # processes on one host need one of each.
    [[ -f $P/olm-operator.crt ]] || gen_cert olm-operator "/CN=olm-operator" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1"
    for c in "${OLM_COMPONENTS[@]}"; do
        if alive_pid "$c" >/dev/null; then log "$c runs already"; continue; fi
        case $c in
        olm) start_bg olm env KUBECONFIG="$DIR/admin.kubeconfig" "$OLM_DIR/bin/olm" \
            --namespace "$OLM_NAMESPACE" --writeStatusName "" --writePackageServerStatusName "" \
            --tls-cert "$P/olm-operator.crt" --tls-key "$P/olm-operator.key" --client-ca "$P/ca.crt" ;;
        catalog) start_bg catalog "$OLM_DIR/bin/catalog" --kubeconfig "$DIR/admin.kubeconfig" \
            --namespace "$OLM_NAMESPACE" --writeStatusName "" \
            --opmImage "$OLM_OPM_IMAGE" --util-image "$OLM_UTIL_IMAGE" ;;
        esac
    done
    wait_for "olm-operator /healthz" 60 olm curl -sfk --max-time 2 https://127.0.0.1:8443/healthz -o /dev/null
    wait_for "catalog-operator /healthz" 60 catalog curl -sf --max-time 2 http://127.0.0.1:8080/healthz -o /dev/null
    log "OLM $OLM_VERSION up in $(elapsed "$t0") (logs: $DIR/olm.log, $DIR/catalog.log)"
}
