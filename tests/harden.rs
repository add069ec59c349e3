//! `fio_daemon::harden` as a user would check it. Hardening is irreversible and must run while the
//! process has a single thread, so this test has its own `main` (`harness = false`): the parent
//! builds a tree, re-executes this binary with `FIO_HARDEN_CHILD=<case>`, and the child (one
//! thread, nothing else run yet) hardens itself, observes what it can and cannot do, and prints
//! the observations as one JSON object that the parent asserts on. Needs root (skipped otherwise).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use fio_daemon::harden::{harden, HardenOptions, ProcStatus, ReadonlyMethod};
use fio_operator::controller::daemonset::DAEMON_CAPABILITIES;

const CHILD_ENV: &str = "FIO_HARDEN_CHILD";
const DIR_ENV: &str = "FIO_HARDEN_DIR";
type Obs = BTreeMap<String, String>;

/// The test tree: `<dir>/hostroot` is the node, `<dir>/state` the daemon's state directory,
/// `<dir>/outside` neither.
struct Tree {
    dir: PathBuf,
}

impl Tree {
    fn root(&self) -> PathBuf {
        self.dir.join("hostroot")
    }
    fn db_dir(&self) -> PathBuf {
        self.root().join("etc/kubernetes")
    }
    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
    fn options(&self, keep: bool, method: ReadonlyMethod) -> HardenOptions {
        HardenOptions {
            host_root: self.root(),
            writable: vec![self.db_dir(), self.state()],
            keep_dac_read_search: keep,
            readonly_method: method,
        }
    }
}

fn make_tree(dir: &Path) -> Tree {
    let t = Tree {
        dir: dir.to_path_buf(),
    };
    let root = t.root();
    for d in ["etc/ssh", "etc/kubernetes", "usr/bin", "var"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::create_dir_all(t.state()).unwrap();
    fs::create_dir_all(dir.join("outside")).unwrap();
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(root.join("etc/ssh/sshd_config"), "PermitRootLogin no\n").unwrap();
    fs::write(root.join("usr/bin/tool"), "#!/bin/sh\nexit 0\n").unwrap();
    // Readable only by its owner, who is not us: needs CAP_DAC_READ_SEARCH (or DAC_OVERRIDE).
    let secret = root.join("etc/ssh/ssh_host_key");
    fs::write(&secret, "-----BEGIN KEY-----\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o400)).unwrap();
    std::os::unix::fs::chown(&secret, Some(1234), Some(1234)).unwrap();
    // So is this directory (0700, another owner): searching it needs the capability too.
    let private = root.join("etc/private");
    fs::create_dir_all(&private).unwrap();
    fs::write(private.join("data"), "x\n").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&private, Some(1234), Some(1234)).unwrap();
    t
}

fn scan_config(tree: &Path, db_dir: &Path) -> String {
    format!(
        "database_in=file:{db}/aide.db.gz\ndatabase_out=file:{db}/aide.db.gz.new\ngzip_dbout=yes\n\
         report_url=stdout\nALL = p+i+n+u+g+s+m+c+sha512+sha256+ftype+acl+xattrs\n\
         {tree}/etc/ ALL\n{tree}/usr/ ALL\n!{tree}/etc/kubernetes\n",
        db = db_dir.display(),
        tree = tree.display()
    )
}

fn scan_init(tree: &Path, db_dir: &Path) -> Result<PathBuf, String> {
    let text = scan_config(tree, db_dir);
    let cfg = fio_core::config::Config::parse_str(
        &text,
        &db_dir.join("aide.conf"),
        &fio_core::config::LoadOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    fio_core::scan::run(&cfg, fio_core::scan::Mode::Init).map_err(|e| e.to_string())?;
    Ok(db_dir.join("aide.db.gz.new"))
}

/// The entry lines of a database (no header, no footer with its time and digests).
fn db_entries(path: &Path) -> Vec<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with('/'))
        .map(str::to_string)
        .collect()
}

fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::EACCES) => "EACCES".into(),
        Some(libc::EROFS) => "EROFS".into(),
        Some(libc::ENOSYS) => "ENOSYS".into(),
        Some(libc::EINVAL) => "EINVAL".into(),
        Some(libc::ENOENT) => "ENOENT".into(),
        Some(n) => format!("errno {n}"),
        None => e.to_string(),
    }
}

