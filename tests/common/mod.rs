//! Shared helpers for the AIDE compatibility tests (`tests/aide_compat.rs`).
//!
//! * [`Scenario`]: a fresh temporary directory with `tree/` (the scanned tree, see
//!   [`build_tree`]), `db/` (databases) and `out/` (generated configs and reports). Each test
//!   creates its own scenario, so tests are independent and run in parallel.
//! * [`Tool`]: the real AIDE (`/usr/bin/aide`, or `$AIDE_BIN`) and our `fio-scanner`
//!   (`$FIO_SCANNER`, or the binary cargo built for this test run). Setting
//!   `FIO_SCANNER=/usr/bin/aide` runs every test with AIDE on both sides, which validates the
//!   harness itself (tests named `beyond_aide_*` check behaviour where fio-scanner is required to
//!   be stricter than AIDE 0.18.3 and are expected to fail in that mode).
//! * [`Report::parse`]: plain `report_url` output -> added / removed / changed paths and the
//!   summary counts.
//! * [`decode_db`]: an AIDE database (gzip'd or plain) -> `@@db_spec` columns and entries.
//!
//! Paths are handled as raw bytes (`Vec<u8>`) everywhere, because the tree contains names that
//! are not UTF-8.
//!
//! Environment: `FIO_SCANNER` (binary under test), `AIDE_BIN` (reference AIDE),
//! `FIO_TEST_TMPDIR` (parent of the scenario dirs; default cargo's `CARGO_TARGET_TMPDIR`, on the
//! checkout's file system, which must support user xattrs and ACLs), `FIO_TEST_KEEP=1` (keep
//! the scenario dirs for debugging), `FIO_TEST_TIMEOUT` (seconds per tool run, default 600).
//!
//! AIDE 0.18.3 behaviour the parser relies on (verified): in plain reports, control characters
//! in names are printed as `\ooo` octal escapes (newline `\012`, tab `\011`, ESC `\033`), a
//! backslash that is followed by three octal digits is printed as `\134`, every other byte
//! (including non-UTF-8 ones and `%`, `#`, space) is printed raw.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsStr};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[path = "aide.rs"]
mod aide;
pub use aide::aide_bin;

/// The operator's default rule (`CONTENT_EX` in the FIO default aide.conf).
pub const CONTENT_EX: &str = "sha512+ftype+p+u+g+n+acl+selinux+xattrs";
/// `CONTENT_EX` plus every stat attribute except `a` and most hashes (access times change on
/// read, so `a` would make every run report changes).
pub const CONTENT_FULL: &str = "sha512+ftype+p+u+g+n+acl+selinux+xattrs+s+m+c+i+b+l+md5+sha256+sha1+rmd160+tiger+whirlpool+gost+crc32b";
/// AIDE's "every attribute" rule (as in aide-samples/full.conf) minus `a`: adds `H` (all 11
/// hashes but haval, which fio-scanner does not support), `e2fsattrs` and `caps`.
pub const ALL_BUT_ATIME: &str =
    "p+ftype+i+l+n+u+g+s+b+m+c+md5+sha1+sha256+sha512+rmd160+tiger+crc32+crc32b+whirlpool+gost+acl+selinux+xattrs+e2fsattrs+caps";

/// Size of the large file: > 64 MiB and not a multiple of AIDE's 16 MiB read block.
pub const BIG_SIZE: u64 = 64 * 1024 * 1024 + 4096 * 3 + 123;

/// Timeout for one tool invocation (seconds), `$FIO_TEST_TIMEOUT` overrides.
fn run_timeout() -> Duration {
    let secs = std::env::var("FIO_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

// ------------------------------------------------------------------------------------------
// Tools
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    Aide,
    Ours,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Aide => "aide",
            Tool::Ours => "fio-scanner",
        }
    }

    pub fn binary(self) -> PathBuf {
        match self {
            Tool::Aide => aide_bin(),
            Tool::Ours => ours_bin(),
        }
    }
}

/// The binary under test: `$FIO_SCANNER` if set (e.g. `/usr/bin/aide` to validate the
/// harness), else the `fio-scanner` cargo built for this test run.
pub fn ours_bin() -> PathBuf {
    match std::env::var_os("FIO_SCANNER") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_fio-scanner")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Init,
    Check,
    Update,
    ConfigCheck,
}

impl Mode {
    pub fn flag(self) -> &'static str {
        match self {
            Mode::Init => "--init",
            Mode::Check => "--check",
            Mode::Update => "--update",
            Mode::ConfigCheck => "--config-check",
        }
    }
}

/// Result of one invocation of a tool.
#[derive(Debug)]
pub struct Run {
    pub tool: Tool,
    pub cmdline: String,
    /// Exit code (`-signal` if killed by a signal).
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `report_url=file:` target of this run (if the config had one).
    pub report_path: Option<PathBuf>,
    /// Contents of the report file after the run (None if it does not exist).
    pub report_raw: Option<Vec<u8>>,
}

