//! The scanner's modes (init, check, update, compare), as AIDE runs them.

use crate::attr::SUPPORTED_HASHES;
use crate::compare::{Comparison, Merger};
use crate::config::Config;
use crate::database::{DbError, DbReader, DbWriter, FileSeal, RawEntry, Spec, WriteOptions};
use crate::entry::{path_order, Entry, FileType};
use crate::exit::Exit;
use crate::focus::Focus;
use crate::measure::MeasureOptions;
use crate::options::Url;
use crate::select::{RuleSet, Selection};
use crate::walk::{WalkBuilder, WalkError, WalkFailed};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub use crate::mode::Mode;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error(transparent)]
    Walk(#[from] WalkFailed),
}

impl ScanError {
    /// AIDE's exit code for the error class.
    pub fn exit(&self) -> Exit {
        match self {
            ScanError::Db(e) => e.exit(),
            ScanError::Config(_) => Exit::InvalidConfig,
            ScanError::Unimplemented(_) => Exit::Unimplemented,
            ScanError::Walk(_) => Exit::Io,
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
    /// Entries the walk could not read (their subtrees are missing from this run).
    pub walk_errors: Vec<WalkError>,
    /// The stored bytes of `database_in` this check or update compared against.
    pub sealed: Option<FileSeal>,
}

impl Outcome {
    /// The report of this run, with the configuration's report options.
    pub fn report<'a>(&'a self, cfg: &'a Config) -> crate::report::Report<'a> {
        let mut r = crate::report::Report::new(self.mode, &cfg.options.report);
        r.start = self.start;
        r.end = self.end;
        r.comparison = self.comparison.as_ref();
        r.entries = self.entries;
        r.walk_errors = &self.walk_errors;
        r.new_database = self.new_database.as_ref().map(|p| p.display().to_string());
        r.databases = self
            .databases
            .iter()
            .map(|(p, d)| crate::report::DbDigests {
                path: p.display().to_string(),
                digests: d.iter().map(|(a, v)| (*a, v.to_vec())).collect(),
            })
            .collect();
        if !cfg.options.root_prefix.is_empty() {
            r.root_prefix = Some(String::from_utf8_lossy(&cfg.options.root_prefix).into_owned());
        }
        r
    }
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

/// The walk a scan of `cfg` makes.
pub fn walker(cfg: &Config) -> WalkBuilder {
    let o = &cfg.options;
    WalkBuilder::new(&o.root_prefix, Arc::new(cfg.rules.clone())).measure_options(MeasureOptions {
        acl_on_symlinks: o.acl_no_symlink_follow,
        warn_dead_symlinks: o.warn_dead_symlinks,
        drop_page_cache: o.drop_page_cache,
    })
}

/// How the configuration says databases are written.
pub fn write_options(cfg: &Config) -> WriteOptions {
    WriteOptions {
        gzip: cfg.options.gzip_dbout,
        add_metadata: cfg.options.database_add_metadata,
        config_version: cfg.options.report.config_version.clone(),
        digests: cfg.options.report.database_attrs,
    }
}

/// An old database entry is compared only if the current rules still select it (AIDE drops the
/// others without reporting them).
fn selected(rules: &RuleSet, name: &[u8], perm: u32) -> bool {
    matches!(
        rules.select(name, FileType::from_mode(perm)),
        Selection::Record { .. }
    )
}

/// A source of old entries in AIDE order: streamed (every AIDE >= 0.16 and this scanner write
/// sorted databases), or, for an unsorted one, its lines loaded and sorted, within
/// [`MAX_SORTED`]. A corrupt database is an error wherever the bad line is; the scan then stops
/// with no report.
struct OldEntries {
    reader: DbReader,
    /// The selected lines in AIDE order, when the file is not in that order.
    sorted: Option<std::vec::IntoIter<RawEntry>>,
    rules: RuleSet,
    /// Only these entries are compared (a focused check).
    focus: Option<Arc<Focus>>,
    prev: Option<Vec<u8>>,
    peeked: Option<RawEntry>,
}

/// How much of an unsorted database (bytes of its selected lines, plus a per-entry overhead)
/// is held in memory to sort it: far above a real AIDE 0.15 database of a node, far below the
/// daemon pod's memory limit. A larger one is an error that says to re-initialise.
pub const MAX_SORTED: u64 = 128 << 20;

impl OldEntries {
    fn next_old(&mut self) -> Result<Option<RawEntry>, DbError> {
        if let Some(o) = self.peeked.take() {
            return Ok(Some(o));
        }
        if let Some(sorted) = &mut self.sorted {
            return Ok(sorted.next());
        }
        let r = &mut self.reader;
        while let Some(raw) = r.next_raw()? {
            if let Some(p) = &self.prev {
                if path_order(p, &raw.name) != std::cmp::Ordering::Less {
                    return Err(DbError::Unsorted {
                        path: r.path().into(),
                    });
                }
            }
            self.prev = Some(raw.name.clone());
            if in_focus(&self.focus, &raw.name) && selected(&self.rules, &raw.name, raw.perm) {
                return Ok(Some(raw));
            }
        }
        Ok(None)
    }

    fn resolve(&self, o: RawEntry) -> Result<Entry, DbError> {
        self.reader.parse_raw(&o)
    }

    /// Feed the next new entry into `m`, pulling old entries up to it. An old line identical to
    /// the new entry written in the old database's columns is unchanged without decoding it.
    fn merge(&mut self, m: &mut Merger, new: Entry, buf: &mut String) -> Result<(), DbError> {
        loop {
            let Some(o) = self.next_old()? else {
                m.added(new);
                return Ok(());
            };
            match path_order(&o.name, &new.name) {
                std::cmp::Ordering::Less => m.removed(self.resolve(o)?),
                std::cmp::Ordering::Equal => {
                    buf.clear();
                    crate::database::format_entry(&new, self.reader.spec(), buf);
                    if *buf == o.line {
                        m.unchanged();
                        return Ok(());
                    }
                    m.both(self.resolve(o)?, new);
                    return Ok(());
                }
                std::cmp::Ordering::Greater => {
                    self.peeked = Some(o);
                    m.added(new);
                    return Ok(());
                }
            }
        }
    }

    /// The rest of the old side was removed.
    fn finish(&mut self, mut m: Merger) -> Result<Comparison, DbError> {
        while let Some(o) = self.next_old()? {
            m.removed(self.resolve(o)?);
        }
        Ok(m.into_comparison())
    }
}

fn in_focus(focus: &Option<Arc<Focus>>, name: &[u8]) -> bool {
    focus.as_ref().is_none_or(|f| f.covers(name))
}

fn open_old(
    path: &Path,
    cfg: &Config,
    stream: bool,
    focus: Option<Arc<Focus>>,
) -> Result<OldEntries, DbError> {
    let mut reader = DbReader::open(path, cfg.options.report.database_attrs)?;
    let rules = cfg.rules.clone();
    if stream {
        return Ok(OldEntries {
            reader,
            sorted: None,
            rules,
            focus,
            prev: None,
            peeked: None,
        });
    }
    tracing::info!(
        "{}: entries are not in AIDE order; loading the database to sort it",
        path.display()
    );
    let mut all = Vec::new();
    let mut held = 0u64;
    while let Some(r) = reader.next_raw()? {
        if in_focus(&focus, &r.name) && selected(&cfg.rules, &r.name, r.perm) {
            held += (r.line.len() + r.name.len() + std::mem::size_of::<RawEntry>()) as u64;
            if held > MAX_SORTED {
                return Err(DbError::Format {
                    path: path.into(),
                    line: r.lineno,
                    msg: format!(
                        "entries are not in AIDE order and more than {} MiB of them would have to be sorted in memory; initialise a new database (this scanner writes it in order)",
                        MAX_SORTED >> 20
                    ),
                });
            }
            all.push(r);
        }
    }
    all.sort_by(|a, b| path_order(&a.name, &b.name));
    all.dedup_by(|a, b| a.name == b.name);
    Ok(OldEntries {
        reader,
        sorted: Some(all.into_iter()),
        rules,
        focus,
        prev: None,
        peeked: None,
    })
}

/// Run one mode of the scanner.
pub fn run(cfg: &Config, mode: Mode) -> Result<Outcome, ScanError> {
    run_focused(cfg, mode, None)
}

/// Run one mode of the scanner on the focused paths only (`None`: everything). Only a check
/// can be focused: init, update and compare write or compare whole databases.
pub fn run_focused(
    cfg: &Config,
    mode: Mode,
    focus: Option<Arc<Focus>>,
) -> Result<Outcome, ScanError> {
    let focus = focus.filter(|_| mode == Mode::Check);
    match run_once(cfg, mode, true, &focus) {
        // Rare (databases of AIDE < 0.16): start over with the database sorted in memory.
        Err(ScanError::Db(DbError::Unsorted { .. })) => run_once(cfg, mode, false, &focus),
        r => r,
    }
}

fn run_once(
    cfg: &Config,
    mode: Mode,
    stream: bool,
    focus: &Option<Arc<Focus>>,
) -> Result<Outcome, ScanError> {
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
        walk_errors: Vec::new(),
        sealed: None,
    };
    let spec = Spec::for_attrs(cfg.rules.db_out_attrs());
    match mode {
        Mode::Init => {
            let db_out = file_url(&cfg.options.database_out, "database_out")?;
            let mut w = DbWriter::create(&db_out, spec, &write_options(cfg))?;
            let walked = walker(cfg).run(|e| w.write(&e).map_err(ScanError::from))?;
            out.walk_errors = walked.errors;
            out.entries = w.entries;
            let digests = w.finish()?;
            out.databases.push((db_out.clone(), digests));
            out.new_database = Some(db_out);
        }
        Mode::Check | Mode::Update => {
            let db_in = file_url(&cfg.options.database_in, "database_in")?;
            let mut old = open_old(&db_in, cfg, stream, focus.clone())?;
            let mut writer = if mode == Mode::Update {
                let db_out = file_url(&cfg.options.database_out, "database_out")?;
                out.new_database = Some(db_out.clone());
                Some(DbWriter::create(&db_out, spec, &write_options(cfg))?)
            } else {
                None
            };
            let mut merger = Merger::new();
            let mut buf = String::new();
            let mut walk = walker(cfg);
            if let Some(f) = focus {
                walk = walk.focus(f.clone());
            }
            let walked = walk.run(|e| -> Result<(), ScanError> {
                if let Some(w) = writer.as_mut() {
                    w.write(&e)?;
                }
                Ok(old.merge(&mut merger, e, &mut buf)?)
            })?;
            out.walk_errors = walked.errors;
            let cmp = old.finish(merger)?;
            let (digests, seal) = old.reader.finish()?;
            out.databases.push((db_in, digests));
            out.sealed = Some(seal);
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
            let mut old = open_old(&db_in, cfg, stream, None)?;
            let mut new = open_old(&db_new, cfg, stream, None)?;
            let mut merger = Merger::new();
            let mut buf = String::new();
            while let Some(n) = new.next_old()? {
                let e = new.resolve(n)?;
                old.merge(&mut merger, e, &mut buf)?;
            }
            out.comparison = Some(old.finish(merger)?);
        }
    }
    out.end = SystemTime::now();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{Attr, AttrSet};
    use crate::config::LoadOptions;

    fn e(name: &str, perm: u32) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            perm,
            attrs: AttrSet::of(&[Attr::Filename, Attr::Perm, Attr::Ftype]),
            ..Default::default()
        }
    }

