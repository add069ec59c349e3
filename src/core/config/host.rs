//! What evaluating a configuration needs from the machine it runs on: files (`@@include`,
//! `@@if exists`, the main file), programs (`@@x_include`) and the host name. The evaluator
//! asks through [`Host`] only, so the same evaluation runs on the node ([`System`]) and in the
//! operator, which has neither the node's files nor the right to run a user's programs
//! ([`Detached`]: evaluation stops with [`super::ConfigError::NeedsHost`] where it would need
//! them).

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
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
}

/// This machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Host for System {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
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
}

/// The evaluator's test: an error a [`Detached`] host gave.
pub(crate) fn is_unavailable(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Unavailable>())
}