impl Run {
    /// Human readable description for assertion messages.
    pub fn describe(&self) -> String {
        let mut s = format!("`{}` exited with {}", self.cmdline, self.code);
        let err = String::from_utf8_lossy(&self.stderr);
        let err = err.trim();
        if !err.is_empty() {
            let _ = write!(s, "\n--- stderr ---\n{}", truncate(err, 3000));
        }
        let out = String::from_utf8_lossy(&self.stdout);
        let out = out.trim();
        if !out.is_empty() {
            let _ = write!(s, "\n--- stdout ---\n{}", truncate(out, 3000));
        }
        if let Some(r) = &self.report_raw {
            let r = String::from_utf8_lossy(r);
            let _ = write!(s, "\n--- report ---\n{}", truncate(r.trim(), 3000));
        } else if let Some(p) = &self.report_path {
            let _ = write!(s, "\n--- report file {} was not written ---", p.display());
        }
        s
    }

    /// The parsed report file; panics (with context) if there is none.
    pub fn report(&self) -> Report {
        let raw = self.report_raw.as_ref().unwrap_or_else(|| {
            panic!(
                "{} wrote no report file (report_url=file:{}):\n{}",
                self.tool.name(),
                self.report_path
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display(),
                self.describe()
            )
        });
        Report::parse(raw).unwrap_or_else(|e| {
            panic!(
                "cannot parse the report of {}: {e}\n{}",
                self.tool.name(),
                self.describe()
            )
        })
    }

    /// stdout + stderr + report, lossily decoded (for "the message mentions X" checks).
    pub fn all_output(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stderr).into_owned();
        s.push('\n');
        s.push_str(&String::from_utf8_lossy(&self.stdout));
        if let Some(r) = &self.report_raw {
            s.push('\n');
            s.push_str(&String::from_utf8_lossy(r));
        }
        s
    }

    pub fn assert_code(&self, expected: i32, what: &str) {
        assert_eq!(
            self.code,
            expected,
            "{what}: unexpected exit code\n{}",
            self.describe()
        );
    }
}

/// `s` cut to at most `max` bytes (with a note of how much was cut).
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n...[{} more bytes]", &s[..end], s.len() - end)
}