    /// Both ways to read the old side (streamed, and loaded and sorted) merge alike.
    #[test]
    fn merge_finds_added_removed_changed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("aide.db");
        let cfg = Config::parse_str(
            &format!("database_in=file:{}\n/ p+ftype\n", db.display()),
            Path::new("aide.conf"),
            &LoadOptions::default(),
        )
        .unwrap();
        let spec = Spec::for_attrs(cfg.rules.db_out_attrs());
        let mut w = DbWriter::create(&db, spec, &write_options(&cfg)).unwrap();
        for old in [e("/a", 0o100644), e("/a/b", 0o100644), e("/c", 0o100644)] {
            w.write(&old).unwrap();
        }
        w.finish().unwrap();
        for stream in [true, false] {
            let mut old = open_old(&db, &cfg, stream, None).unwrap();
            let (mut m, mut buf) = (Merger::new(), String::new());
            for new in [e("/a", 0o100600), e("/a.b", 0o100644), e("/c", 0o100644)] {
                old.merge(&mut m, new, &mut buf).unwrap();
            }
            let c = old.finish(m).unwrap();
            assert_eq!(c.total, 3);
            let names = |v: &[Entry]| v.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
            assert_eq!(names(&c.added), [b"/a.b".to_vec()]);
            assert_eq!(names(&c.removed), [b"/a/b".to_vec()]);
            assert_eq!(c.changed.len(), 1);
            assert!(c.changed[0].changed.contains(Attr::Perm));
        }
    }
}
