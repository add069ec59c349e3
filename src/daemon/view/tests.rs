//! The comparison fed with mount tables as a real node shows them: the kubelet's (paths from
//! the node's root) and the daemon's after hardening (the container's hostPath bind of `/`,
//! its own recursive read-only copy on top, and its writable database directory).

use super::*;

const HOSTROOT: &str = "/hostroot";

/// The kubelet's table: the node's root, /usr, /proc and one pod's token volume; all shared.
const KUBELET: &str = "\
100 50 8:1 /srv/nodes/n1 / rw,relatime shared:1 - ext4 /dev/sda1 rw
101 100 8:1 /usr /usr ro,relatime shared:2 - ext4 /dev/sda1 rw
102 100 0:21 / /proc rw,nosuid shared:3 - proc proc rw
103 100 0:50 / /var/lib/kubelet/pods/abc/volumes/kubernetes.io~projected/token rw shared:4 - tmpfs tmpfs rw
";

/// The daemon's table: its container, the hostPath bind (slaves of the node's), its read-only
/// copy, and its writable bind of /etc/kubernetes (id 610).
const DAEMON: &str = "\
500 400 0:60 / / rw - overlay overlay rw
510 500 8:1 /srv/nodes/n1 /hostroot rw master:1 - ext4 /dev/sda1 rw
511 510 8:1 /usr /hostroot/usr ro master:2 - ext4 /dev/sda1 rw
512 510 0:21 / /hostroot/proc rw master:3 - proc proc rw
513 510 0:50 / /hostroot/var/lib/kubelet/pods/abc/volumes/kubernetes.io~projected/token rw master:4 - tmpfs tmpfs rw
600 510 8:1 /srv/nodes/n1 /hostroot ro master:1 - ext4 /dev/sda1 rw
601 600 8:1 /usr /hostroot/usr ro master:2 - ext4 /dev/sda1 rw
602 600 0:21 / /hostroot/proc ro master:3 - proc proc rw
603 600 0:50 / /hostroot/var/lib/kubelet/pods/abc/volumes/kubernetes.io~projected/token ro master:4 - tmpfs tmpfs rw
610 600 8:1 /srv/nodes/n1/etc/kubernetes /hostroot/etc/kubernetes rw master:1 - ext4 /dev/sda1 rw
";

fn own_ids() -> BTreeSet<u64> {
    BTreeSet::from([610])
}

fn with(table: &str, extra: &str) -> Vec<Mount> {
    parse(format!("{table}{extra}").as_bytes())
}

fn without(table: &str, ids: &[&str]) -> Vec<Mount> {
    let kept: String = table
        .lines()
        .filter(|l| !ids.iter().any(|id| l.starts_with(&format!("{id} "))))
        .map(|l| format!("{l}\n"))
        .collect();
    parse(kept.as_bytes())
}

fn differences(own: &[Mount], reference: &[Mount]) -> Vec<(String, Only)> {
    compare(own, Path::new(HOSTROOT), &own_ids(), reference)
        .into_iter()
        .map(|d| (d.path.display().to_string(), d.only))
        .collect()
}

#[test]
fn parses_fields_escapes_and_propagation() {
    let t = parse(
        b"36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime shared:7 master:1 - ext3 /dev/root rw\n\
          37 36 0:5 / /host/var ro,nosuid,nodev,relatime unbindable - tmpfs tmpfs rw\n\
          38 36 0:6 / /no-separator rw shared:1\n\
          not a mount line\n",
    );
    assert_eq!(t.len(), 2, "malformed lines skipped: {t:?}");
    assert_eq!(t[0].point, Path::new("/mnt/with space"));
    assert_eq!((t[0].id, t[0].parent), (36, 35));
    assert_eq!(t[0].key(), ("98:0".to_owned(), PathBuf::from("/mnt1")));
    assert_eq!(t[0].flags, libc::MS_NOATIME);
    assert!(t[0].shared && !t[0].unbindable);
    assert_eq!(
        (t[0].fstype.as_str(), t[0].source.as_str()),
        ("ext3", "/dev/root")
    );
    assert_eq!(
        t[1].flags,
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_RELATIME
    );
    assert!(!t[1].shared && t[1].unbindable);
}

#[test]
fn the_hardened_daemon_sees_what_the_kubelet_sees() {
    assert_eq!(
        differences(&parse(DAEMON.as_bytes()), &parse(KUBELET.as_bytes())),
        []
    );
}

