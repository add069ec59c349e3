//! fio-scanner's own behaviour beyond AIDE compatibility: re-init with backups, databases in
//! another order, and what a user sees on the command line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Setup {
    _dir: tempfile::TempDir,
    tree: PathBuf,
    db_dir: PathBuf,
    conf: PathBuf,
}

fn setup() -> Setup {
    // Under target/ (not a tmpfs /tmp) so that xattrs work as on a node's disk.
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let tree = dir.path().join("hostroot");
    let db_dir = dir.path().join("etc-kubernetes");
    fs::create_dir_all(tree.join("etc/ssh")).unwrap();
    fs::create_dir_all(&db_dir).unwrap();
    fs::write(tree.join("etc/resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
    fs::write(tree.join("etc/ssh/sshd_config"), "PermitRootLogin no\n").unwrap();
    fs::write(tree.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    let conf = dir.path().join("aide.conf");
    fs::write(
        &conf,
        format!(
            "database_in=file:{db}/aide.db.gz\ndatabase_out=file:{db}/aide.db.gz.new\ngzip_dbout=yes\n\
             report_url=file:{db}/aide.log.new\nCONTENTEX = sha512+ftype+p+u+g+n+acl+selinux+xattrs\n{tree}/etc/ CONTENTEX\n",
            db = db_dir.display(),
            tree = tree.display()
        ),
    )
    .unwrap();
    Setup {
        _dir: dir,
        tree,
        db_dir,
        conf,
    }
}

fn scanner(s: &Setup, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fio-scanner"));
    run_scanner(cmd.arg("-c").arg(&s.conf).args(args))
}

/// Exit status (-1 = killed by a signal) and stderr of a scanner command.
fn run_scanner(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("run fio-scanner");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn reinit_backs_up_database_and_log_and_prunes() {
    let s = setup();
    assert_eq!(scanner(&s, &["--init"]).0, 0);
    fs::rename(s.db_dir.join("aide.db.gz.new"), s.db_dir.join("aide.db.gz")).unwrap();
    fs::write(s.tree.join("etc/resolv.conf"), "nameserver 10.9.9.9\n").unwrap();
    let (rc, _) = scanner(&s, &["--check"]);
    assert_eq!(rc, 4, "a changed file is exit 4");
    fs::copy(s.db_dir.join("aide.log.new"), s.db_dir.join("aide.log")).unwrap();
    let old_db = fs::read(s.db_dir.join("aide.db.gz")).unwrap();

    let (rc, err) = scanner(&s, &["--reinit", "--max-backups", "2"]);
    assert_eq!(rc, 0, "{err}");
    let n = names(&s.db_dir);
    let db_backups: Vec<&String> = n
        .iter()
        .filter(|x| x.starts_with("aide.db.gz.backup-"))
        .collect();
    let log_backups: Vec<&String> = n
        .iter()
        .filter(|x| x.starts_with("aide.log.backup-"))
        .collect();
    assert_eq!((db_backups.len(), log_backups.len()), (1, 1), "{n:?}");
    // The backup is the old baseline, byte for byte; the new database and an empty log replace them.
    assert_eq!(fs::read(s.db_dir.join(db_backups[0])).unwrap(), old_db);
    assert_eq!(fs::metadata(s.db_dir.join("aide.log")).unwrap().len(), 0);
    assert_eq!(mode(&s.db_dir.join("aide.db.gz")), 0o600);
    assert_eq!(mode(&s.db_dir.join("aide.log")), 0o644);
    assert!(!s.db_dir.join("aide.db.gz.new").exists());
    // The suffix is backup-YYYYMMDDTHH_MM_SS, as the upstream daemon writes it.
    let suffix = &db_backups[0]["aide.db.gz.backup-".len()..];
    assert!(
        suffix.len() == 17 && suffix.as_bytes()[8] == b'T' && suffix.as_bytes()[11] == b'_',
        "{suffix}"
    );
    assert_eq!(scanner(&s, &["--check"]).0, 0, "clean after re-init");

    // Two more re-inits (possibly in the same second): never an overwritten backup, at most 2 kept.
    for _ in 0..2 {
        assert_eq!(scanner(&s, &["--reinit", "--max-backups", "2"]).0, 0);
    }
    let n = names(&s.db_dir);
    assert_eq!(
        n.iter()
            .filter(|x| x.starts_with("aide.db.gz.backup-"))
            .count(),
        2,
        "{n:?}"
    );
    assert_eq!(
        n.iter()
            .filter(|x| x.starts_with("aide.log.backup-"))
            .count(),
        2,
        "{n:?}"
    );
}

#[test]
fn failed_init_keeps_the_old_database() {
    let s = setup();
    assert_eq!(scanner(&s, &["--init"]).0, 0);
    fs::rename(s.db_dir.join("aide.db.gz.new"), s.db_dir.join("aide.db.gz")).unwrap();
    let before = fs::read(s.db_dir.join("aide.db.gz")).unwrap();
    // A config error (exit 17) during a re-init must not touch the baseline.
    let bad = fs::read_to_string(&s.conf).unwrap() + "/x p+nosuchattr\n";
    fs::write(&s.conf, bad).unwrap();
    let (rc, err) = scanner(&s, &["--reinit"]);
    assert_eq!(rc, 17, "{err}");
    assert!(
        err.contains("aide.conf:7"),
        "error names file and line: {err}"
    );
    assert_eq!(fs::read(s.db_dir.join("aide.db.gz")).unwrap(), before);
    let n = names(&s.db_dir);
    assert!(
        !n.iter().any(|x| x.contains("backup") || x.contains("tmp")),
        "{n:?}"
    );
}

#[test]
fn database_in_another_order_is_still_compared_correctly() {
    let s = setup();
    let conf = fs::read_to_string(&s.conf)
        .unwrap()
        .replace("gzip_dbout=yes", "gzip_dbout=no");
    fs::write(&s.conf, conf).unwrap();
    assert_eq!(scanner(&s, &["--init"]).0, 0);
    // Reverse the entry lines, as an old AIDE or a hand edit might leave them.
    let text = fs::read_to_string(s.db_dir.join("aide.db.gz.new")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.iter().position(|l| l.starts_with('/')).unwrap();
    let end = lines
        .iter()
        .position(|l| l.starts_with("@@end_db"))
        .unwrap();
    let mut out: Vec<&str> = lines[..first].to_vec();
    out.extend(lines[first..end].iter().rev());
    out.extend(&lines[end..]);
    fs::write(s.db_dir.join("aide.db.gz"), out.join("\n") + "\n").unwrap();
    assert_eq!(
        scanner(&s, &["--check"]).0,
        0,
        "same tree, reordered database: no differences"
    );
    fs::remove_file(s.tree.join("etc/hosts")).unwrap();
    assert_eq!(scanner(&s, &["--check"]).0, 2, "one removed entry");
}

/// Mount a tmpfs (we run as root, as the scanner does on a node). None where mounting is not
/// allowed, so that this one test can say it was skipped instead of failing for the sandbox.
fn mount_tmpfs(at: &Path) -> Option<()> {
    fs::create_dir_all(at).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "fio-test", at.to_str()?])
        .status()
        .ok()?
        .success();
    ok.then_some(())
}

#[test]
fn mount_points_are_entered_only_when_a_rule_points_inside() {
    let s = setup();
    let mnt = s.tree.join("etc/mnt");
    if mount_tmpfs(&mnt).is_none() {
        panic!(
            "cannot mount a tmpfs at {} (tests run as root, as .ci/run requires)",
            mnt.display()
        );
    }
    fs::write(mnt.join("inside"), "x").unwrap();
    let result = std::panic::catch_unwind(|| {
        let conf = fs::read_to_string(&s.conf)
            .unwrap()
            .replace("gzip_dbout=yes", "gzip_dbout=no");
        fs::write(&s.conf, &conf).unwrap();
        assert_eq!(scanner(&s, &["--init"]).0, 0);
        let db = fs::read_to_string(s.db_dir.join("aide.db.gz.new")).unwrap();
        assert!(
            db.contains("/etc/mnt "),
            "the mount point itself is recorded"
        );
        assert!(!db.contains("/etc/mnt/inside"), "but not entered: {db}");
        // A rule naming a path inside the mount: now it is scanned.
        fs::write(
            &s.conf,
            format!("{conf}{}/etc/mnt/ CONTENTEX\n", s.tree.display()),
        )
        .unwrap();
        assert_eq!(scanner(&s, &["--init"]).0, 0);
        let db = fs::read_to_string(s.db_dir.join("aide.db.gz.new")).unwrap();
        assert!(db.contains("/etc/mnt/inside"), "{db}");
    });
    let _ = Command::new("umount").arg(&mnt).status();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn daemon_initialises_checks_and_logs_like_upstream() {
    let s = setup();
    let out = Command::new(env!("CARGO_BIN_EXE_fio-scanner"))
        .args(["daemon", "--once", "-c"])
        .arg(&s.conf)
        .env("NODE_NAME", "node-1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    // The lines of the seed's `oc logs` sample, in that order.
    let mut at = 0;
    for line in [
        "Starting the AIDE runner daemon",
        "initializing AIDE db",
        "initialization finished",
        "running aide check",
    ] {
        let pos = stdout[at..]
            .find(line)
            .unwrap_or_else(|| panic!("'{line}' missing after byte {at}: {stdout}"));
        at += pos + line.len();
    }
    assert_eq!(mode(&s.db_dir.join("aide.db.gz")), 0o600);
    assert_eq!(mode(&s.db_dir.join("aide.log")), 0o644);

    fs::write(s.tree.join("etc/resolv.conf"), "nameserver 10.9.9.9\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fio-scanner"))
        .args(["daemon", "--once", "-c"])
        .arg(&s.conf)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(
        !stdout.contains("initializing AIDE db"),
        "a baseline exists: no init: {stdout}"
    );
    let log = fs::read_to_string(s.db_dir.join("aide.log")).unwrap();
    assert!(log.contains("Changed entries:\t\t1"), "{log}");
    assert!(
        log.contains(&format!("{}/etc/resolv.conf", s.tree.display())),
        "{log}"
    );
}

/// Run fio-scanner as the unprivileged user `nobody`, for whom a root-only directory cannot be
/// opened (as root, nothing is unreadable).
fn scanner_as_nobody(s: &Setup, args: &[&str]) -> (i32, String) {
    use std::os::unix::process::CommandExt;
    let out = Command::new(env!("CARGO_BIN_EXE_fio-scanner"))
        .arg("-c")
        .arg(&s.conf)
        .args(args)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} as nobody: {e} (nobody must reach the binary: a target directory \
                 under a private home such as /root is out of its reach)",
                env!("CARGO_BIN_EXE_fio-scanner")
            )
        });
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unreadable_entries_are_reported_and_a_clean_check_with_them_is_not_exit_0() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    // Everything readable by nobody but one root-only directory.
    let top = s.tree.parent().unwrap();
    fs::set_permissions(top, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&s.db_dir, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&s.conf, fs::Permissions::from_mode(0o644)).unwrap();
    let locked = s.tree.join("etc/locked");
    fs::create_dir(&locked).unwrap();
    fs::write(locked.join("secret"), "x").unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();

    // --init that could not read everything: the database is written (as AIDE's), the exit
    // status says the run was not complete.
    let (rc, err) = scanner_as_nobody(&s, &["--init"]);
    assert_eq!(rc, 18, "{err}");
    assert!(
        err.contains("open_dir()") && err.contains("etc/locked"),
        "{err}"
    );
    fs::rename(s.db_dir.join("aide.db.gz.new"), s.db_dir.join("aide.db.gz")).unwrap();

    // No differences, but the same directory unreadable: exit 18 and the report says why.
    let (rc, err) = scanner_as_nobody(&s, &["--check"]);
    assert_eq!(rc, 18, "{err}");
    let report = fs::read_to_string(s.db_dir.join("aide.log.new")).unwrap();
    assert!(
        report.contains("Entries that could not be read:"),
        "{report}"
    );
    assert!(
        report.contains(&format!("open_dir() {}", locked.display())),
        "{report}"
    );

    // Differences win over unreadable entries in the exit status; the report lists both.
    fs::write(s.tree.join("etc/hosts"), "127.0.0.1 changed\n").unwrap();
    let (rc, err) = scanner_as_nobody(&s, &["--check"]);
    assert_eq!(rc, 4, "{err}");
    let report = fs::read_to_string(s.db_dir.join("aide.log.new")).unwrap();
    assert!(
        report.contains("Entries that could not be read:"),
        "{report}"
    );

    // Readable again (as root): a clean check is 0 once the baseline matches the tree.
    fs::write(s.tree.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    let (rc, err) = scanner(&s, &["--check"]);
    assert_eq!(rc, 1, "the directory's contents are added now: {err}");
}

#[test]
fn a_walk_that_cannot_start_writes_no_database() {
    let s = setup();
    let conf = fs::read_to_string(&s.conf).unwrap();
    // root_prefix names a directory that does not exist: the walk's root cannot be read.
    fs::write(
        &s.conf,
        format!("root_prefix={}/missing\n{conf}", s.tree.display()),
    )
    .unwrap();
    let (rc, err) = scanner(&s, &["--init"]);
    assert_eq!(rc, 18, "{err}");
    assert!(err.contains("cannot lstat the root"), "{err}");
    assert!(
        !s.db_dir.join("aide.db.gz.new").exists(),
        "a failed walk must not leave a (truncated) baseline: {:?}",
        names(&s.db_dir)
    );
}

#[test]
fn the_standalone_scanner_links_no_kubernetes_client_and_no_async_runtime() {
    // Symbol and file names of every crate linked in stay in the binary (line tables).
    let bin = fs::read(env!("CARGO_BIN_EXE_fio-scanner")).unwrap();
    let has = |needle: &str| bin.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has("fio_core"), "the check itself must see crate names");
    for crate_name in ["kube_client", "kube_core", "tokio", "hyper", "rustls"] {
        assert!(!has(crate_name), "fio-scanner links {crate_name}");
    }
}

