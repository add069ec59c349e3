//! A cluster daemon's configuration is input it did not write: whatever it evaluates to, the
//! daemon touches only its own files, runs no program and never hangs on an include. Each case
//! runs the daemon's scanner on a real tree holding a file the attack aims at.

use super::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

struct Node {
    _dir: tempfile::TempDir,
    root: PathBuf,
    scanner: NodeScanner,
}

/// A node root with `/etc/kubernetes/kubelet.conf` and a tree to scan, and a daemon scanner
/// whose configuration starts with `conf` (`@ROOT@` = the node root) and ends with the
/// operator's database lines.
fn node(conf: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let kube = root.join("etc/kubernetes");
    fs::create_dir_all(&kube).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/tool"), b"tool").unwrap();
    fs::write(kube.join("kubelet.conf"), b"credentials").unwrap();
    let config = dir.path().join("aide.conf");
    let k = kube.display();
    fs::write(
        &config,
        format!(
            "{}\ndatabase=file:{k}/aide.db.gz\ndatabase_out=file:{k}/aide.db.gz.new\ngzip_dbout=yes\n{}/usr/ p+sha256\n",
            conf.replace("@ROOT@", &root.display().to_string()),
            root.display()
        ),
    )
    .unwrap();
    let scanner = NodeScanner {
        config_path: config,
        load: LoadOptions::default(),
        max_backups: 5,
        node_name: "node-1".into(),
        own: Some(OwnFiles::in_dir(&kube)),
        node_root: None,
    };
    Node {
        _dir: dir,
        root,
        scanner,
    }
}

fn kubelet_conf(n: &Node) -> Option<Vec<u8>> {
    fs::read(n.root.join("etc/kubernetes/kubelet.conf")).ok()
}

/// The verdict is an invalid-configuration error at `line` of the daemon's file.
fn assert_invalid_at(v: &Verdict, n: &Node, line: usize, says: &str) {
    let Verdict::Errored { exit, message } = v else {
        panic!("expected an error, got {v:?}");
    };
    assert_eq!(*exit, Some(Exit::InvalidConfig), "{message}");
    let at = format!("{}:{line}: ", n.scanner.config_path.display());
    assert!(message.contains(&at), "{message} does not name {at}");
    assert!(message.contains(says), "{message} does not say {says}");
}

#[test]
fn a_report_url_hidden_in_a_macro_cannot_truncate_or_delete_a_node_file() {
    let n = node("@@define V file:@ROOT@/etc/kubernetes/kubelet.conf\nreport_url=@@{V}");
    let err = n.scanner.init(false).unwrap_err();
    assert_invalid_at(&err, &n, 2, "report_url must be stdout, stderr or file:");
    assert_invalid_at(&n.scanner.check(), &n, 2, "report_url must be");
    assert_eq!(kubelet_conf(&n).as_deref(), Some(&b"credentials"[..]));
    assert!(!n.root.join("etc/kubernetes/aide.db.gz").exists());
}

#[test]
fn databases_elsewhere_are_refused_naming_their_line() {
    let n = node("database_out=file:/tmp/elsewhere.db.gz");
    assert_invalid_at(
        &n.scanner.init(false).unwrap_err(),
        &n,
        1,
        "database_out must be",
    );
    let n = node("database=file:@@{DBDIR}/../kubernetes/aide.db.gz\n@@define DBDIR /x");
    assert_invalid_at(&n.scanner.check(), &n, 1, "database_in must be");
}

#[test]
fn x_include_is_refused_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let prog = dir.path().join("prog");
    fs::write(&prog, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    let n = node(&format!("# a comment\n@@x_include {}", prog.display()));
    assert_invalid_at(&n.scanner.check(), &n, 2, "'@@x_include' is refused");
    assert!(!marker.exists(), "the program ran");
}

#[test]
fn an_include_of_a_huge_file_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.conf");
    let f = fs::File::create(&huge).unwrap();
    f.set_len(4 << 30).unwrap(); // sparse: 4 GiB of NUL without the disk space
    let n = node(&format!("@@include {}", huge.display()));
    let Verdict::Errored { exit, message } = n.scanner.check() else {
        panic!("a 4 GiB include was accepted");
    };
    assert_eq!(exit, Some(Exit::Io));
    assert!(message.contains(":1: cannot open config file"), "{message}");
    assert!(message.contains("larger than the 16 MiB"), "{message}");
}

#[test]
fn an_include_whose_read_would_block_is_an_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let n = node(&format!("@@include {}", fifo.display()));
    // A blocking open of a FIFO without a writer waits forever; this returns.
    let Verdict::Errored { message, .. } = n.scanner.check() else {
        panic!("a FIFO include was accepted");
    };
    assert!(message.contains("not a regular file"), "{message}");
}

