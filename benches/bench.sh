#!/usr/bin/env bash
# Benchmark: fio-scanner vs AIDE 0.18.3 on a realistic tree (a copy of /usr), same run,
# same config (the operator's CONTENT_EX rule), warm page cache.
#
#   benches/bench.sh
#
# Environment:
#   BENCH_TREE    tree to scan. If set and present, it is reused as is (a cached copy); if set
#                 and absent, /usr is copied there and kept for the next run. If unset, /usr is
#                 copied into the work dir and removed at the end.
#   BENCH_WORK    work dir for configs, databases, reports, timings (default: a new
#                 /var/tmp/fio-bench.XXXXXX, removed at the end unless BENCH_KEEP=1).
#   BENCH_RUNS    timed repetitions of each init/check (default 1; the best wall time is kept).
#   FIO_SCANNER   binary under test (default: target/dist/fio-scanner, built here with
#                 `cargo build --profile dist`, what ships). FIO_SCANNER=/usr/bin/aide validates the script.
#   AIDE_BIN      reference AIDE (default /usr/bin/aide).
#   FIO_BASELINE  an earlier fio-scanner (e.g. built from the previous commit), timed in the same
#                 run on the same tree: its rows show whether the binary under test got slower.
#   BENCH_ALLOW_SMALL=1  accept a tree with < 40,000 files or < 1 GiB.
#
# Prints a table: mode, aide wall s, ours wall s, speedup (aide/ours), aide RSS MiB,
# ours RSS MiB, RSS ratio (ours/aide), ours wall / hashing limit, where the hashing limit is
# total regular-file bytes / (single-core `openssl speed -evp sha512` throughput x cores).
# Also verifies that ours --check is clean (exit 0), that aide --check of OUR database is clean
# and that ours --check of AIDE's database is clean; exits 1 if any verification fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AIDE=${AIDE_BIN:-/usr/bin/aide}
RUNS=${BENCH_RUNS:-1}
RULE='sha512+ftype+p+u+g+n+acl+selinux+xattrs'

die() { echo "bench.sh: $*" >&2; exit 2; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

[[ -x $AIDE ]] || die "reference AIDE $AIDE not found (apt-get install aide)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (apt-get install time)"
command -v openssl >/dev/null || die "openssl not found"

if [[ -n ${FIO_SCANNER:-} ]]; then
    OURS=$FIO_SCANNER
else
    log "cargo build --profile dist"
    (cd "$ROOT" && cargo build --profile dist --bin fio-scanner >&2)
    OURS=${CARGO_TARGET_DIR:-$ROOT/target}/dist/fio-scanner
fi
[[ -x $OURS ]] || die "binary under test $OURS not found"
BASE=${FIO_BASELINE:-}
[[ -z $BASE || -x $BASE ]] || die "baseline $BASE not found"

# ---------------------------------------------------------------------------- work dir, tree
created_work=
if [[ -n ${BENCH_WORK:-} ]]; then
    WORK=$BENCH_WORK
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d /var/tmp/fio-bench.XXXXXX)
    created_work=1
fi
WORK=$(cd "$WORK" && pwd)
cleanup() {
    if [[ -n $created_work && -z ${BENCH_KEEP:-} ]]; then
        rm -rf -- "$WORK"
    else
        echo "bench.sh: work files kept in $WORK" >&2
    fi
}
trap cleanup EXIT

copy_usr() { # dest
    local dest=$1
    log "copying /usr to $dest (cp -a) ..."
    rm -rf -- "$dest.partial"
    mkdir -p "$(dirname "$dest")"
    cp -a /usr "$dest.partial"
    mv -- "$dest.partial" "$dest"
}

if [[ -n ${BENCH_TREE:-} ]]; then
    TREE=$BENCH_TREE
    if [[ -d $TREE ]] && [[ -n $(ls -A "$TREE") ]]; then
        log "reusing cached tree $TREE"
    else
        [[ -d $TREE ]] && rmdir -- "$TREE"
        copy_usr "$TREE"
    fi
else
    TREE=$WORK/usr
    copy_usr "$TREE"
fi
TREE=$(cd "$TREE" && pwd)
# The tree path is used verbatim as the rule regex.
[[ $TREE =~ ^[A-Za-z0-9/_.-]+$ ]] || die "tree path $TREE has characters that need escaping in aide.conf"

log "counting the tree ..."
read -r N_ENTRIES N_FILES N_BYTES < <(find "$TREE" -printf '%y %s\n' |
    awk '{n++} $1=="f"{f++; b+=$2} END{printf "%d %d %.0f\n", n, f, b}')
if (( N_FILES < 40000 || N_BYTES < 1073741824 )) && [[ -z ${BENCH_ALLOW_SMALL:-} ]]; then
    die "tree $TREE too small: $N_FILES regular files, $N_BYTES bytes (need >= 40,000 and >= 1 GiB)"