/// The daemon pod's memory limit (deploy/: 600 MiB), as an address-space limit: an allocation
/// beyond it fails, and a scanner that does not bound its inputs aborts.
const POD_LIMIT: u64 = 600 << 20;

/// fio-scanner under [`POD_LIMIT`] (prlimit, from util-linux): exit status and stderr.
fn scanner_limited(s: &Setup, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={POD_LIMIT}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_fio-scanner"))
        .arg("-c")
        .arg(&s.conf)
        .args(args);
    run_scanner(&mut cmd)
}

/// Write a gzip'd database: `@@begin_db`, a spec with the name and perm columns, then `body`.
fn crafted_db(path: &Path, body: impl FnOnce(&mut dyn std::io::Write)) {
    let f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    gz.write_all(b"@@begin_db\n@@db_spec name perm\n").unwrap();
    body(&mut gz);
    gz.finish().unwrap();
}

use std::io::Write as _;

#[test]
fn crafted_databases_are_exit_18_naming_file_and_line_never_an_abort() {
    let s = setup();
    let db = s.db_dir.join("aide.db.gz");
    let expect = |case: &str, at: String, says: &str| {
        let (rc, err) = scanner_limited(&s, &["--check"]);
        assert_eq!(rc, 18, "{case}: {err}");
        assert!(err.contains(&at) && err.contains(says), "{case}: {err}");
    };

    // 20 MiB without a newline (a gzip bomb of one line).
    crafted_db(&db, |w| {
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..20 {
            w.write_all(&chunk).unwrap();
        }
    });
    expect(
        "long line",
        format!("{}:3: ", db.display()),
        "line longer than",
    );

    // A valid database followed by 64 MiB after @@end_db.
    let f = format!("{}/etc/hosts", s.tree.display());
    crafted_db(&db, |w| {
        writeln!(w, "{f} 100644\n@@end_db").unwrap();
        let chunk = vec![b'\n'; 1 << 20];
        for _ in 0..64 {
            w.write_all(&chunk).unwrap();
        }
    });
    expect(
        "trailer",
        format!("{}:", db.display()),
        "bytes follow @@end_db",
    );

    // 2.5 million entries in reverse order: too many to sort within the bound.
    let n = 2_500_000;
    crafted_db(&db, |w| {
        for i in (0..n).rev() {
            writeln!(w, "{}/etc/f{i:09} 100644", s.tree.display()).unwrap();
        }
        writeln!(w, "@@end_db").unwrap();
    });
    expect(
        "reversed",
        format!("{}:", db.display()),
        "would have to be sorted in memory",
    );

    // A gzip bomb of 1 GiB of blank lines and no @@end_db: read in bounded memory to the end.
    crafted_db(&db, |w| {
        let chunk = vec![b'\n'; 1 << 20];
        for _ in 0..1024 {
            w.write_all(&chunk).unwrap();
        }
    });
    expect(
        "bomb",
        format!("{}: database ends after line", db.display()),
        "without @@end_db",
    );

    // And the same limit does not stop a real check.
    assert_eq!(scanner_limited(&s, &["--init"]).0, 0);
    fs::rename(s.db_dir.join("aide.db.gz.new"), &db).unwrap();
    let (rc, err) = scanner_limited(&s, &["--check"]);
    assert_eq!(rc, 0, "{err}");
}