#[test]
fn the_daemons_own_configuration_runs_and_keeps_its_report_as_aide_log() {
    let n = node("report_url=file:@ROOT@/etc/kubernetes/aide.log.new\nreport_url=stdout");
    n.scanner.init(false).unwrap();
    fs::write(n.root.join("usr/bin/tool"), b"changed").unwrap();
    let v = n.scanner.check();
    assert!(matches!(v, Verdict::Failed { changed: 1, .. }), "{v:?}");
    let kube = n.root.join("etc/kubernetes");
    assert!(kube.join("aide.log").exists());
    assert!(!kube.join("aide.log.new").exists());
    assert_eq!(kubelet_conf(&n).as_deref(), Some(&b"credentials"[..]));
}

#[test]
fn a_check_is_judged_by_the_database_bytes_it_read_before_any_report() {
    let n = node("report_url=file:@ROOT@/etc/kubernetes/aide.log.new");
    let kube = n.root.join("etc/kubernetes");
    n.scanner.init(false).unwrap();
    let stored = fs::read(kube.join("aide.db.gz")).unwrap();
    let files = || {
        (
            fs::read(kube.join("aide.log")).ok(),
            fs::read(kube.join("aide.log.new")).ok(),
        )
    };
    let before = files();
    fs::write(n.root.join("usr/bin/tool"), b"changed").unwrap();
    let seen = std::cell::RefCell::new(None);
    let c = n.scanner.check_sealed(&|d| {
        *seen.borrow_mut() = Some(d.clone());
        Err("not the anchored database".into())
    });
    let d = seen.into_inner().expect("verify was not called");
    assert_eq!(d.sha256, crate::hash::sha256_hex(&stored));
    assert_eq!(d.size, stored.len() as u64);
    assert_eq!(c.database.as_ref(), Some(&d));
    assert!(
        matches!(&c.verdict, Verdict::Errored { exit: None, message } if message == "not the anchored database"),
        "{:?}",
        c.verdict
    );
    // Refused before the report: neither the report file nor aide.log was written.
    assert_eq!(files(), before);
    let ok = n.scanner.check_sealed(&|_| Ok(()));
    assert!(
        matches!(ok.verdict, Verdict::Failed { changed: 1, .. }),
        "{:?}",
        ok.verdict
    );
    assert_ne!(files(), before);
}

/// A failed check lists its changes as on the node (below the node's root) and carries the
/// full list as AIDE's JSON report with `root_prefix` set to that root.
#[test]
fn a_failed_check_lists_its_changes_as_on_the_node() {
    let mut n = node("report_url=file:@ROOT@/etc/kubernetes/aide.log.new");
    n.scanner.node_root = Some(n.root.clone());
    n.scanner.init(false).unwrap();
    fs::write(n.root.join("usr/bin/tool"), b"changed").unwrap();
    fs::write(n.root.join("usr/bin/new"), b"new").unwrap();
    let Verdict::Failed {
        changes,
        changes_json,
        ..
    } = n.scanner.check()
    else {
        panic!("no failure");
    };
    let listed: Vec<(&str, &str)> = changes
        .listed
        .iter()
        .map(|c| (c.path.as_str(), c.kind.as_str()))
        .collect();
    assert_eq!(
        listed,
        [("/usr/bin/new", "added"), ("/usr/bin/tool", "changed")]
    );
    assert_eq!(changes.total, 2);
    assert_eq!(changes.listed[1].attributes, ["sha256"]);
    let json = String::from_utf8(changes_json).unwrap();
    assert!(
        json.contains("\"/usr/bin/new\": \"f+++++++++++++++++\""),
        "{json}"
    );
    assert!(json.contains("\"/usr/bin/tool\": "), "{json}");
    let root = format!("\"root_prefix\": \"{}\"", n.root.display());
    assert!(json.contains(&root), "{json}");
}

