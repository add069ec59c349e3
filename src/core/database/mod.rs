//! The AIDE database format: gzip'd or plain text, `@@begin_db`, `@@db_spec`, one entry a line.

pub mod delta;
pub mod encode;
mod line;
mod reader;
mod writer;

pub use line::{format_entry, parse_entry};
pub use reader::{DbReader, FileSeal, RawEntry, MAX_LINE};
pub use writer::{DbWriter, WriteOptions};

use crate::attr::{Attr, AttrSet};
use std::path::PathBuf;

/// The version of AIDE whose database format, configuration and reports we reproduce.
pub const AIDE_VERSION: &str = "0.18.3";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{path}: cannot open database: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: database is empty")]
    Empty { path: PathBuf },
    #[error("{path}:{line}: {msg}")]
    Format {
        path: PathBuf,
        line: u64,
        msg: String,
    },
    #[error("{path}: read error after line {line} (corrupt or truncated gzip?): {source}")]
    Read {
        path: PathBuf,
        line: u64,
        source: std::io::Error,
    },
    #[error("{path}: database ends after line {line} without @@end_db (truncated)")]
    Truncated { path: PathBuf, line: u64 },
    #[error("{path}: cannot write database: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: entries are not in AIDE order")]
    Unsorted { path: PathBuf },
    #[error("{path}: cannot lock database (is another scan running?): {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DbError {
    /// AIDE's exit codes: 14 write error, 18 I/O error (reading; also bad content), 21 lock error.
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            DbError::Write { .. } => Exit::Write,
            DbError::Lock { .. } => Exit::Lock,
            _ => Exit::Io,
        }
    }
}

/// The columns of a database, in file order. Unknown columns are kept as `None` and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub columns: Vec<Option<Attr>>,
}

impl Spec {
    /// The columns AIDE 0.17+ writes for a set of attributes: fixed enum order, plus the ones
    /// every line carries.
    pub fn for_attrs(attrs: AttrSet) -> Spec {
        let mut want = attrs.union(crate::attr::ALWAYS_IN_DB);
        // `S` and `growing` record the size.
        if want.contains(Attr::SizeGrowing) || want.contains(Attr::Growing) {
            want.insert(Attr::Size);
        }
        let columns = crate::attr::ATTRS
            .iter()
            .filter(|i| i.db_name.is_some() && want.contains(i.attr))
            .map(|i| Some(i.attr))
            .collect();
        Spec { columns }
    }

    pub fn attrs(&self) -> AttrSet {
        let mut s = AttrSet::EMPTY;
        for a in self.columns.iter().flatten() {
            s.insert(*a);
        }
        s
    }
}