/// Run `bin args...`, capturing output, with a timeout (the process is killed on timeout).
pub fn run_command(bin: &Path, args: &[&OsStr]) -> (i32, Vec<u8>, Vec<u8>, String) {
    let mut cmdline = bin.display().to_string();
    for a in args {
        cmdline.push(' ');
        cmdline.push_str(&String::from_utf8_lossy(a.as_bytes()));
    }
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{cmdline}`: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let status = wait_timeout(&mut child, run_timeout()).unwrap_or_else(|| {
        panic!(
            "`{cmdline}` did not finish within {:?} (killed)",
            run_timeout()
        )
    });
    let stdout = t_out.join().unwrap();
    let stderr = t_err.join().unwrap();
    (exit_code(status), stdout, stderr, cmdline)
}

pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        Some(c) => c,
        None => -status.signal().unwrap_or(0),
    }
}

/// Wait for `child` at most `limit`; on timeout kill it and return None.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => {}
            Err(e) => panic!("waiting for child failed: {e}"),
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ------------------------------------------------------------------------------------------
// Scenario: temp dir + configs
// ------------------------------------------------------------------------------------------

/// One generated aide.conf.
#[derive(Clone, Debug)]
pub struct ConfigSpec {
    pub db_in: PathBuf,
    pub db_out: PathBuf,
    pub gzip: bool,
    /// Group name used for the rule (`CONTENT_EX` like the operator's default).
    pub group: String,
    /// Attribute expression of the group, e.g. [`CONTENT_EX`].
    pub attrs: String,
    /// Extra lines appended before the rule (options etc.).
    pub extra: Vec<String>,
}

pub struct Scenario {
    /// None when kept (`FIO_TEST_KEEP=1`: temp dirs are not deleted, for debugging).
    tmp: Option<tempfile::TempDir>,
    /// Temp dir of this scenario.
    pub base: PathBuf,
    /// Scanned tree (`base/tree`); the config rule is `<root> <GROUP>`.
    pub root: PathBuf,
    /// Databases (`base/db`), outside the tree.
    pub db_dir: PathBuf,
    /// Configs and reports (`base/out`), outside the tree.
    pub out_dir: PathBuf,
    seq: AtomicU32,
}

/// Where scenario temp dirs are created: `$FIO_TEST_TMPDIR`, else cargo's per-target tmp dir
/// (on the same file system as the checkout; `/tmp` may be a tmpfs without user xattrs).
pub fn test_tmp_parent() -> PathBuf {
    let p = match std::env::var_os("FIO_TEST_TMPDIR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    };
    fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
    p
}

impl Scenario {
    /// An empty scenario (no tree content yet; `root` exists and is empty).
    pub fn empty(name: &str) -> Scenario {
        assert_root();
        // Every test needs the reference AIDE (a missing one is a failure, never a skip).
        let _ = aide_bin();
        let tmp = tempfile::Builder::new()
            .prefix(&format!("fio-compat-{name}-"))
            .tempdir_in(test_tmp_parent())
            .expect("create temp dir");
        let base = tmp.path().to_path_buf();
        // The tree root is used verbatim as the rule regex: keep it free of regex/config
        // metacharacters ('.' is harmless: it also matches itself).
        let b = base.as_os_str().as_bytes();
        if let Some(c) = b
            .iter()
            .find(|c| !(c.is_ascii_alphanumeric() || b"/_.-".contains(c)))
        {
            panic!(
                "temp dir {} contains {:?}, which would need escaping in an aide.conf rule; set \
                 FIO_TEST_TMPDIR to a plain path",
                base.display(),
                *c as char
            );
        }
        let root = base.join("tree");
        let db_dir = base.join("db");
        let out_dir = base.join("out");
        for d in [&root, &db_dir, &out_dir] {
            fs::create_dir(d).unwrap();
        }
        let tmp = if std::env::var_os("FIO_TEST_KEEP").is_some_and(|v| !v.is_empty()) {
            eprintln!("FIO_TEST_KEEP: keeping {}", tmp.keep().display());
            None
        } else {
            Some(tmp)
        };
        Scenario {
            tmp,
            base,
            root,
            db_dir,
            out_dir,
            seq: AtomicU32::new(0),
        }
    }

    /// A scenario with the full realistic tree of [`build_tree`].
    pub fn with_tree(name: &str) -> Scenario {
        let s = Scenario::empty(name);
        build_tree(&s.root);
        s
    }

    pub fn db(&self, name: &str) -> PathBuf {
        self.db_dir.join(name)
    }

    /// A config with the given databases and rule attributes (`<root> CONTENT_EX`).
    pub fn spec(&self, db_in: &Path, db_out: &Path, gzip: bool, attrs: &str) -> ConfigSpec {
        ConfigSpec {
            db_in: db_in.to_path_buf(),
            db_out: db_out.to_path_buf(),
            gzip,
            group: "CONTENT_EX".into(),
            attrs: attrs.into(),
            extra: Vec::new(),
        }
    }

    fn next_id(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Write an aide.conf for `spec` with its own report file; returns (config, report).
    pub fn write_config(&self, spec: &ConfigSpec, label: &str) -> (PathBuf, PathBuf) {
        let id = self.next_id();
        let conf = self.out_dir.join(format!("{id:02}-{label}.conf"));
        let report = self.out_dir.join(format!("{id:02}-{label}.report"));
        let mut text = String::new();
        let _ = writeln!(text, "# generated by tests/common/mod.rs ({label})");
        let _ = writeln!(text, "database_in=file:{}", spec.db_in.display());
        let _ = writeln!(text, "database_out=file:{}", spec.db_out.display());
        let _ = writeln!(text, "gzip_dbout={}", if spec.gzip { "yes" } else { "no" });
        let _ = writeln!(text, "report_url=file:{}", report.display());
        for l in &spec.extra {
            let _ = writeln!(text, "{l}");
        }
        let _ = writeln!(text, "{} = {}", spec.group, spec.attrs);
        let _ = writeln!(text, "{} {}", self.root.display(), spec.group);
        fs::write(&conf, text).unwrap();
        (conf, report)
    }

    /// Run `tool -c <generated config> <mode>`.
    pub fn run(&self, tool: Tool, mode: Mode, spec: &ConfigSpec) -> Run {
        let label = format!("{}-{}", tool.name(), mode.flag().trim_start_matches('-'));
        let (conf, report) = self.write_config(spec, &label);
        self.run_with_config(tool, &conf, &[mode.flag()], Some(report))
    }

    /// Run `tool -c <config> <args...>`; `report` is the config's `report_url=file:` (if any).
    pub fn run_with_config(
        &self,
        tool: Tool,
        conf: &Path,
        args: &[&str],
        report: Option<PathBuf>,
    ) -> Run {
        if let Some(r) = &report {
            let _ = fs::remove_file(r);
        }
        let mut argv: Vec<&OsStr> = vec![OsStr::new("-c"), conf.as_os_str()];
        argv.extend(args.iter().map(OsStr::new));
        let (code, stdout, stderr, cmdline) = run_command(&tool.binary(), &argv);
        let report_raw = report.as_ref().and_then(|r| fs::read(r).ok());
        Run {
            tool,
            cmdline,
            code,
            stdout,
            stderr,
            report_path: report,
            report_raw,
        }
    }

    /// `tool --init`, asserting success, then move `db_out` to `db_in` (like an operator).
    pub fn init_db(&self, tool: Tool, attrs: &str, gzip: bool, db_name: &str) -> PathBuf {
        let db_in = self.db(db_name);
        let db_new = self.db(&format!("{db_name}.new"));
        let spec = self.spec(&db_in, &db_new, gzip, attrs);
        let run = self.run(tool, Mode::Init, &spec);
        assert_eq!(
            run.code,
            0,
            "{} --init failed\n{}",
            tool.name(),
            run.describe()
        );
        assert!(
            db_new.is_file(),
            "{} --init exited 0 but did not write database_out {}\n{}",
            tool.name(),
            db_new.display(),
            run.describe()
        );
        fs::rename(&db_new, &db_in).unwrap();
        db_in
    }

    /// `tool --check` against `db_in` (database_out is a scratch file that must not be written).
    pub fn check(&self, tool: Tool, db_in: &Path, attrs: &str) -> Run {
        let scratch = self.db(&format!("unused-out-{}", self.next_id()));
        let spec = self.spec(db_in, &scratch, false, attrs);
        self.run(tool, Mode::Check, &spec)
    }
}

/// The tests create device nodes, chown files and read everything: they need root.
pub fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the AIDE compatibility tests must run as root (device nodes, chown, setcap)"
    );
}

// ------------------------------------------------------------------------------------------
// The realistic test tree
// ------------------------------------------------------------------------------------------

/// `root` joined with a relative name given as raw bytes.
pub fn p(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

/// Absolute path bytes of `root/rel` (the form used in reports and databases).
pub fn abs(root: &Path, rel: &[u8]) -> Vec<u8> {
    p(root, rel).as_os_str().as_bytes().to_vec()
}

/// Run an external helper (setfacl, setfattr, setcap, ...), panicking with a clear message.
pub fn tool_cmd(prog: &str, args: &[&OsStr]) {
    let out = Command::new(prog).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{prog}` ({e}); install it (Debian: apt-get install acl attr libcap2-bin \
             e2fsprogs)"
        )
    });
    if !out.status.success() {
        let a: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
        panic!(
            "`{prog} {}` failed: {}{}",
            a.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Like [`tool_cmd`] but returns false instead of panicking when the command fails
/// (used for `chattr`, which depends on the file system).
pub fn try_tool_cmd(prog: &str, args: &[&OsStr]) -> bool {
    match Command::new(prog).args(args).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "warning: `{prog}` failed ({}); continuing without it",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            panic!("cannot run `{prog}` ({e}); install it (Debian: apt-get install e2fsprogs)")
        }
    }
}