/// A focused check on the paths that changed since the last check gives what a full check
/// gives: the same comparison, counts and change list (added below a new directory, removed,
/// changed back); one whose focus misses a change keeps the old state of that path.
#[test]
fn a_focused_check_on_what_changed_equals_a_full_check() {
    let mut n = node("report_url=file:@ROOT@/etc/kubernetes/aide.log.new");
    n.scanner.node_root = Some(n.root.clone());
    n.scanner.init(false).unwrap();
    let bin = n.root.join("usr/bin");
    fs::write(bin.join("tool"), b"changed").unwrap();
    fs::write(bin.join("new"), b"new").unwrap();
    let first = n.scanner.check_sealed(&|_| Ok(()));
    assert_eq!(first.verdict.condition(), "Failed");
    let standing = first
        .comparison
        .expect("a Failed check keeps its comparison");

    fs::remove_file(bin.join("new")).unwrap();
    fs::create_dir_all(bin.join("sub/dir")).unwrap();
    fs::write(bin.join("sub/dir/file"), b"f").unwrap();
    fs::write(bin.join("tool"), b"tool").unwrap();
    fs::write(bin.join("other"), b"missed").unwrap();
    let at = |name: &str| bin.join(name).as_os_str().as_encoded_bytes().to_vec();
    let focus = Arc::new(Focus::new(["new", "sub", "tool"].map(at)));
    let focused = n
        .scanner
        .check_focused(focus, standing.clone(), &|_| Ok(()));
    let names = |c: &Checked| -> Vec<String> {
        let Verdict::Failed { changes, .. } = &c.verdict else {
            panic!("not Failed: {:?}", c.verdict);
        };
        changes
            .listed
            .iter()
            .map(|c| format!("{} {}", c.kind.as_str(), c.path))
            .collect()
    };
    assert_eq!(
        names(&focused),
        [
            "added /usr/bin/sub",
            "added /usr/bin/sub/dir",
            "added /usr/bin/sub/dir/file",
        ],
        "`other` is outside the focus: not seen yet"
    );
    let all = Arc::new(Focus::new(["new", "sub", "tool", "other"].map(at)));
    let focused = n.scanner.check_focused(all, standing, &|_| Ok(()));
    let full = n.scanner.check_sealed(&|_| Ok(()));
    assert_eq!(names(&focused).len(), 4);
    assert_eq!(names(&focused), names(&full));
    assert_eq!(focused.comparison, full.comparison);
    assert_eq!(focused.files, full.files);
    assert_eq!(focused.database, full.database);
}

/// Expected changes (issue 28): the baseline moves for the accepted paths only, every other
/// entry byte for byte as it was, the old database kept as a backup.
#[test]
fn accepting_paths_moves_only_their_entries() {
    use crate::database::DbReader;
    let n = node("report_url=file:@ROOT@/etc/kubernetes/aide.log.new");
    let bin = n.root.join("usr/bin");
    fs::write(bin.join("cert"), b"old cert").unwrap();
    fs::write(bin.join("other"), b"other").unwrap();
    n.scanner.init(false).unwrap();
    let kube = n.root.join("etc/kubernetes");
    let lines = |p: &Path| -> Vec<String> {
        let mut r = DbReader::open(p, crate::attr::AttrSet::EMPTY).unwrap();
        std::iter::from_fn(|| r.next_raw().unwrap().map(|e| e.line)).collect()
    };
    let before = lines(&kube.join("aide.db.gz"));

    fs::write(bin.join("cert"), b"rotated cert").unwrap();
    fs::write(bin.join("other"), b"tampered").unwrap();
    fs::write(bin.join("new"), b"new").unwrap();
    let path = |name: &str| bin.join(name).as_os_str().as_encoded_bytes().to_vec();
    let asked = [path("cert"), path("other"), path("tool")];
    // `other` was written again after it was accepted: not what was accepted.
    let (db, moved) = n
        .scanner
        .accept(&asked, &|c| {
            c.kind != crate::changes::ChangeKind::Changed || c.path.ends_with("/cert")
        })
        .unwrap();
    assert_eq!(
        moved,
        [path("cert")],
        "`tool` did not change, `other` not as accepted"
    );
    let db = db.expect("a new baseline");
    assert_eq!(db.entries, Some(before.len() as u64));
    let after = lines(&kube.join("aide.db.gz"));
    let differ: Vec<(&String, &String)> =
        before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    assert_eq!(differ.len(), 1, "{differ:?}");
    assert!(differ[0]
        .1
        .starts_with(&bin.join("cert").display().to_string()));
    let backups = fs::read_dir(&kube)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("aide.db.gz.backup-")
        })
        .count();
    assert_eq!(backups, 1, "the old baseline kept");

    // The check now lists what was not accepted, and only that.
    let Verdict::Failed { changes, .. } = n.scanner.check() else {
        panic!("not Failed");
    };
    let listed: Vec<String> = changes
        .listed
        .iter()
        .map(|c| format!("{} {}", c.kind.as_str(), c.path))
        .collect();
    assert_eq!(
        listed,
        [
            format!("added {}", bin.join("new").display()),
            format!("changed {}", bin.join("other").display()),
        ]
    );
    // Nothing left to accept: nothing written.
    let (db, moved) = n.scanner.accept(&[path("cert")], &|_| true).unwrap();
    assert!(db.is_none() && moved.is_empty());
}