fn outcome<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => errno_name(&e),
    }
}

fn last_result(r: libc::c_long) -> String {
    if r >= 0 {
        "ok".into()
    } else {
        errno_name(&std::io::Error::last_os_error())
    }
}

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

#[repr(C)]
struct FileHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; 128],
}

fn name_to_handle(p: &Path) -> Option<FileHandle> {
    let mut h = FileHandle {
        handle_bytes: 128,
        handle_type: 0,
        f_handle: [0; 128],
    };
    let mut mount_id = 0;
    // SAFETY: a handle buffer of the announced size and a valid path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            c(p).as_ptr(),
            &mut h as *mut FileHandle,
            &mut mount_id as *mut libc::c_int,
            0,
        )
    };
    (r == 0).then_some(h)
}

fn open_by_handle(mount_dir: &Path, h: &FileHandle) -> String {
    let dir = fs::File::open(mount_dir).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a handle filled by name_to_handle_at.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            dir.as_raw_fd(),
            h as *const FileHandle,
            libc::O_RDONLY,
        )
    };
    if r >= 0 {
        // SAFETY: the fd just opened.
        unsafe { libc::close(r as libc::c_int) };
    }
    last_result(r)
}

fn status_obs(o: &mut Obs) {
    let s = ProcStatus::current().unwrap();
    o.insert("CapEff".into(), format!("{:x}", s.cap_eff));
    o.insert("CapPrm".into(), format!("{:x}", s.cap_prm));
    o.insert("CapBnd".into(), format!("{:x}", s.cap_bnd));
    o.insert("CapAmb".into(), format!("{:x}", s.cap_amb));
    o.insert("CapInh".into(), format!("{:x}", s.cap_inh));
    o.insert("NoNewPrivs".into(), u8::from(s.no_new_privs).to_string());
    o.insert("Seccomp".into(), s.seccomp.to_string());
}

/// Per-mount options of the topmost mount at `point` ("ro"/"rw" first).
fn mount_opts(point: &Path) -> String {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let point = point.to_str().unwrap();
    info.lines()
        .rev()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(4) == Some(&point)).then(|| f[5].to_string())
        })
        .unwrap_or_else(|| "not a mount point".into())
}

/// A private tmpfs at `<root>/var`: a submount that must become read-only too. The child first
/// enters its own mount namespace so that the tmpfs never shows on the machine.
fn mount_submount(root: &Path) {
    // SAFETY: plain system calls with valid strings.
    unsafe {
        assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0, "unshare");
        assert_eq!(
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null()
            ),
            0
        );
        let var = c(&root.join("var"));
        assert_eq!(
            libc::mount(
                c"tmpfs".as_ptr(),
                var.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null()
            ),
            0,
            "mount tmpfs: {}",
            std::io::Error::last_os_error()
        );
    }
    fs::write(root.join("var/log"), "line\n").unwrap();
}

fn write(p: &Path) -> String {
    outcome(fs::write(p, "written after hardening\n"))
}