pub fn setfacl(args: &[&str], path: &Path) {
    let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    a.push(path.as_os_str());
    tool_cmd("setfacl", &a);
}

pub fn setfattr_set(path: &Path, name: &str, value: &str) {
    tool_cmd(
        "setfattr",
        &[
            OsStr::new("-n"),
            OsStr::new(name),
            OsStr::new("-v"),
            OsStr::new(value),
            path.as_os_str(),
        ],
    );
}

pub fn setfattr_remove(path: &Path, name: &str) {
    tool_cmd(
        "setfattr",
        &[OsStr::new("-x"), OsStr::new(name), path.as_os_str()],
    );
}

fn cstr(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

pub fn mknod(path: &Path, kind: libc::mode_t, perm: libc::mode_t, major: u32, minor: u32) {
    let c = cstr(path);
    // SAFETY: valid NUL-terminated path; mknod has no memory-safety preconditions.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | perm, libc::makedev(major, minor)) };
    if r != 0 {
        panic!(
            "mknod {} failed: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
}

pub fn mkfifo(path: &Path) {
    mknod(path, libc::S_IFIFO, 0o644, 0, 0);
}

pub fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) {
    std::os::unix::fs::lchown(path, uid, gid)
        .unwrap_or_else(|e| panic!("chown {} failed: {e}", path.display()));
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {} failed: {e}", path.display()));
}

/// A UNIX socket file: bind a listener and drop it (the socket inode stays). If the path is
/// too long for `sockaddr_un`, create the socket inode with mknod(S_IFSOCK) instead.
pub fn make_socket(path: &Path) {
    if path.as_os_str().len() < 100 {
        let l = std::os::unix::net::UnixListener::bind(path)
            .unwrap_or_else(|e| panic!("bind {} failed: {e}", path.display()));
        drop(l);
    } else {
        mknod(path, libc::S_IFSOCK, 0o755, 0, 0);
    }
}

fn write_file(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {} failed: {e}", path.display()));
}

/// Deterministic pseudo-random bytes.
pub fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Non-UTF-8 / control-character names inside `names/` (relative to the tree root).
pub const TRICKY_NAMES: &[&[u8]] = &[
    b"names/new\nline",
    b"names/bad\xff\xfename",
    b"names/utf8-\xc3\xa9t\xc3\xa9",
    b"names/tab\tx",
    b"names/back\\slash",
    b"names/back\\012notnl",
    b"names/esc\x1bx",
    b"names/percent%41",
    b"names/percent%",
    b"names/trailing space ",
    b"names/0zero",
    b"names/plus+eq=,comma;semi",
    b"names/[brackets]{braces}|pipe^~`@:'\"<>",
    b"names/dir\nnl/inner",
];

/// Build the realistic test tree under `root` (which must exist and be empty).
///
/// Covers: regular, empty, large (> 64 MiB, sparse with non-zero data at block boundaries)
/// files; directories (setgid, sticky, default ACL); symlinks (relative, absolute, dangling,
/// target starting with `0`, target with spaces); hard links; FIFO; UNIX socket; char and block
/// devices; setuid/setgid/sticky; POSIX access + default ACLs; user xattrs (text, binary, key
/// with a space, on a directory, on a non-UTF-8 name); file capabilities; an e2fs flag
/// (`chattr +d`, best effort); names with spaces, `#`, `%`, newline, tab, backslash, ESC,
/// leading `0`, non-UTF-8 bytes, a 255-byte name, 200 files in one directory; files owned by
/// uid/gid 65534.
pub fn build_tree(root: &Path) {
    let q = |rel: &[u8]| p(root, rel);
    for d in [
        &b"etc"[..],
        b"bin",
        b"data",
        b"data/sub",
        b"data/many",
        b"dev",
        b"tmp",
        b"gone",
        b"gone/deeper",
        b"dir with space",
        b"names",
        b"names/dir\nnl",
        b"owned",
    ] {
        fs::create_dir(q(d)).unwrap_or_else(|e| panic!("mkdir {:?}: {e}", q(d)));
        chmod(&q(d), 0o755);
    }

    // etc/
    write_file(&q(b"etc/hello.conf"), b"hello world\n");
    setfattr_set(&q(b"etc/hello.conf"), "user.comment", "some comment");
    setfattr_set(&q(b"etc/hello.conf"), "user.bin", "0x00ff10");
    setfacl(&["-m", "u:nobody:r"], &q(b"etc/hello.conf"));
    write_file(&q(b"etc/empty"), b"");
    write_file(&q(b"etc/0leading"), b"zero");
    write_file(&q(b"etc/tricky-xattr"), b"tricky xattr key\n");
    setfattr_set(
        &q(b"etc/tricky-xattr"),
        "user.key with space%#",
        "value one",
    );
    write_file(&q(b"etc/acl-existing"), b"has an extended ACL\n");
    setfacl(&["-m", "u:nobody:rw,g:nogroup:r"], &q(b"etc/acl-existing"));
    write_file(&q(b"etc/to-dir"), b"becomes a directory\n");
    write_file(&q(b"etc/to-fifo"), b"becomes a fifo\n");
    write_file(&q(b"etc/unchanged.conf"), b"never touched\n");

    // bin/
    write_file(&q(b"bin/suidtool"), b"#!/bin/sh\necho suid\n");
    chmod(&q(b"bin/suidtool"), 0o4755);
    write_file(&q(b"bin/sgidtool"), b"#!/bin/sh\necho sgid\n");
    chmod(&q(b"bin/sgidtool"), 0o2755);
    write_file(&q(b"bin/captool"), b"#!/bin/sh\necho caps\n");
    chmod(&q(b"bin/captool"), 0o755);
    tool_cmd(
        "setcap",
        &[OsStr::new("cap_net_raw+ep"), q(b"bin/captool").as_os_str()],
    );
    symlink("../etc/hello.conf", q(b"bin/link-rel")).unwrap();
    symlink(q(b"etc/hello.conf"), q(b"bin/link-abs")).unwrap();
    symlink("/nonexistent/target", q(b"bin/dangling")).unwrap();
    symlink("0leading", q(b"bin/link-0")).unwrap();
    symlink("../dir with space/file#hash%pct", q(b"bin/link-space")).unwrap();
    symlink(
        OsStr::from_bytes(b"../names/bad\xff\xfename"),
        q(b"bin/link-nonutf8"),
    )
    .unwrap();

    // data/
    setfacl(&["-d", "-m", "u:nobody:rx"], &q(b"data"));
    // Files created below inherit the default ACL (so their access ACL is extended).
    write_file(
        &q(b"data/random.bin"),
        &pseudo_random(100_000, 0x9e37_79b9_7f4a_7c15),
    );
    write_file(&q(b"data/#comment"), b"y");
    write_file(&q(b"data/acl-add"), b"gets an ACL later\n");
    setfacl(&["-b"], &q(b"data/acl-add"));
    chmod(&q(b"data/sub"), 0o2750);
    write_file(&q(b"data/sub/a"), b"a");
    fs::hard_link(q(b"data/sub/a"), q(b"data/hardlink-a")).unwrap();
    mkfifo(&q(b"data/fifo"));
    make_socket(&q(b"data/sock"));
    write_file(&q(b"data/nodump"), b"e2fs flag d\n");
    try_tool_cmd("chattr", &[OsStr::new("+d"), q(b"data/nodump").as_os_str()]);
    for i in 0..200 {
        write_file(
            &q(format!("data/many/f{i:04}").as_bytes()),
            format!("file {i}\n").as_bytes(),
        );
    }
    {
        // Large sparse file with real data at the start, across the 16 MiB read-block
        // boundary and at the end.
        let mut f = fs::File::create(q(b"data/big.bin")).unwrap();
        f.set_len(BIG_SIZE).unwrap();
        f.write_all(&pseudo_random(4096, 1)).unwrap();
        f.seek(SeekFrom::Start(16 * 1024 * 1024 - 100)).unwrap();
        f.write_all(&pseudo_random(200, 2)).unwrap();
        f.seek(SeekFrom::Start(BIG_SIZE - 50)).unwrap();
        f.write_all(&pseudo_random(50, 3)).unwrap();
    }

    // dev/
    mknod(&q(b"dev/null-like"), libc::S_IFCHR, 0o666, 1, 3);
    mknod(&q(b"dev/loop-like"), libc::S_IFBLK, 0o660, 7, 0);

    // tmp/ (sticky), gone/ (removed later)
    chmod(&q(b"tmp"), 0o1777);
    write_file(&q(b"tmp/scratch"), b"scratch\n");
    write_file(&q(b"gone/x"), b"x\n");
    write_file(&q(b"gone/deeper/y"), b"y\n");

    // names
    write_file(&q(b"dir with space/file#hash%pct"), b"x");
    for n in TRICKY_NAMES {
        write_file(&q(n), n);
    }
    let long = format!("names/{}", "L".repeat(255));
    write_file(&q(long.as_bytes()), b"long name\n");
    setfattr_set(&q(b"names"), "user.on-dir", "directory xattr");
    setfattr_set(&q(b"names/bad\xff\xfename"), "user.x", "1");

    // ownership
    write_file(&q(b"owned/nobody"), b"owned by 65534\n");
    chown(&q(b"owned/nobody"), Some(65534), Some(65534));
    write_file(&q(b"owned/group-only"), b"group 65534\n");
    chown(&q(b"owned/group-only"), None, Some(65534));
    symlink("nobody", q(b"owned/link-owned")).unwrap();
    chown(&q(b"owned/link-owned"), Some(65534), Some(65534));
}

/// What [`mutate_tree`] is expected to produce in a check report.
#[derive(Debug, Default)]
pub struct Expected {
    /// Exactly these absolute paths are added.
    pub added: BTreeSet<Vec<u8>>,
    /// Exactly these absolute paths are removed.
    pub removed: BTreeSet<Vec<u8>>,
    /// At least these are changed with the `CONTENT_EX` rule (more with richer rules).
    pub changed_min: BTreeSet<Vec<u8>>,
    /// Changed only with rules that include `l` (link name).
    pub changed_with_l: BTreeSet<Vec<u8>>,
    /// Never changed (whatever the rule).
    pub unchanged: BTreeSet<Vec<u8>>,
}

/// Apply the standard set of mutations to a tree built by [`build_tree`]: add and remove
/// files (including tricky names and a whole subtree), change content (also in the middle of
/// the big file, same size), permissions, owner (chown 65534), xattrs, ACLs (access + default),
/// symlink target, file type (file -> directory, file -> fifo, symlink -> file), caps, e2fs flag.
pub fn mutate_tree(root: &Path) -> Expected {
    let q = |rel: &[u8]| p(root, rel);
    let set = |v: &[&[u8]]| v.iter().map(|r| abs(root, r)).collect::<BTreeSet<_>>();

    // added
    write_file(&q(b"etc/added.conf"), b"new\n");
    fs::create_dir(q(b"newdir")).unwrap();
    write_file(&q(b"newdir/f"), b"x\n");
    write_file(&q(b"names/added\nnl\xfe"), b"added tricky\n");

    // removed
    fs::remove_file(q(b"etc/0leading")).unwrap();
    fs::remove_file(q(b"bin/dangling")).unwrap();
    fs::remove_file(q(b"names/bad\xff\xfename")).unwrap();
    fs::remove_file(q(b"data/many/f0007")).unwrap();
    fs::remove_dir_all(q(b"gone")).unwrap();

    // content
    write_file(&q(b"etc/hello.conf"), b"hello world!\n");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(q(b"data/big.bin"))
            .unwrap();
        f.seek(SeekFrom::Start(40 * 1024 * 1024)).unwrap();
        f.write_all(b"!").unwrap();
    }
    // permissions
    chmod(&q(b"data/random.bin"), 0o600);
    chmod(&q(b"bin/suidtool"), 0o755);
    chmod(&q(b"tmp"), 0o777);
    // owner / group
    chown(&q(b"data/sub/a"), Some(65534), None); // hard link: data/hardlink-a changes too
    chown(&q(b"etc/empty"), None, Some(65534));
    // xattrs
    setfattr_remove(&q(b"etc/hello.conf"), "user.comment");
    setfattr_set(&q(b"data/#comment"), "user.new", "added");
    setfattr_set(
        &q(b"etc/tricky-xattr"),
        "user.key with space%#",
        "value two",
    );
    // ACLs
    setfacl(&["-m", "u:nobody:rw"], &q(b"data/acl-add"));
    setfacl(&["-b"], &q(b"etc/acl-existing"));
    setfacl(&["-k"], &q(b"data"));
    // symlink target
    fs::remove_file(q(b"bin/link-rel")).unwrap();
    symlink("/etc/passwd", q(b"bin/link-rel")).unwrap();
    // file type
    fs::remove_file(q(b"etc/to-dir")).unwrap();
    fs::create_dir(q(b"etc/to-dir")).unwrap();
    write_file(&q(b"etc/to-dir/inside"), b"inside\n");
    fs::remove_file(q(b"etc/to-fifo")).unwrap();
    mkfifo(&q(b"etc/to-fifo"));
    fs::remove_file(q(b"bin/link-abs")).unwrap();
    write_file(&q(b"bin/link-abs"), b"was a symlink\n");
    // capabilities (security.capability xattr) removed
    tool_cmd("setcap", &[OsStr::new("-r"), q(b"bin/captool").as_os_str()]);
    // e2fs flag removed (only visible with e2fsattrs)
    try_tool_cmd("chattr", &[OsStr::new("-d"), q(b"data/nodump").as_os_str()]);

    Expected {
        added: set(&[
            b"etc/added.conf",
            b"newdir",
            b"newdir/f",
            b"names/added\nnl\xfe",
            b"etc/to-dir/inside",
        ]),
        removed: set(&[
            b"etc/0leading",
            b"bin/dangling",
            b"names/bad\xff\xfename",
            b"data/many/f0007",
            b"gone",
            b"gone/x",
            b"gone/deeper",
            b"gone/deeper/y",
        ]),
        changed_min: set(&[
            b"etc/hello.conf",
            b"data/big.bin",
            b"data/random.bin",
            b"bin/suidtool",
            b"tmp",
            b"data/sub/a",
            b"data/hardlink-a",
            b"etc/empty",
            b"data/#comment",
            b"etc/tricky-xattr",
            b"data/acl-add",
            b"etc/acl-existing",
            b"data",
            b"etc/to-dir",
            b"etc/to-fifo",
            b"bin/link-abs",
            b"bin/captool",
        ]),
        changed_with_l: set(&[b"bin/link-rel"]),
        unchanged: set(&[
            b"etc/unchanged.conf",
            b"bin/sgidtool",
            b"bin/link-0",
            b"bin/link-space",
            b"dev/null-like",
            b"dev/loop-like",
            b"data/fifo",
            b"data/sock",
            b"names/new\nline",
            b"names/utf8-\xc3\xa9t\xc3\xa9",
            b"names/back\\012notnl",
            b"names/percent%41",
            b"owned/nobody",
            b"owned/link-owned",
        ]),
    }
}

// ------------------------------------------------------------------------------------------
// Report parsing
// ------------------------------------------------------------------------------------------

/// A parsed plain-format AIDE report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// "AIDE found NO differences between database and filesystem. Looks okay!!"
    pub no_differences: bool,
    /// "AIDE found differences between database and filesystem!!"
    pub found_differences: bool,
    /// "AIDE successfully initialized database."
    pub initialized: bool,
    /// `Total number of entries:` (differences) or `Number of entries:` (clean / init).
    pub total_entries: Option<u64>,
    pub added_count: Option<u64>,
    pub removed_count: Option<u64>,
    pub changed_count: Option<u64>,
    /// path -> 18-char summary string (e.g. `f+++++++++++++++++`).
    pub added: BTreeMap<Vec<u8>, String>,
    pub removed: BTreeMap<Vec<u8>, String>,
    pub changed: BTreeMap<Vec<u8>, String>,
    /// `Entry <path> in databases has different attributes: <attrs>` lines.
    pub different_attributes: BTreeMap<Vec<u8>, String>,
}

