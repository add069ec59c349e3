//! The scanner's modes (init, check, update, compare), as AIDE runs them.

use crate::attr::{AttrSet, SUPPORTED_HASHES};
use crate::compare::{Comparison, Merger};
use crate::config::Config;
use crate::database::{DbError, DbReader, DbWriter, Spec, WriteOptions};
use crate::entry::{path_order, Entry, FileType};
use crate::measure::MeasureOptions;
use crate::options::Url;
use crate::select::{RuleSet, Selection};
use crate::walk::WalkBuilder;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub use crate::report::Mode;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Unimplemented(String),
}

impl ScanError {
    /// AIDE's exit code for the error class.
    pub fn exit_code(&self) -> i32 {
        match self {
            ScanError::Db(e) => e.exit_code(),
            ScanError::Config(_) => 17,
            ScanError::Unimplemented(_) => 16,
        }
    }
}

/// The result of one run, everything the report needs.
#[derive(Debug)]
pub struct Outcome {
    pub mode: Mode,
    pub start: SystemTime,
    pub end: SystemTime,
    pub comparison: Option<Comparison>,
    /// Entries written (init/update).
    pub entries: u64,
    pub new_database: Option<PathBuf>,
    /// Digests of the databases read and written, for the report.
    pub databases: Vec<(PathBuf, crate::hash::Digests)>,
}

fn file_url(u: &Option<Url>, what: &str) -> Result<PathBuf, ScanError> {
    match u {
        Some(Url::File(p)) => Ok(p.clone()),
        Some(other) => Err(ScanError::Unimplemented(format!(
            "{what}: URL {other:?} is not supported, use file:"
        ))),
        None => Err(ScanError::Config(format!(
            "{what} is not set in the configuration"
        ))),
    }
}

/// Refuse rules that ask for digests we cannot compute, instead of silently skipping them.
fn check_hashes(rules: &RuleSet) -> Result<(), ScanError> {
    let missing = rules
        .db_out_attrs()
        .intersect(crate::attr::HASHES)
        .minus(SUPPORTED_HASHES);
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing
        .iter()
        .filter_map(|a| a.info().config_name)
        .collect();
    Err(ScanError::Config(format!(
        "hash algorithm(s) {} not supported by this scanner; remove them from the rules",
        names.join(", ")
    )))
}

fn walker(cfg: &Config) -> WalkBuilder {
    let o = &cfg.options;
    WalkBuilder::new(&o.root_prefix, Arc::new(cfg.rules.clone())).measure_options(MeasureOptions {
        acl_on_symlinks: o.acl_no_symlink_follow,
        warn_dead_symlinks: o.warn_dead_symlinks,
    })
}

fn write_options(cfg: &Config) -> WriteOptions {
    WriteOptions {
        gzip: cfg.options.gzip_dbout,
        add_metadata: cfg.options.database_add_metadata,
        config_version: cfg.options.report.config_version.clone(),
        digests: cfg.options.report.database_attrs,
    }
}

/// An old database entry is compared only if the current rules still select it (AIDE drops the
/// others without reporting them).
fn selected(rules: &RuleSet, e: &Entry) -> bool {
    matches!(
        rules.select(&e.name, FileType::from_mode(e.perm)),
        Selection::Record { .. }
    )
}

/// A source of old entries in AIDE order: streamed when the file is sorted (every AIDE >= 0.16
/// and this scanner write it so), else loaded and sorted.
struct OldEntries {
    reader: Option<DbReader>,
    sorted: std::vec::IntoIter<Entry>,
    rules: RuleSet,
}

impl Iterator for OldEntries {
    type Item = Result<Entry, DbError>;
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.reader {
            Some(r) => loop {
                match r.next_entry() {
                    Ok(Some(e)) if !selected(&self.rules, &e) => continue,
                    other => return other.transpose(),
                }
            },
            None => self.sorted.next().map(Ok),
        }
    }
}