/// The child: harden, then observe. Runs before anything else in `main`.
fn child(case: &str) -> ! {
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect(DIR_ENV));
    let tree = Tree { dir: dir.clone() };
    let root = tree.root();
    let mut o = Obs::new();
    match case {
        "full" | "no_dac" | "remount" => {
            mount_submount(&root);
            let handle = name_to_handle(&root.join("etc/hosts"));
            if let Some(h) = &handle {
                o.insert("open_by_handle_before".into(), open_by_handle(&root, h));
            }
            let method = if case == "remount" {
                ReadonlyMethod::Remount
            } else {
                ReadonlyMethod::Auto
            };
            let report = match harden(&tree.options(case != "no_dac", method)) {
                Ok(r) => r,
                Err(e) => {
                    o.insert("harden".into(), format!("error: {e}"));
                    println!("{}", serde_json::to_string(&o).unwrap());
                    std::process::exit(0);
                }
            };
            o.insert("harden".into(), "ok".into());
            o.insert("report".into(), report.steps.join("\n"));
            o.insert("landlock".into(), report.landlock_enforced.to_string());
            status_obs(&mut o);
            o.insert("mount_root".into(), mount_opts(&root));
            o.insert("mount_var".into(), mount_opts(&root.join("var")));
            o.insert("mount_db".into(), mount_opts(&tree.db_dir()));
            if case != "remount" {
                // The scan first, while the tree is as the parent scanned it.
                let db = scan_init(&root, &tree.db_dir());
                o.insert(
                    "scan".into(),
                    match db {
                        Ok(p) => p.display().to_string(),
                        Err(e) => format!("error: {e}"),
                    },
                );
            }
            o.insert("write_etc".into(), write(&root.join("etc/new")));
            o.insert("write_existing".into(), write(&root.join("etc/hosts")));
            o.insert("write_root".into(), write(&root.join("new")));
            o.insert("write_var".into(), write(&root.join("var/new")));
            o.insert("write_db".into(), write(&tree.db_dir().join("new")));
            o.insert("write_state".into(), write(&tree.state().join("new")));
            o.insert("write_outside".into(), write(&dir.join("outside/new")));
            o.insert(
                "read_secret".into(),
                outcome(fs::read(root.join("etc/ssh/ssh_host_key"))),
            );
            o.insert(
                "read_private_dir".into(),
                outcome(fs::read(root.join("etc/private/data"))),
            );
            o.insert("read_resolv".into(), outcome(fs::read("/etc/resolv.conf")));
            o.insert(
                "read_proc".into(),
                outcome(fs::read("/proc/self/mountinfo")),
            );
            // SAFETY: system calls that are expected to fail; a success changes only this child.
            unsafe {
                let target = c(&tree.state());
                o.insert(
                    "mount".into(),
                    last_result(libc::mount(
                        c"tmpfs".as_ptr(),
                        target.as_ptr(),
                        c"tmpfs".as_ptr(),
                        0,
                        std::ptr::null(),
                    ) as libc::c_long),
                );
                o.insert(
                    "umount".into(),
                    last_result(libc::umount2(c(&root).as_ptr(), libc::MNT_DETACH) as libc::c_long),
                );
                o.insert(
                    "unshare_mnt".into(),
                    last_result(libc::unshare(libc::CLONE_NEWNS) as libc::c_long),
                );
                o.insert(
                    "unshare_user".into(),
                    last_result(libc::unshare(libc::CLONE_NEWUSER) as libc::c_long),
                );
                // A new user namespace through clone (unshare is denied wholesale).
                let pid = libc::syscall(
                    libc::SYS_clone,
                    (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                );
                if pid == 0 {
                    libc::_exit(0);
                }
                o.insert("clone_newuser".into(), last_result(pid));
                if pid > 0 {
                    libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
                }
                o.insert(
                    "clone3".into(),
                    last_result(libc::syscall(libc::SYS_clone3, 0usize, 0usize)),
                );
                o.insert(
                    "chroot".into(),
                    last_result(libc::chroot(c"/".as_ptr()) as libc::c_long),
                );
            }
            if let Some(h) = &handle {
                o.insert("open_by_handle".into(), open_by_handle(&root, h));
            }
            // Threads still start (the C library falls back from clone3 to clone).
            o.insert(
                "thread".into(),
                match std::thread::spawn(|| 7).join() {
                    Ok(7) => "ok".into(),
                    _ => "failed".into(),
                },
            );
        }
        "pod" => pod_child(&tree, &mut o),
        "threads" => {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let t = std::thread::spawn(move || rx.recv());
            let r = harden(&tree.options(true, ReadonlyMethod::Auto));
            o.insert(
                "harden".into(),
                match r {
                    Ok(_) => "ok".into(),
                    Err(e) => format!("{}: {e}", e.step()),
                },
            );
            drop(tx);
            let _ = t.join();
            status_obs(&mut o);
            o.insert("mount_root".into(), mount_opts(&root));
        }
        "symlink" => {
            let link = dir.join("link-to-db");
            std::os::unix::fs::symlink(tree.db_dir(), &link).unwrap();
            let mut opts = tree.options(true, ReadonlyMethod::Auto);
            opts.writable = vec![link];
            o.insert(
                "harden".into(),
                match harden(&opts) {
                    Ok(_) => "ok".into(),
                    Err(e) => format!("{}: {e}", e.step()),
                },
            );
            status_obs(&mut o);
        }
        other => panic!("unknown case {other}"),
    }
    println!("{}", serde_json::to_string(&o).unwrap());
    std::process::exit(0);
}