const DASHES: &[u8] = b"---------------------------------------------------";

#[derive(Clone, Copy, PartialEq)]
enum Section {
    None,
    Added,
    Removed,
    Changed,
    Other,
}

impl Report {
    pub fn added_set(&self) -> BTreeSet<Vec<u8>> {
        self.added.keys().cloned().collect()
    }
    pub fn removed_set(&self) -> BTreeSet<Vec<u8>> {
        self.removed.keys().cloned().collect()
    }
    pub fn changed_set(&self) -> BTreeSet<Vec<u8>> {
        self.changed.keys().cloned().collect()
    }

    /// The exit code AIDE derives from this report (1 added | 2 removed | 4 changed).
    pub fn implied_exit_code(&self) -> i32 {
        (!self.added.is_empty()) as i32
            | ((!self.removed.is_empty()) as i32) << 1
            | ((!self.changed.is_empty()) as i32) << 2
    }

    pub fn parse(raw: &[u8]) -> Result<Report, String> {
        let lines: Vec<&[u8]> = raw.split(|&b| b == b'\n').collect();
        let mut r = Report::default();
        let mut section = Section::None;
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let lossy = String::from_utf8_lossy(line);
            // Section headline: dashes / title / dashes
            if line == DASHES && i + 2 < lines.len() && lines[i + 2] == DASHES {
                section = match lines[i + 1] {
                    b"Added entries:" => Section::Added,
                    b"Removed entries:" => Section::Removed,
                    b"Changed entries:" => Section::Changed,
                    _ => Section::Other,
                };
                i += 3;
                continue;
            }
            if let Some(rest) = line.strip_prefix(b"Entry ") {
                const MID: &[u8] = b" in databases has different attributes: ";
                if let Some(pos) = find(rest, MID) {
                    let path = unescape_report_path(&rest[..pos]);
                    let attrs = String::from_utf8_lossy(&rest[pos + MID.len()..]).into_owned();
                    r.different_attributes.insert(path, attrs);
                    i += 1;
                    continue;
                }
            }
            if lossy.starts_with("AIDE found NO differences") {
                r.no_differences = true;
            } else if lossy.starts_with("AIDE found differences") {
                r.found_differences = true;
            } else if lossy.starts_with("AIDE successfully initialized database") {
                r.initialized = true;
            }
            let count = |prefix: &str| -> Option<u64> {
                let t = lossy.trim_start();
                let rest = t.strip_prefix(prefix)?;
                rest.trim().parse().ok()
            };
            if section == Section::None {
                if let Some(n) = count("Total number of entries:") {
                    r.total_entries = Some(n);
                } else if let Some(n) = count("Number of entries:") {
                    r.total_entries = Some(n);
                } else if let Some(n) = count("Added entries:") {
                    r.added_count = Some(n);
                } else if let Some(n) = count("Removed entries:") {
                    r.removed_count = Some(n);
                } else if let Some(n) = count("Changed entries:") {
                    r.changed_count = Some(n);
                }
            }
            let map = match section {
                Section::Added => Some(&mut r.added),
                Section::Removed => Some(&mut r.removed),
                Section::Changed => Some(&mut r.changed),
                _ => None,
            };
            if let Some(map) = map {
                if !line.is_empty() {
                    // "<18 summary chars>: <path>"
                    if line.len() < 21 || &line[18..20] != b": " || !line[..18].is_ascii() {
                        return Err(format!(
                            "unexpected line in an entry list (expected '<18-char summary>: \
                             <path>'): {:?}",
                            lossy
                        ));
                    }
                    let summary = String::from_utf8(line[..18].to_vec()).unwrap();
                    let path = unescape_report_path(&line[20..]);
                    if map.insert(path.clone(), summary).is_some() {
                        return Err(format!("path listed twice: {}", show(&path)));
                    }
                }
            }
            i += 1;
        }
        Ok(r)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Undo AIDE's plain-report escaping of names: control characters are printed as `\ooo`
/// (3 octal digits; a backslash that would be ambiguous is printed as `\134`); all other bytes
/// (including non-UTF-8 ones) are printed raw.
pub fn unescape_report_path(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 3 < s.len()
            && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (s[i + 1] - b'0') as u32 * 64
                + (s[i + 2] - b'0') as u32 * 8
                + (s[i + 3] - b'0') as u32;
            if v <= 255 {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Printable form of a raw path for messages.
pub fn show(p: &[u8]) -> String {
    p.escape_ascii().to_string()
}

/// One path per line (at most 40, then a count), for assertion messages.
pub fn show_set<'a>(s: impl IntoIterator<Item = &'a Vec<u8>>) -> String {
    let all: Vec<&Vec<u8>> = s.into_iter().collect();
    if all.is_empty() {
        return "  (none)".into();
    }
    let mut v: Vec<String> = all
        .iter()
        .take(40)
        .map(|p| format!("  {}", show(p)))
        .collect();
    if all.len() > 40 {
        v.push(format!("  ... and {} more", all.len() - 40));
    }
    v.join("\n")
}

/// Describe the difference of two path sets (for assertion messages).
pub fn set_diff(
    left_name: &str,
    left: &BTreeSet<Vec<u8>>,
    right_name: &str,
    right: &BTreeSet<Vec<u8>>,
) -> String {
    format!(
        "only in {left_name}:\n{}\nonly in {right_name}:\n{}",
        show_set(left.difference(right)),
        show_set(right.difference(left))
    )
}

// ------------------------------------------------------------------------------------------
// Database decoding
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct DbEntry {
    /// Decoded (unescaped) path.
    pub name: Vec<u8>,
    /// 1-based line number in the (uncompressed) database.
    pub line: usize,
    /// Raw fields, aligned with `Database::spec` (field 0 is the encoded name).
    pub fields: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub gzip: bool,
    pub spec: Vec<String>,
    pub entries: Vec<DbEntry>,
    pub has_begin: bool,
    pub has_end: bool,
    /// Uncompressed text.
    pub text: Vec<u8>,
}

impl Database {
    pub fn names(&self) -> BTreeSet<Vec<u8>> {
        self.entries.iter().map(|e| e.name.clone()).collect()
    }

    /// name -> (column -> value), columns by `@@db_spec` name.
    pub fn by_name(&self) -> BTreeMap<Vec<u8>, BTreeMap<String, String>> {
        self.entries
            .iter()
            .map(|e| {
                let m = self
                    .spec
                    .iter()
                    .zip(e.fields.iter())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (e.name.clone(), m)
            })
            .collect()
    }
}

/// Read a file that may be gzip-compressed (detected by magic, like zlib's gzdopen).
pub fn read_maybe_gzip(path: &Path) -> Result<(bool, Vec<u8>), String> {
    let raw = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("{}: corrupt gzip stream: {e}", path.display()))?;
        Ok((true, out))
    } else {
        Ok((false, raw))
    }
}