fi

# ---------------------------------------------------------------------------- configs
mkconf() { # file db_in db_out report
    cat >"$1" <<EOF
# fio-scanner benchmark (like aide-samples/bench-sha512.conf)
database_in=file:$2
database_out=file:$3
gzip_dbout=no
report_url=file:$4
CONTENT_EX = $RULE
$TREE CONTENT_EX
EOF
}
mkconf "$WORK/aide.conf" "$WORK/aide.db" "$WORK/aide.db.new" "$WORK/aide.report"
mkconf "$WORK/ours.conf" "$WORK/ours.db" "$WORK/ours.db.new" "$WORK/ours.report"
mkconf "$WORK/base.conf" "$WORK/base.db" "$WORK/base.db.new" "$WORK/base.report"
mkconf "$WORK/aide-of-ours.conf" "$WORK/ours.db" "$WORK/unused.db.new" "$WORK/aide-of-ours.report"
mkconf "$WORK/ours-of-aide.conf" "$WORK/aide.db" "$WORK/unused.db.new" "$WORK/ours-of-aide.report"

# ---------------------------------------------------------------------------- helpers
# timed LABEL CMD... : runs CMD under /usr/bin/time -v; sets RC, WALL (s), RSS (KiB)
timed() {
    local label=$1; shift
    local tf=$WORK/$label.time
    log "run $label: $*"
    set +e
    /usr/bin/time -v -o "$tf" "$@" >"$WORK/$label.stdout" 2>"$WORK/$label.stderr"
    RC=$?
    set -e
    WALL=$(awk -F': ' '/Elapsed \(wall clock\) time/ {
        n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }' "$tf")
    RSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tf")
    log "  -> exit $RC, ${WALL}s, max RSS ${RSS} KiB"
}

declare -A BEST_WALL BEST_RSS
record() { # key
    local k=$1
    if [[ -z ${BEST_WALL[$k]:-} ]] || awk -v a="$WALL" -v b="${BEST_WALL[$k]}" 'BEGIN{exit !(a < b)}'; then
        BEST_WALL[$k]=$WALL
    fi
    if [[ -z ${BEST_RSS[$k]:-} ]] || (( RSS > BEST_RSS[$k] )); then
        BEST_RSS[$k]=$RSS
    fi
}

FAIL=()
fail() { FAIL+=("$*"); echo "bench.sh: FAILED: $*" >&2; }

# ---------------------------------------------------------------------------- warm up
log "warming the page cache ($N_FILES files, $N_BYTES bytes) ..."
find "$TREE" -type f -print0 | xargs -0 -r -n 512 -P "$(nproc)" cat >/dev/null 2>&1 || true
find "$TREE" -printf '' >/dev/null

# ---------------------------------------------------------------------------- timed runs
base_init() {
    timed base-init "$BASE" -c "$WORK/base.conf" --init
    (( RC == 0 )) || die "baseline --init failed (exit $RC)"
    record base-init
    mv -f "$WORK/base.db.new" "$WORK/base.db"
}
base_check() {
    timed base-check "$BASE" -c "$WORK/base.conf" --check
    (( RC == 0 )) || fail "baseline --check of its own database exited $RC"
    record base-check
}
for ((run = 1; run <= RUNS; run++)); do
    log "=== run $run/$RUNS"
    timed aide-init "$AIDE" -c "$WORK/aide.conf" --init
    (( RC == 0 )) || die "aide --init failed (exit $RC), see $WORK/aide-init.stderr"
    record aide-init
    mv -f "$WORK/aide.db.new" "$WORK/aide.db"

    # With a baseline, it and ours run back to back, in alternating order from run to run, so
    # that neither always gets the page cache the other left.
    if [[ -n $BASE ]] && (( run % 2 == 0 )); then base_init; fi
    timed ours-init "$OURS" -c "$WORK/ours.conf" --init
    if (( RC != 0 )) || [[ ! -s $WORK/ours.db.new ]]; then
        cat "$WORK/ours-init.stderr" >&2 || true
        die "fio-scanner --init failed (exit $RC)"
    fi
    record ours-init
    mv -f "$WORK/ours.db.new" "$WORK/ours.db"

    if [[ -n $BASE ]] && (( run % 2 == 1 )); then base_init; fi

    timed aide-check "$AIDE" -c "$WORK/aide.conf" --check
    (( RC == 0 )) || fail "aide --check of its own database exited $RC (tree changed during the run?)"
    record aide-check

    if [[ -n $BASE ]] && (( run % 2 == 0 )); then base_check; fi
    timed ours-check "$OURS" -c "$WORK/ours.conf" --check
    (( RC == 0 )) || fail "fio-scanner --check of its own database exited $RC (expected 0, see $WORK/ours.report)"
    grep -q 'AIDE found NO differences' "$WORK/ours.report" 2>/dev/null ||
        fail "fio-scanner --check report does not say 'AIDE found NO differences'"
    record ours-check

    if [[ -n $BASE ]] && (( run % 2 == 1 )); then base_check; fi