/// Validate the whole database first: a corrupt or truncated one is an error before anything is
/// scanned or written. Returns whether it is in AIDE order.
fn validate(path: &Path) -> Result<bool, DbError> {
    let mut r = DbReader::open(path, AttrSet::EMPTY)?;
    let mut prev: Option<Vec<u8>> = None;
    let mut sorted = true;
    while let Some(e) = r.next_entry()? {
        if let Some(p) = &prev {
            if path_order(p, &e.name) != std::cmp::Ordering::Less {
                sorted = false;
            }
        }
        prev = Some(e.name);
    }
    Ok(sorted)
}

fn open_old(path: &Path, cfg: &Config) -> Result<OldEntries, DbError> {
    let sorted = validate(path)?;
    let reader = DbReader::open(path, cfg.options.report.database_attrs)?;
    if sorted {
        return Ok(OldEntries {
            reader: Some(reader),
            sorted: Vec::new().into_iter(),
            rules: cfg.rules.clone(),
        });
    }
    tracing::info!(
        "{}: entries are not in AIDE order; loading the database to sort it",
        path.display()
    );
    let mut all = Vec::new();
    for e in reader {
        let e = e?;
        if selected(&cfg.rules, &e) {
            all.push(e);
        }
    }
    all.sort_by(|a, b| path_order(&a.name, &b.name));
    all.dedup_by(|a, b| a.name == b.name);
    Ok(OldEntries {
        reader: None,
        sorted: all.into_iter(),
        rules: cfg.rules.clone(),
    })
}

/// Run one mode of the scanner.
pub fn run(cfg: &Config, mode: Mode) -> Result<Outcome, ScanError> {
    let start = SystemTime::now();
    check_hashes(&cfg.rules)?;
    let mut out = Outcome {
        mode,
        start,
        end: start,
        comparison: None,
        entries: 0,
        new_database: None,
        databases: Vec::new(),
    };
    let spec = Spec::for_attrs(cfg.rules.db_out_attrs());
    match mode {
        Mode::Init => {
            let db_out = file_url(&cfg.options.database_out, "database_out")?;
            let mut w = DbWriter::create(&db_out, spec, &write_options(cfg))?;
            walker(cfg).run(|e| w.write(&e))?;
            out.entries = w.entries;
            let digests = w.finish()?;
            out.databases.push((db_out.clone(), digests));
            out.new_database = Some(db_out);
        }
        Mode::Check | Mode::Update => {
            let db_in = file_url(&cfg.options.database_in, "database_in")?;
            let mut old = open_old(&db_in, cfg)?;
            let mut writer = if mode == Mode::Update {
                let db_out = file_url(&cfg.options.database_out, "database_out")?;
                out.new_database = Some(db_out.clone());
                Some(DbWriter::create(&db_out, spec, &write_options(cfg))?)
            } else {
                None
            };
            let mut merger = Merger::new();
            let mut peeked = None;
            walker(cfg).run(|e| -> Result<(), DbError> {
                if let Some(w) = writer.as_mut() {
                    w.write(&e)?;
                }
                merger.merge_next(e, &mut old, &mut peeked)
            })?;
            let cmp = merger.finish(&mut old, peeked)?;
            if let Some(r) = old.reader.take() {
                out.databases.push((db_in, r.finish()?));
            }
            if let Some(w) = writer {
                out.entries = w.entries;
                let digests = w.finish()?;
                if let Some(p) = &out.new_database {
                    out.databases.push((p.clone(), digests));
                }
            }
            out.comparison = Some(cmp);
        }
        Mode::Compare => {
            let db_in = file_url(&cfg.options.database_in, "database_in")?;
            let db_new = file_url(&cfg.options.database_new, "database_new")?;
            let mut old = open_old(&db_in, cfg)?;
            let new = open_old(&db_new, cfg)?;
            let mut merger = Merger::new();
            let mut peeked = None;
            for e in new {
                merger.merge_next(e?, &mut old, &mut peeked)?;
            }
            out.comparison = Some(merger.finish(&mut old, peeked)?);
        }
    }
    out.end = SystemTime::now();
    Ok(out)
}
