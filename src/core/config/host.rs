//! What evaluating a configuration needs from the machine it runs on: files (`@@include`,
//! `@@if exists`, the main file), programs (`@@x_include`) and the host name. The evaluator
//! asks through [`Host`] only, so the same evaluation runs on the node ([`System`]) and in the
//! operator, which has neither the node's files nor the right to run a user's programs
//! ([`Detached`]: evaluation stops with [`super::ConfigError::NeedsHost`] where it would need
//! them).

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The attributes of a file the evaluator looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub is_file: bool,
    pub mode: u32,
    pub uid: u32,
}

pub trait Host {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// `stat` (`follow`) or `lstat`.
    fn stat(&self, path: &Path, follow: bool) -> io::Result<FileStat>;
    /// The names in a directory, in any order.
    fn list(&self, dir: &Path) -> io::Result<Vec<Vec<u8>>>;
    /// Run a program with extra environment variables, standard output and error captured.
    fn run(&self, program: &Path, env: &[(OsString, OsString)]) -> io::Result<Output>;
    fn hostname(&self) -> Option<String>;
    /// Who owns the files `@@x_include` may run (besides root).
    fn euid(&self) -> u32;
    /// Whether `@@x_include` may run programs here at all; where not, the statement is a
    /// configuration error naming its line.
    fn runs_programs(&self) -> bool {
        true
    }
}

/// The most a configuration file (the main one or an include) may hold. Real ones are a few
/// hundred KiB at most; without a bound, an include of `/dev/zero` or a huge file would take
/// memory until the process is killed.
pub const MAX_CONFIG_FILE: u64 = 16 << 20;

/// Read a whole configuration file, at most [`MAX_CONFIG_FILE`] bytes. `nonblocking`: open with
/// `O_NONBLOCK` and accept only regular files, so that a FIFO, a device or a file whose read
/// waits (tracefs' `trace_pipe`) is an error at once instead of a hang.
fn read_bounded(path: &Path, nonblocking: bool) -> io::Result<Vec<u8>> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    if nonblocking {
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path)?;
    let md = file.metadata()?;
    if nonblocking && !md.file_type().is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let too_big = || {
        io::Error::other(format!(
            "larger than the {} MiB a configuration file may have",
            MAX_CONFIG_FILE >> 20
        ))
    };
    if md.len() > MAX_CONFIG_FILE {
        return Err(too_big());
    }
    let mut buf = Vec::with_capacity(md.len() as usize);
    match file.take(MAX_CONFIG_FILE + 1).read_to_end(&mut buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            Err(io::Error::other("its read would block (not a plain file)"))
        }
        Err(e) => Err(e),
        Ok(_) if buf.len() as u64 > MAX_CONFIG_FILE => Err(too_big()),
        Ok(_) => Ok(buf),
    }
}

/// This machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Host for System {
    /// Blocking, like AIDE, so that `-c <(...)` (a pipe) works; bounded all the same.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_bounded(path, false)
    }

    fn stat(&self, path: &Path, follow: bool) -> io::Result<FileStat> {
        let md = if follow {
            std::fs::metadata(path)?
        } else {
            std::fs::symlink_metadata(path)?
        };
        Ok(FileStat {
            is_file: md.file_type().is_file(),
            mode: md.mode(),
            uid: md.uid(),
        })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<Vec<u8>>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().into_vec()))
            .collect()
    }

    fn run(&self, program: &Path, env: &[(OsString, OsString)]) -> io::Result<Output> {
        let mut cmd = Command::new(program);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::inherit())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
    }

    fn hostname(&self) -> Option<String> {
        nix::unistd::gethostname()
            .ok()
            .map(|h| h.to_string_lossy().into_owned())
    }

    fn euid(&self) -> u32 {
        // SAFETY: geteuid cannot fail and has no preconditions.
        unsafe { libc::geteuid() }
    }
}

/// This machine, for the daemon, which reads a configuration it did not write as root with
/// access to every file: `@@x_include` is refused (it would run a program of the node with the
/// daemon's capabilities and token), and files are read without blocking and only when they
/// are regular files.
#[derive(Debug, Clone, Copy, Default)]
pub struct Confined;

impl Host for Confined {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_bounded(path, true)
    }
    fn stat(&self, path: &Path, follow: bool) -> io::Result<FileStat> {
        System.stat(path, follow)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<Vec<u8>>> {
        System.list(dir)
    }
    fn run(&self, program: &Path, _: &[(OsString, OsString)]) -> io::Result<Output> {
        Err(io::Error::other(format!(
            "{}: running programs is refused",
            program.display()
        )))
    }
    fn hostname(&self) -> Option<String> {
        System.hostname()
    }
    fn euid(&self) -> u32 {
        System.euid()
    }
    fn runs_programs(&self) -> bool {
        false
    }
}

/// No machine: for checking a configuration away from the node it is for. Every file and
/// program is unavailable, and the host name unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Detached;

/// The error every [`Detached`] call returns (a type of its own: a real file system can
/// report `Unsupported` too).
#[derive(Debug, thiserror::Error)]
#[error("only available on the node")]
struct Unavailable;

fn unavailable() -> io::Error {
    io::Error::other(Unavailable)
}

impl Host for Detached {
    fn read(&self, _: &Path) -> io::Result<Vec<u8>> {
        Err(unavailable())
    }
    fn stat(&self, _: &Path, _: bool) -> io::Result<FileStat> {
        Err(unavailable())
    }
    fn list(&self, _: &Path) -> io::Result<Vec<Vec<u8>>> {
        Err(unavailable())
    }
    fn run(&self, _: &Path, _: &[(OsString, OsString)]) -> io::Result<Output> {
        Err(unavailable())
    }
    fn hostname(&self) -> Option<String> {
        None
    }
    fn euid(&self) -> u32 {
        0
    }
    /// The operator never runs a user's programs, and refuses configurations that would make
    /// the daemons run one.
    fn runs_programs(&self) -> bool {
        false
    }
}

/// The evaluator's test: an error a [`Detached`] host gave.
pub(crate) fn is_unavailable(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Unavailable>())
}