/// The node of case `pod`: this child's own mount namespace, the host root a shared mount with a
/// tmpfs at `<root>/var`. It forks the daemon, which starts with the DaemonSet's capabilities
/// only and hardens; then the node unmounts the tmpfs and the daemon looks again.
fn pod_child(tree: &Tree, o: &mut Obs) {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let root = tree.root();
    let var = root.join("var");
    // SAFETY: plain system calls with valid strings; this child has one thread.
    unsafe {
        assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0, "unshare");
        let m = |src: &std::ffi::CStr, dst: &Path, fs: &std::ffi::CStr, flags| {
            let dst = c(dst);
            let fs_ptr = if fs.is_empty() {
                std::ptr::null()
            } else {
                fs.as_ptr()
            };
            let r = libc::mount(src.as_ptr(), dst.as_ptr(), fs_ptr, flags, std::ptr::null());
            assert_eq!(r, 0, "mount: {}", std::io::Error::last_os_error());
        };
        m(
            c"none",
            Path::new("/"),
            c"",
            libc::MS_REC | libc::MS_PRIVATE,
        );
        m(&c(&root), &root, c"", libc::MS_BIND);
        m(c"none", &root, c"", libc::MS_SHARED);
        m(c"tmpfs", &var, c"tmpfs", 0);
    }
    let (mut node, mut daemon) = UnixStream::pair().unwrap();
    let byte = |s: &mut UnixStream| {
        let mut b = [0u8];
        s.read_exact(&mut b).unwrap();
    };
    // SAFETY: single-threaded, so the forked process may run anything.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(node);
        let mut d = Obs::new();
        restrict_to_daemonset_capabilities();
        status_obs_prefixed(&mut d, "start_");
        d.insert(
            "harden".into(),
            match harden(&tree.options(true, ReadonlyMethod::Auto)) {
                Ok(_) => "ok".into(),
                Err(e) => format!("{}: {e}", e.step()),
            },
        );
        status_obs(&mut d);
        d.insert(
            "read_secret".into(),
            outcome(fs::read(root.join("etc/ssh/ssh_host_key"))),
        );
        d.insert("write_db".into(), write(&tree.db_dir().join("new")));
        d.insert("write_etc".into(), write(&root.join("etc/new")));
        d.insert("mount_var_before".into(), mount_opts(&var));
        daemon.write_all(b"1").unwrap();
        byte(&mut daemon);
        d.insert("mount_var_after".into(), mount_opts(&var));
        daemon
            .write_all(serde_json::to_string(&d).unwrap().as_bytes())
            .unwrap();
        // SAFETY: leave without running the parent's exit handlers twice.
        unsafe { libc::_exit(0) };
    }
    drop(daemon);
    byte(&mut node);
    // SAFETY: valid path.
    let r = unsafe { libc::umount2(c(&var).as_ptr(), 0) };
    o.insert("node_umount".into(), last_result(r as libc::c_long));
    node.write_all(b"1").unwrap();
    let mut json = String::new();
    node.read_to_string(&mut json).unwrap();
    // SAFETY: our own child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    let d: Obs =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("daemon said {json:?}: {e}"));
    o.extend(d);
}

/// What a container runtime gives the daemon: the DaemonSet's capabilities, nothing else.
fn restrict_to_daemonset_capabilities() {
    use caps::{CapSet, Capability, CapsHashSet};
    let keep: CapsHashSet = DAEMON_CAPABILITIES
        .iter()
        .map(|c| format!("CAP_{c}").parse::<Capability>().unwrap())
        .collect();
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).unwrap();
        }
    }
    caps::clear(None, CapSet::Inheritable).unwrap();
    caps::set(None, CapSet::Effective, &keep).unwrap();
    caps::set(None, CapSet::Permitted, &keep).unwrap();
}

