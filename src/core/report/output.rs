//! Opening report URLs and writing reports to them (`init_report_urls` / `be_init`).
//!
//! Like AIDE, `file:` reports are opened read/write and created with mode 0666 minus the umask,
//! write-locked with `fcntl(F_SETLK)` (except `/dev/null*`), and truncated unless
//! `report_append` is set. AIDE opens them before scanning, so a lock conflict or a bad path
//! stops the run early: do the same by calling [`ReportOutputs::open`] first and
//! [`ReportOutputs::write`] at the end.

use super::{ordered_urls, render, Report};
use crate::options::{ReportOptions, ReportUrl, Url};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("open (read/write) failed for file '{}': {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot get lock for file '{}': {source}", path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error("ftruncate failed for file {}: {source}", path.display())]
    Truncate { path: PathBuf, source: io::Error },
    #[error("couldn't reopen file descriptor {fd}: {source}")]
    BadFd { fd: i32, source: io::Error },
    #[error("unsupported report URL-type: 'stdin'")]
    Stdin,
    #[error("unable to write to '{url}': {source}")]
    Write { url: String, source: io::Error },
}

impl ReportError {
    /// The exit status AIDE 0.18.3 uses for this failure: 17 when a report URL cannot be
    /// opened, 21 when a report file is locked by another process, 14 when writing fails.
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            ReportError::Open { .. }
            | ReportError::Truncate { .. }
            | ReportError::BadFd { .. }
            | ReportError::Stdin => Exit::InvalidConfig,
            ReportError::Lock { .. } => Exit::Lock,
            ReportError::Write { .. } => Exit::Write,
        }
    }
}

/// How a URL is named in messages (`file:/x` -> `/x`, as AIDE's URL value).
pub fn url_display(url: &Url) -> String {
    match url {
        Url::File(p) => p.display().to_string(),
        Url::Stdout => "stdout".into(),
        Url::Stderr => "stderr".into(),
        Url::Stdin => "stdin".into(),
        Url::Fd(n) => format!("fd:{n}"),
    }
}

enum Sink {
    Stdout,
    Stderr,
    File(File),
    /// A descriptor we were handed; written to but never closed.
    Fd(i32),
}

impl Sink {
    fn write_bytes(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut s = io::stdout().lock();
                s.write_all(data)?;
                s.flush()
            }
            Sink::Stderr => {
                let mut s = io::stderr().lock();
                s.write_all(data)?;
                s.flush()
            }
            Sink::File(f) => {
                f.write_all(data)?;
                f.flush()
            }
            Sink::Fd(fd) => {
                // SAFETY: the descriptor stays owned by whoever gave it to us; ManuallyDrop keeps
                // the temporary File from closing it.
                let mut f = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(*fd) });
                f.write_all(data)?;
                f.flush()
            }
        }
    }
}

/// The opened report URLs, in AIDE's writing order.
pub struct ReportOutputs {
    sinks: Vec<(ReportUrl, Sink)>,
}

fn lock_file(f: &File) -> io::Result<()> {
    // SAFETY: a zeroed flock is valid; fcntl only reads it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = 0;
    fl.l_len = 0;
    // SAFETY: valid descriptor and pointer to a live flock.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn open_file(path: &PathBuf, append: bool) -> Result<File, ReportError> {
    let mut oo = OpenOptions::new();
    oo.read(true).write(true).create(true).mode(0o666);
    if append {
        oo.append(true);
    }
    let f = oo.open(path).map_err(|source| ReportError::Open {
        path: path.clone(),
        source,
    })?;
    if !path
        .as_os_str()
        .as_encoded_bytes()
        .starts_with(b"/dev/null")
    {
        lock_file(&f).map_err(|source| ReportError::Lock {
            path: path.clone(),
            source,
        })?;
        if !append {
            f.set_len(0).map_err(|source| ReportError::Truncate {
                path: path.clone(),
                source,
            })?;
        }
    }
    Ok(f)
}

impl ReportOutputs {
    /// Opens every report URL of `opts` (stdout when there is none). `append` is
    /// `report_append`.
    pub fn open(opts: &ReportOptions, append: bool) -> Result<ReportOutputs, ReportError> {
        let mut sinks = Vec::new();
        for url in ordered_urls(opts) {
            let sink = match &url.url {
                Url::Stdout => Sink::Stdout,
                Url::Stderr => Sink::Stderr,
                Url::Stdin => return Err(ReportError::Stdin),
                Url::File(p) => Sink::File(open_file(p, append)?),
                Url::Fd(fd) => {
                    // SAFETY: F_GETFL on an arbitrary number only queries the descriptor table.
                    let flags = unsafe { libc::fcntl(*fd, libc::F_GETFL) };
                    if flags == -1 {
                        return Err(ReportError::BadFd {
                            fd: *fd,
                            source: io::Error::last_os_error(),
                        });
                    }
                    Sink::Fd(*fd)
                }
            };
            sinks.push((url, sink));
        }
        Ok(ReportOutputs { sinks })
    }

    /// Renders the report for each URL (its own level and format) and writes it. Every URL is
    /// attempted; the first error is returned.
    pub fn write(&mut self, report: &Report) -> Result<(), ReportError> {
        let mut result = Ok(());
        for (url, sink) in self.sinks.iter_mut() {
            let data = render(report, url);
            if data.is_empty() {
                continue;
            }
            if let Err(source) = sink.write_bytes(&data) {
                if result.is_ok() {
                    result = Err(ReportError::Write {
                        url: url_display(&url.url),
                        source,
                    });
                }
            }
        }
        result
    }
}

/// Opens every report URL of `report.options` and writes the report to it.
pub fn write_all(report: &Report) -> Result<(), ReportError> {
    ReportOutputs::open(report.options, report.append)?.write(report)
}