done

log "=== cross checks"
timed aide-check-of-ours "$AIDE" -c "$WORK/aide-of-ours.conf" --check
(( RC == 0 )) || fail "aide --check of OUR database exited $RC (expected 0, see $WORK/aide-of-ours.report)"
grep -q 'AIDE found NO differences' "$WORK/aide-of-ours.report" 2>/dev/null ||
    fail "aide --check of OUR database does not report 'AIDE found NO differences'"
timed ours-check-of-aide "$OURS" -c "$WORK/ours-of-aide.conf" --check
(( RC == 0 )) || fail "fio-scanner --check of AIDE's database exited $RC (expected 0, see $WORK/ours-of-aide.report)"

# ---------------------------------------------------------------------------- hashing limit
log "measuring single-core sha512 throughput (openssl speed, 3 s) ..."
TPUT_K=$(openssl speed -evp sha512 -bytes 1048576 -seconds 3 2>/dev/null |
    awk '$1 == "sha512" {v = $NF; sub(/k$/, "", v); print v}' | tail -1)
[[ -n $TPUT_K ]] || die "could not parse openssl speed output"
CORES=$(nproc)
LIMIT=$(awk -v b="$N_BYTES" -v t="$TPUT_K" -v c="$CORES" 'BEGIN{printf "%.2f", b / (t * 1000 * c)}')

# ---------------------------------------------------------------------------- report
echo
echo "fio-scanner benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "  host       : $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
echo "  aide       : $AIDE ($("$AIDE" -v 2>&1 | head -1))"
echo "  ours       : $OURS"
echo "  tree       : $TREE  ($N_ENTRIES entries, $N_FILES regular files, $(awk -v b="$N_BYTES" 'BEGIN{printf "%.2f GiB", b/1073741824}'))"
echo "  rule       : CONTENT_EX = $RULE"
echo "  db sizes   : aide $(stat -c %s "$WORK/aide.db") B, ours $(stat -c %s "$WORK/ours.db") B"
echo "  sha512     : $(awk -v t="$TPUT_K" 'BEGIN{printf "%.0f MB/s", t/1000}') per core (openssl speed -evp sha512, 1 MiB blocks)"
echo "  hash limit : $LIMIT s = regular-file bytes / (sha512 throughput x $CORES cores)"
echo "  runs       : $RUNS (best wall time, max RSS)"
echo
printf '%-6s %12s %12s %9s %13s %13s %10s %16s\n' \
    mode 'aide wall s' 'ours wall s' speedup 'aide RSS MiB' 'ours RSS MiB' 'RSS ratio' 'ours/hash limit'
for mode in init check; do
    aw=${BEST_WALL[aide-$mode]}; ow=${BEST_WALL[ours-$mode]}
    ar=${BEST_RSS[aide-$mode]}; orr=${BEST_RSS[ours-$mode]}
    awk -v m="$mode" -v aw="$aw" -v ow="$ow" -v ar="$ar" -v orr="$orr" -v lim="$LIMIT" 'BEGIN{
        sp = (ow > 0) ? aw / ow : 0; rr = (ar > 0) ? orr / ar : 0; hl = (lim > 0) ? ow / lim : 0
        printf "%-6s %12.2f %12.2f %8.2fx %13.1f %13.1f %10.2f %15.2fx\n", m, aw, ow, sp, ar/1024, orr/1024, rr, hl }'
done
if [[ -n $BASE ]]; then
    echo "  baseline   : $BASE"
    for mode in init check; do
        aw=${BEST_WALL[aide-$mode]}; bw=${BEST_WALL[base-$mode]}; ow=${BEST_WALL[ours-$mode]}
        br=${BEST_RSS[base-$mode]}; orr=${BEST_RSS[ours-$mode]}
        awk -v m="$mode" -v aw="$aw" -v bw="$bw" -v ow="$ow" -v br="$br" -v orr="$orr" 'BEGIN{
            printf "%-6s baseline %8.2f s (%5.2fx aide), ours %8.2f s (%5.2fx aide): ours/baseline wall %.2f, RSS %.1f / %.1f MiB\n",
                m, bw, aw / bw, ow, aw / ow, ow / bw, orr / 1024, br / 1024 }'
    done
fi
echo "  (speedup = aide wall / ours wall; RSS ratio = ours / aide; ours/hash limit = ours wall / hash limit)"
echo

if ((${#FAIL[@]})); then
    echo "VERIFICATION FAILED:"
    printf '  - %s\n' "${FAIL[@]}"
    exit 1
fi
echo "verification: ours --check clean, aide --check of our database clean, ours --check of aide's database clean"
