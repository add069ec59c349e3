#!/usr/bin/env bash
# The main job on an embedded default: build fio-scanner, scan a sample tree with a config in
# the operator's default style, change the tree, check it, re-initialise with backups.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin fio-scanner
bin="$PWD/target/release/fio-scanner"
work="$(mktemp -d /tmp/fio-demo.XXXXXX)"
tree="$work/hostroot"
db="$work/etc/kubernetes"
mkdir -p "$tree/etc/ssh" "$tree/boot" "$tree/root" "$db"
printf 'nameserver 10.0.0.1\n' > "$tree/etc/resolv.conf"
printf 'PermitRootLogin no\n' > "$tree/etc/ssh/sshd_config"
printf 'kernel\n' > "$tree/boot/vmlinuz"
ln -s resolv.conf "$tree/etc/resolv.link"
cat > "$work/aide.conf" <<CONF
@@define DBDIR $db
database_in=file:@@{DBDIR}/aide.db.gz
database_out=file:@@{DBDIR}/aide.db.gz.new
gzip_dbout=yes
report_url=file:@@{DBDIR}/aide.log.new
report_url=stdout
CONTENTEX = sha512+ftype+p+u+g+n+acl+selinux+xattrs
$tree/boot/ CONTENTEX
$tree/etc/ CONTENTEX
CONF
echo "== fio-scanner --init (config: $work/aide.conf)"
"$bin" -c "$work/aide.conf" --init
mv "$db/aide.db.gz.new" "$db/aide.db.gz"
echo "== change $tree/etc/resolv.conf, add a file, then fio-scanner --check"
printf '#foobar\n' >> "$tree/etc/resolv.conf"
touch "$tree/etc/added.conf"
rc=0; "$bin" -c "$work/aide.conf" --check || rc=$?
cp "$db/aide.log.new" "$db/aide.log"   # what the daemon does after each check
echo "== exit code $rc (1 added | 4 changed = 5)"
echo "== fio-scanner --reinit (backs up aide.db.gz and aide.log, as the operator does)"
"$bin" -c "$work/aide.conf" --reinit --log "$db/aide.log" > /dev/null
ls -l "$db"
echo "== fio-scanner --check after re-init"
"$bin" -c "$work/aide.conf" --check
echo "== demo files left in $work"