#[test]
fn a_file_bound_in_the_daemons_namespace_only_is_named() {
    // Attack 5: root enters the daemon's namespace and binds the original over /etc/passwd.
    let own = with(
        DAEMON,
        "700 600 8:1 /tmp/orig-passwd /hostroot/etc/passwd ro - ext4 /dev/sda1 rw\n",
    );
    let reference = parse(KUBELET.as_bytes());
    assert_eq!(
        differences(&own, &reference),
        [("/etc/passwd".to_owned(), Only::Daemon)]
    );
    let d = compare(&own, Path::new(HOSTROOT), &own_ids(), &reference);
    let shown = d.iter().next().map(|d| d.to_string()).unwrap_or_default();
    assert_eq!(
        shown,
        "/etc/passwd mounted only in the daemon's view (ext4 8:1 /tmp/orig-passwd)"
    );
}

#[test]
fn another_tree_over_a_host_mount_point_is_named() {
    // /usr is a mount point on the host too: what matters is what is mounted there.
    let own = with(
        DAEMON,
        "701 601 8:1 /tmp/fake-usr /hostroot/usr ro - ext4 /dev/sda1 rw\n",
    );
    assert_eq!(
        differences(&own, &parse(KUBELET.as_bytes())),
        [("/usr".to_owned(), Only::Daemon)]
    );
}

#[test]
fn the_same_tree_bound_again_changes_nothing_it_reads() {
    let own = with(
        DAEMON,
        "702 601 8:1 /usr /hostroot/usr ro - ext4 /dev/sda1 rw\n",
    );
    assert_eq!(differences(&own, &parse(KUBELET.as_bytes())), []);
}

#[test]
fn a_host_mount_unmounted_in_the_daemons_namespace_is_named() {
    // Unmounting reveals what lies under the host's mount (e.g. an older file).
    let own = without(DAEMON, &["513", "603"]);
    assert_eq!(
        differences(&own, &parse(KUBELET.as_bytes())),
        [(
            "/var/lib/kubelet/pods/abc/volumes/kubernetes.io~projected/token".to_owned(),
            Only::Host
        )]
    );
}

#[test]
fn a_mount_over_the_daemons_own_bind_is_not_its_own() {
    let own = with(
        DAEMON,
        "620 610 8:1 /tmp/fake-db /hostroot/etc/kubernetes rw - ext4 /dev/sda1 rw\n",
    );
    assert_eq!(
        differences(&own, &parse(KUBELET.as_bytes())),
        [("/etc/kubernetes".to_owned(), Only::Daemon)]
    );
}

#[test]
fn mounts_that_do_not_propagate_are_no_difference() {
    // A host mount below a private mount made after the daemon started never reaches it; one
    // unmounted there stays in the daemon's copy. Neither is the daemon's doing.
    let reference = with(
        KUBELET,
        "104 100 0:70 / /mnt/private rw - tmpfs tmpfs rw\n\
         105 104 0:71 / /mnt/private/later rw - tmpfs tmpfs rw\n",
    );
    let own = with(
        DAEMON,
        "720 600 0:70 / /hostroot/mnt/private ro - tmpfs tmpfs rw\n\
         721 720 0:72 / /hostroot/mnt/private/gone ro - tmpfs tmpfs rw\n",
    );
    assert_eq!(differences(&own, &reference), []);
}

#[test]
fn only_the_topmost_host_mount_must_be_seen() {
    // Two mounts stacked on the host at /data: the container's bind copied the upper one.
    let reference = with(
        KUBELET,
        "106 100 8:2 / /data rw shared:5 - xfs /dev/sdb rw\n\
         107 106 8:3 / /data rw shared:6 - xfs /dev/sdc rw\n",
    );
    let own = with(
        DAEMON,
        "730 600 8:3 / /hostroot/data ro master:6 - xfs /dev/sdc rw\n",
    );
    assert_eq!(differences(&own, &reference), []);
}