fn status_obs_prefixed(o: &mut Obs, prefix: &str) {
    let mut s = Obs::new();
    status_obs(&mut s);
    o.extend(s.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
}

/// Run `case` in a child on a fresh tree; the tree (for the parent's own checks) and the
/// child's observations.
fn run_child(case: &str, prepare: impl FnOnce(&Tree)) -> (tempfile::TempDir, Tree, Obs) {
    // Under target/ (not a tmpfs /tmp): xattrs work as on a node's disk, and as in the scanner tests.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // Canonical: hardening refuses paths through symbolic links.
    let dir = fs::canonicalize(tmp.path()).unwrap();
    let tree = make_tree(&dir);
    prepare(&tree);
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, case)
        .env(DIR_ENV, &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {case} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout.lines().last().unwrap_or_default();
    let obs: Obs = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("child {case} printed no observations ({e}): {stdout}"));
    if std::env::var_os("FIO_HARDEN_VERBOSE").is_some() {
        eprintln!("{case}: {obs:#?}");
    }
    (tmp, tree, obs)
}

fn get<'a>(o: &'a Obs, k: &str) -> &'a str {
    o.get(k).map(String::as_str).unwrap_or("(missing)")
}

fn assert_denied_write(o: &Obs, k: &str) {
    let v = get(o, k);
    assert!(
        v == "EROFS" || v == "EACCES",
        "{k}: a write must fail with EROFS or EACCES, got {v}\n{o:#?}"
    );
}

fn check_confined(o: &Obs, keep: bool) {
    assert_eq!(get(o, "harden"), "ok", "{o:#?}");
    let caps = if keep { "4" } else { "0" };
    for k in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(get(o, k), caps, "{k}\n{o:#?}");
    }
    assert_eq!(get(o, "CapAmb"), "0");
    assert_eq!(get(o, "CapInh"), "0");
    assert_eq!(get(o, "NoNewPrivs"), "1");
    assert_eq!(get(o, "Seccomp"), "2");
    // Mounts: the host root and its submount read-only, the database directory not.
    for k in ["mount_root", "mount_var"] {
        let m = get(o, k);
        assert!(
            m.starts_with("ro,") && m.contains("nosuid") && m.contains("nodev"),
            "{k}: {m}"
        );
    }
    let m = get(o, "mount_db");
    assert!(
        m.starts_with("rw,") && m.contains("nosuid") && m.contains("nodev"),
        "mount_db: {m}"
    );
    for k in ["write_etc", "write_existing", "write_root", "write_var"] {
        assert_denied_write(o, k);
    }
    assert_eq!(get(o, "write_db"), "ok", "{o:#?}");
    assert_eq!(get(o, "write_state"), "ok", "{o:#?}");
    if get(o, "landlock") == "true" {
        assert_denied_write(o, "write_outside");
    } else {
        assert!(get(o, "report").contains("landlock: not supported by this kernel"));
    }
    for k in [
        "mount",
        "umount",
        "unshare_mnt",
        "unshare_user",
        "chroot",
        "open_by_handle",
        "clone_newuser",
    ] {
        assert_eq!(get(o, k), "EPERM", "{k}\n{o:#?}");
    }
    assert_eq!(
        get(o, "clone3"),
        "ENOSYS",
        "clone3 is refused so that clone's flags are seen"
    );
    assert_eq!(get(o, "read_resolv"), "ok");
    assert_eq!(get(o, "read_proc"), "ok");
    assert_eq!(get(o, "thread"), "ok");
}

fn full() {
    let mut parent_db = None;
    let (_tmp, tree, o) = run_child("full", |t| {
        // The unhardened scan of the same tree, by this (unconfined) process.
        let dir = t.dir.join("parent-db");
        fs::create_dir_all(&dir).unwrap();
        parent_db = Some(scan_init(&t.root(), &dir).unwrap());
    });
    check_confined(&o, true);
    assert_eq!(
        get(&o, "open_by_handle_before"),
        "ok",
        "open_by_handle_at works before hardening (so EPERM after is the filter)"
    );
    assert_eq!(get(&o, "read_secret"), "ok", "CAP_DAC_READ_SEARCH is kept");
    assert_eq!(get(&o, "read_private_dir"), "ok");
    let hardened = PathBuf::from(get(&o, "scan"));
    assert_eq!(hardened, tree.db_dir().join("aide.db.gz.new"), "{o:#?}");
    let (a, b) = (db_entries(&parent_db.unwrap()), db_entries(&hardened));
    assert!(
        a.iter().any(|l| l.contains("ssh_host_key")),
        "the root-only file is in the database"
    );
    assert!(a.len() >= 8, "{a:#?}");
    assert_eq!(a, b, "hardened and unhardened scans differ");
    println!("{}", get(&o, "report"));
}

