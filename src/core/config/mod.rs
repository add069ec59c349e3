//! AIDE configuration files, in the 0.16 and the 0.18 dialect.
//!
//! The lexer ([`lex`]) and the grammar ([`parse`]) follow AIDE 0.18.3's `conf_lex.l` and
//! `conf_yacc.y`; evaluation follows `conf_eval.c` and `commandconf.c`: a source is parsed as a
//! whole, then evaluated statement by statement (`@@if` branches, `@@include`, `@@x_include`,
//! group definitions, options, rules). What AIDE rejects is rejected here with the same reason,
//! as a [`ConfigError`] naming the file and line.
//!
//! Differences from AIDE 0.18 on purpose: the 0.16 options `verbose` (mapped onto
//! `report_level`) and `syslog_format` (ignored) are accepted with a warning; `syslog:` report
//! URLs and regex constructs that have no finite-automaton equivalent (back references,
//! look-around, ...) are rejected because this scanner cannot honour them.

mod eval;
pub mod host;
pub(crate) mod lex;
pub(crate) mod parse;
pub mod statement;

use crate::attr::AttrSet;
use crate::exit::Exit;
use crate::options::Options;
use crate::select::RuleSet;
use eval::Loader;
use host::{Host, System};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Errors reading a configuration. `Display` names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A line AIDE would reject ("invalid configure line", AIDE exit code 17).
    #[error("{file}:{line}: {msg}")]
    Invalid {
        file: String,
        line: usize,
        msg: String,
    },
    /// A configuration file that cannot be read (AIDE exit code 18). `location` is
    /// `"file:line: "` of the `@@include` that named it, or empty for the main file.
    #[error("{location}cannot open config file '{}': {}", .path.display(), os_err(.source))]
    Io {
        location: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// An `@@x_include` program that failed (AIDE exit code 20, "EXEC error").
    #[error("{file}:{line}: {msg}")]
    Exec {
        file: String,
        line: usize,
        msg: String,
    },
    /// Evaluation stopped here: it needs a file or program of the node, and the [`Host`] has
    /// none ([`host::Detached`]). Everything before this line was checked.
    #[error("{file}:{line}: {what} is only available on the node")]
    NeedsHost {
        file: String,
        line: usize,
        what: String,
    },
}

impl ConfigError {
    /// The exit status AIDE uses for this error.
    pub fn exit(&self) -> Exit {
        match self {
            ConfigError::Invalid { .. } => Exit::InvalidConfig,
            ConfigError::Io { .. } => Exit::Io,
            ConfigError::Exec { .. } => Exit::Exec,
            ConfigError::NeedsHost { .. } => Exit::Io,
        }
    }
}

/// What the command line adds to a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// `-B`/`--before` lines, read before the configuration file.
    pub before: Vec<String>,
    /// `-A`/`--after` lines, read after the configuration file.
    pub after: Vec<String>,
    /// Host name for `@@{HOSTNAME}`, `@@if hostname` and `file://host/` URLs;
    /// `None` = the [`Host`]'s.
    pub hostname: Option<String>,
}

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub options: Options,
    pub rules: RuleSet,
    /// The configuration file (as given; `-` for stdin).
    pub path: PathBuf,
    /// Warnings AIDE would print while reading the configuration, `file:line: message`.
    pub warnings: Vec<String>,
    /// Where the databases and report URLs were set, for errors about their values.
    pub origins: Origins,
}

/// A configuration line, for messages: `file:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl Origin {
    /// A [`ConfigError::Invalid`] at this line.
    pub fn invalid(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            line: self.line,
            msg: msg.into(),
        }
    }
}

/// The lines that set the database URLs and each report URL; `None` where the value is a
/// default (AIDE's `report_url=stdout` when none is given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    pub database_in: Option<Origin>,
    pub database_out: Option<Origin>,
    pub database_new: Option<Origin>,
    /// Parallel to `options.report.urls`.
    pub report_urls: Vec<Option<Origin>>,
}

impl Config {
    /// Read the configuration file `path` (`-` = stdin), with the `-B`/`-A` lines of `lo`.
    pub fn load(path: &Path, lo: &LoadOptions) -> Result<Config, ConfigError> {
        Config::load_on(&System, path, lo)
    }

    /// [`Config::load`] with the files, programs and host name of `host`.
    pub fn load_on(host: &dyn Host, path: &Path, lo: &LoadOptions) -> Result<Config, ConfigError> {
        let (text, name) = if path.as_os_str() == "-" {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|source| ConfigError::Io {
                    location: String::new(),
                    path: path.to_path_buf(),
                    source,
                })?;
            (buf, "(stdin)".to_string())
        } else {
            let real = expand_tilde(path);
            let buf = host.read(&real).map_err(|source| ConfigError::Io {
                location: String::new(),
                path: path.to_path_buf(),
                source,
            })?;
            (buf, path.display().to_string())
        };
        Config::from_sources(host, &text, &name, path, lo)
    }

    /// Parse configuration text as if it were the file `origin`.
    pub fn parse_str(text: &str, origin: &Path, lo: &LoadOptions) -> Result<Config, ConfigError> {
        Config::parse_str_on(&System, text, origin, lo)
    }

    /// [`Config::parse_str`] with the files, programs and host name of `host`.
    pub fn parse_str_on(
        host: &dyn Host,
        text: &str,
        origin: &Path,
        lo: &LoadOptions,
    ) -> Result<Config, ConfigError> {
        let name = origin.display().to_string();
        Config::from_sources(host, text.as_bytes(), &name, origin, lo)
    }

    fn from_sources(
        host: &dyn Host,
        text: &[u8],
        name: &str,
        path: &Path,
        lo: &LoadOptions,
    ) -> Result<Config, ConfigError> {
        let hostname = lo.hostname.clone().or_else(|| host.hostname());
        let mut l = Loader::new(host, hostname);
        if !lo.before.is_empty() {
            let joined: String = lo.before.iter().map(|s| format!("{}\n", s)).collect();
            l.run_source(joined.as_bytes(), "(--before)", 0, None)?;
        }
        l.run_source(text, name, 0, None)?;
        if !lo.after.is_empty() {
            let joined: String = lo.after.iter().map(|s| format!("{}\n", s)).collect();
            l.run_source(joined.as_bytes(), "(--after)", 0, None)?;
        }
        Ok(l.finish(path))
    }
}

fn expand_tilde(path: &Path) -> PathBuf {
    let b = path.as_os_str().as_bytes();
    if b.starts_with(b"~/") {
        if let Some(home) = std::env::var_os("HOME") {
            let mut v = home.into_vec();
            v.extend_from_slice(&b[1..]);
            return PathBuf::from(OsString::from_vec(v));
        }
    }
    path.to_path_buf()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `strerror()` text of an I/O error, as AIDE prints it (without Rust's "(os error N)").
fn os_err(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(k) => s[..k].to_string(),
        None => s,
    }
}

/// AIDE's `diff_attributes(0, a)`: config names joined with `+`.
pub(crate) fn attr_names(a: AttrSet) -> String {
    a.iter()
        .filter_map(|x| x.info().config_name)
        .collect::<Vec<_>>()
        .join("+")
}

#[cfg(test)]
mod tests;