/// Decode an AIDE database (plain or gzip) into its `@@db_spec` and entries.
pub fn decode_db(path: &Path) -> Result<Database, String> {
    let (gzip, text) = read_maybe_gzip(path)?;
    let mut db = Database {
        gzip,
        spec: Vec::new(),
        entries: Vec::new(),
        has_begin: false,
        has_end: false,
        text: Vec::new(),
    };
    for (idx, line) in text.split(|&b| b == b'\n').enumerate() {
        let lineno = idx + 1;
        if !db.has_begin {
            if line.starts_with(b"@@begin_db") {
                db.has_begin = true;
            }
            continue;
        }
        if line.starts_with(b"@@end_db") {
            db.has_end = true;
            break;
        }
        if line.starts_with(b"#") || line.is_empty() {
            continue;
        }
        let fields: Vec<String> = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|f| !f.is_empty())
            .map(|f| {
                String::from_utf8(f.to_vec())
                    .map_err(|_| format!("{}:{lineno}: non-ASCII byte in database", path.display()))
            })
            .collect::<Result<_, _>>()?;
        if fields.first().map(|f| f == "@@db_spec").unwrap_or(false) {
            db.spec = fields[1..].to_vec();
            continue;
        }
        if db.spec.is_empty() {
            return Err(format!(
                "{}:{lineno}: entry before @@db_spec",
                path.display()
            ));
        }
        if fields.len() != db.spec.len() {
            return Err(format!(
                "{}:{lineno}: {} fields, @@db_spec has {}",
                path.display(),
                fields.len(),
                db.spec.len()
            ));
        }
        let name = decode_string(fields[0].as_bytes());
        db.entries.push(DbEntry {
            name,
            line: lineno,
            fields,
        });
    }
    db.text = text;
    if !db.has_begin {
        return Err(format!("{}: no @@begin_db", path.display()));
    }
    Ok(db)
}

/// AIDE's `decode_string`: `%XX` (hex, any case) -> byte, everything else literal.
pub fn decode_string(s: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Poll `/proc/<pid>/fd` until `child` has `target` open (true), or it exits / the time limit
/// passes (false).
pub fn wait_until_file_open(child: &mut Child, target: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    let fd_dir = PathBuf::from(format!("/proc/{}/fd", child.id()));
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(rd) = fs::read_dir(&fd_dir) {
            for e in rd.flatten() {
                if let Ok(t) = fs::read_link(e.path()) {
                    if t == target {
                        return true;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Every path under `root` (including `root` itself), without following symlinks: what a
/// rule `<root> ...` must put into the database.
pub fn walk_tree(root: &Path) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
        out.insert(p.as_os_str().as_bytes().to_vec());
        if md.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}