#[test]
fn the_daemons_own_container_mounts_are_its_own() {
    // The runtime mounted /proc and /dev below the daemon's container root (on the host at
    // /run/containerd/.../rootfs) in the container's namespace; the hostPath bind copied them.
    let reference = with(
        KUBELET,
        "110 100 0:60 / /run/containerd/task/abc/rootfs rw shared:9 - overlay overlay rw\n",
    );
    let own = with(
        DAEMON,
        "750 600 0:60 / /hostroot/run/containerd/task/abc/rootfs ro master:9 - overlay overlay rw\n\
         751 750 0:61 / /hostroot/run/containerd/task/abc/rootfs/proc rw - proc proc rw\n\
         752 750 0:62 / /hostroot/run/containerd/task/abc/rootfs/dev rw - tmpfs tmpfs rw\n",
    );
    assert_eq!(differences(&own, &reference), []);
    // Another container's root is no excuse.
    let other = with(
        KUBELET,
        "111 100 0:63 / /run/containerd/task/xyz/rootfs rw shared:10 - overlay overlay rw\n",
    );
    let own = with(
        DAEMON,
        "753 600 0:63 / /hostroot/run/containerd/task/xyz/rootfs ro master:10 - overlay overlay rw\n\
         754 753 8:1 /tmp/x /hostroot/run/containerd/task/xyz/rootfs/etc/passwd ro - ext4 /dev/sda1 rw\n",
    );
    assert_eq!(
        differences(&own, &other),
        [(
            "/run/containerd/task/xyz/rootfs/etc/passwd".to_owned(),
            Only::Daemon
        )]
    );
}

#[test]
fn covered_files_leave_out_the_runtime_trees() {
    let own = with(
        DAEMON,
        "700 600 8:1 /tmp/orig-passwd /hostroot/etc/passwd ro - ext4 /dev/sda1 rw\n\
         740 600 0:50 /token /hostroot/var/lib/kubelet/pods/abc/volume-subpaths/c/0 ro - tmpfs tmpfs rw\n",
    );
    let files = [
        "/etc/passwd",
        "/var/lib/kubelet/pods/abc/volume-subpaths/c/0",
    ];
    let covered = covered_files(&own, Path::new(HOSTROOT), &own_ids(), |p| {
        !files.iter().any(|f| p == Path::new(f))
    });
    assert_eq!(covered, [PathBuf::from("/etc/passwd")]);
}

#[test]
fn the_digest_is_the_views_not_the_tables() {
    let root = Path::new(HOSTROOT);
    let base = digest(&parse(DAEMON.as_bytes()), root, &own_ids());
    // Other mount ids, other order, one duplicate: the same view.
    let reordered: String = DAEMON.lines().rev().map(|l| format!("9{l}\n")).collect();
    let ids: BTreeSet<u64> = BTreeSet::from([9610]);
    assert_eq!(digest(&parse(reordered.as_bytes()), root, &ids), base);
    let added = with(
        DAEMON,
        "700 600 8:1 /tmp/x /hostroot/etc/passwd ro - ext4 /dev/sda1 rw\n",
    );
    assert_ne!(digest(&added, root, &own_ids()), base);
    assert_eq!(base.len(), 64);
}

#[test]
fn the_message_names_at_most_ten() {
    let altered: BTreeSet<Difference> = (0..15)
        .map(|i| Difference {
            path: PathBuf::from(format!("/etc/f{i:02}")),
            only: Only::Daemon,
            fstype: "ext4".into(),
            dev: "8:1".into(),
            root: PathBuf::from("/tmp/x"),
        })
        .collect();
    let o = Observation {
        digest: String::new(),
        altered,
        covered_files: vec![],
    };
    let m = o.altered_message().unwrap_or_default();
    assert!(
        m.starts_with("view of the host altered: /etc/f00 mounted only"),
        "{m}"
    );
    assert!(m.contains("/etc/f09") && !m.contains("/etc/f10"), "{m}");
    assert!(m.ends_with("; and 5 more"), "{m}");
    let clean = Observation {
        altered: BTreeSet::new(),
        ..o
    };
    assert_eq!(clean.altered_message(), None);
}

#[test]
fn results_list_twenty_covered_files_escaped() {
    let covered: Vec<PathBuf> = (0..25)
        .map(|i| PathBuf::from(format!("/etc/f{i:02}")))
        .collect();
    let o = Observation {
        digest: "d".repeat(64),
        altered: BTreeSet::new(),
        covered_files: covered,
    };
    let v = o.host_view();
    assert_eq!(v.covered_files.len(), 21);
    assert_eq!(v.covered_files[20], "and 5 more");
    assert_eq!(escaped(Path::new("/etc/a\nb\\c")), "/etc/a\\012b\\134c");
    let latin1 = PathBuf::from(std::ffi::OsString::from_vec(b"/etc/caf\xe9".to_vec()));
    assert_eq!(escaped(&latin1), "/etc/caf\\351");
    assert_eq!(escaped(Path::new("/etc/café")), "/etc/café");
}