/// A complete database: a gzip stream that ends, whose last line is `@@end_db`.
fn whole_database(path: &Path) -> Result<(), String> {
    use std::io::Read as _;
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.trim_end().ends_with("@@end_db") {
        Ok(())
    } else {
        Err(format!("{}: no @@end_db", path.display()))
    }
}

/// Issue 22: a daemon killed (SIGKILL) at any point of an initialisation, a check, a re-init or
/// its backup rotation leaves the node with the old baseline or the new one, never none and
/// never a part, and every backup is a whole copy of a database that was once the baseline.
/// 200 kills at pseudo-random points (the seed is printed; FIO_KILL_SEED repeats a run).
#[test]
fn a_scanner_killed_anywhere_leaves_the_old_or_the_new_baseline_and_whole_backups() {
    use std::collections::HashSet;
    let s = setup();
    // Enough files that a run takes milliseconds, so the kills land all over it.
    for d in 0..20 {
        let dir = s.tree.join(format!("etc/d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..40 {
            fs::write(dir.join(format!("f{f}")), format!("{d} {f}\n").repeat(64)).unwrap();
        }
    }
    let db = s.db_dir.join("aide.db.gz");
    let log = s.db_dir.join("aide.log");
    let digest = |p: &Path| fio_core::hash::sha256_hex(&fs::read(p).unwrap());
    let daemon = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fio-scanner"));
        c.args(["daemon", "--once", "-c"]).arg(&s.conf);
        c
    };
    let reinit = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fio-scanner"));
        c.arg("-c")
            .arg(&s.conf)
            .args(["--reinit", "--max-backups", "3"]);
        c.arg("--log").arg(&log);
        c
    };
    // How long a whole run takes here, so that the kill delays span it. A first run measured
    // while other builds load the machine can take ten times a later one: the span adapts below
    // (shorter after a run that finished, longer after one that was killed).
    let t0 = std::time::Instant::now();
    assert!(reinit().output().unwrap().status.success());
    let measured = t0.elapsed().as_micros().max(1000) as u64 * 2;
    let mut span = measured;
    let seed = std::env::var("FIO_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            t.map_or(1, |d| d.as_nanos() as u64) | 1
        });
    eprintln!("FIO_KILL_SEED={seed}, kills within {span} us");
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Every database and log that was ever in place: a backup must be one of them, whole.
    let mut baselines: HashSet<String> = HashSet::from([digest(&db)]);
    let mut logs: HashSet<String> = HashSet::from([digest(&log)]);
    let (mut killed, mut finished) = (0, 0);
    for i in 0..200 {
        if i % 3 == 0 {
            // New content, so that the next baseline differs from the last.
            fs::write(s.tree.join("etc/hosts"), format!("127.0.0.{i} localhost\n")).unwrap();
        }
        let mut cmd = if next() % 2 == 0 { reinit() } else { daemon() };
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(next() % span));
        match child.try_wait().unwrap() {
            Some(_) => {
                finished += 1;
                span = (span * 3 / 4).max(1000);
            }
            None => {
                child.kill().unwrap();
                killed += 1;
                span = (span * 5 / 4).min(measured * 4);
            }
        }
        child.wait().unwrap();
        let before = baselines.clone();
        assert!(
            db.exists(),
            "iteration {i} (seed {seed}): no database after a kill"
        );
        whole_database(&db).unwrap_or_else(|e| panic!("iteration {i} (seed {seed}): {e}"));
        baselines.insert(digest(&db));
        if log.exists() {
            logs.insert(digest(&log));
        }
        for name in names(&s.db_dir) {
            let p = s.db_dir.join(&name);
            if name.starts_with("aide.db.gz.backup-") {
                whole_database(&p).unwrap_or_else(|e| panic!("iteration {i} (seed {seed}): {e}"));
                assert!(
                    before.contains(&digest(&p)),
                    "iteration {i} (seed {seed}): backup {name} was never a baseline"
                );
            } else if name.starts_with("aide.log.backup-") {
                assert!(
                    logs.contains(&digest(&p)),
                    "iteration {i} (seed {seed}): log backup {name} was never the log"
                );
            }
        }
    }
    // The kills did land while runs were in progress (every step of a rotation is also stopped
    // deterministically in fio-core's reinit tests), and runs also completed.
    eprintln!("killed {killed}, finished {finished}, last span {span} us");
    assert!(
        killed >= 20 && finished >= 1,
        "killed {killed}, finished {finished}"
    );
    // And the baseline still works: a check against it runs.
    let (rc, err) = scanner(&s, &["--check"]);
    assert!(rc < 14, "check after the kills: {rc} {err}");
}