fn no_dac() {
    let (_tmp, _tree, o) = run_child("no_dac", |_| {});
    check_confined(&o, false);
    assert_eq!(get(&o, "read_secret"), "EACCES");
    assert_eq!(get(&o, "read_private_dir"), "EACCES");
    // Without DAC_READ_SEARCH the scan cannot read everything; it still completes.
    assert!(!get(&o, "scan").starts_with("error"), "{o:#?}");
}

fn remount() {
    let (_tmp, _tree, o) = run_child("remount", |_| {});
    check_confined(&o, true);
    assert!(
        get(&o, "report").contains("one remount per mount"),
        "{o:#?}"
    );
}

/// The DaemonSet's capability list is enough to harden, and hardening neither pins the node's
/// mounts (an unmount on the node reaches the daemon) nor loses the scan's read access.
fn pod() {
    let (_tmp, _tree, o) = run_child("pod", |_| {});
    // CAP_SYS_ADMIN (21), CAP_DAC_READ_SEARCH (2), CAP_SETPCAP (8).
    let start = format!("{:x}", (1u64 << 21) | (1 << 2) | (1 << 8));
    assert_eq!(get(&o, "start_CapBnd"), start, "{o:#?}");
    assert_eq!(get(&o, "start_CapEff"), start, "{o:#?}");
    assert_eq!(get(&o, "harden"), "ok", "{o:#?}");
    for k in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(get(&o, k), "4", "{k}\n{o:#?}");
    }
    assert_eq!(get(&o, "Seccomp"), "2");
    assert_eq!(get(&o, "read_secret"), "ok");
    assert_eq!(get(&o, "write_db"), "ok");
    assert_denied_write(&o, "write_etc");
    assert!(get(&o, "mount_var_before").starts_with("ro,"), "{o:#?}");
    assert_eq!(get(&o, "node_umount"), "ok", "{o:#?}");
    assert_eq!(
        get(&o, "mount_var_after"),
        "not a mount point",
        "the node's unmount must reach the daemon's namespace\n{o:#?}"
    );
}

fn threads() {
    let (_tmp, _tree, o) = run_child("threads", |_| {});
    let h = get(&o, "harden");
    assert!(
        h.starts_with("threads: hardening must run before any other thread exists, but this process has 2 threads"),
        "{h}"
    );
    // Refused before changing anything.
    assert_eq!(get(&o, "NoNewPrivs"), "0");
    assert_eq!(get(&o, "Seccomp"), "0");
    assert_ne!(get(&o, "CapEff"), "4");
    assert_eq!(get(&o, "mount_root"), "not a mount point");
}

fn symlink() {
    let (_tmp, _tree, o) = run_child("symlink", |_| {});
    let h = get(&o, "harden");
    assert!(
        h.starts_with("writable bind: hardening step 'writable bind' failed:")
            && h.contains("must be a canonical path"),
        "{h}"
    );
    assert_eq!(get(&o, "NoNewPrivs"), "0");
}

fn main() {
    if let Ok(case) = std::env::var(CHILD_ENV) {
        child(&case);
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let cases: &[(&str, fn())] = &[
        ("harden_full_keeps_dac_read_search", full),
        ("harden_without_dac_read_search", no_dac),
        ("harden_readonly_by_remounts", remount),
        ("harden_with_the_daemonset_capabilities_only", pod),
        ("harden_refuses_with_threads", threads),
        ("harden_refuses_symlinked_writable_dir", symlink),
    ];
    let selected: Vec<_> = cases
        .iter()
        .filter(|(n, _)| filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str())))
        .collect();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("tests/harden.rs: hardening needs root (run the tests as root, as .ci/run does)");
        std::process::exit(1);
    }
    println!("running {} tests", selected.len());
    let mut failed = 0;
    for (name, f) in &selected {
        let r = std::panic::catch_unwind(f);
        println!(
            "test {name} ... {}",
            if r.is_ok() { "ok" } else { "FAILED" }
        );
        failed += usize::from(r.is_err());
    }
    println!(
        "test result: {}. {} passed; {failed} failed; 0 ignored",
        if failed == 0 { "ok" } else { "FAILED" },
        selected.len() - failed
    );
    if failed > 0 {
        std::process::exit(101);
    }
}
