//! The two tools compared: the real AIDE and fio-scanner, each run with a time limit.

#![allow(dead_code)] // each test uses a part

use super::*;

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
