//! The per-node runner: what the daemon pod does on its node, without the cluster side.
//! Initialises when there is no baseline, checks, re-initialises with backups, keeps `aide.log`,
//! and turns every scan into a [`Verdict`], logging upstream's lines so that
//! `oc logs` reads as users know it.

use crate::changes::ChangeList;
use crate::compare::Comparison;
pub use crate::compare::Difference;
use crate::config::host::{Confined, System};
use crate::config::{Config, ConfigError, LoadOptions, Origin};
use crate::exit::Exit;
use crate::focus::Focus;
use crate::options::Url;
use crate::report::{self, ReportOutputs};
use crate::scan::{self, Mode};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The daemon's lines, as upstream's daemon prints them (the seed's `oc logs` sample).
pub const LOG_START: &str = "Starting the AIDE runner daemon";
pub const LOG_INIT: &str = "initializing AIDE db";
pub const LOG_REINIT: &str = "re-initializing AIDE db";
pub const LOG_INIT_DONE: &str = "initialization finished";
pub const LOG_CHECK: &str = "running aide check";

/// How many changes a verdict lists (the rest are counted and digested).
pub const LISTED_CHANGES: usize = 50;

/// The identity of a database file: what the operator anchors off the node, so that a
/// database rewritten on the node is detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseId {
    /// SHA-256, 64 lowercase hex digits.
    pub sha256: String,
    pub size: u64,
    /// Known right after an initialisation.
    pub entries: Option<u64>,
}

/// The outcome of one scan on a node, as its node status will show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    Failed {
        added: u64,
        removed: u64,
        changed: u64,
        /// The report (`aide.log`); may be empty when the configuration writes none.
        log: Vec<u8>,
        /// The changes, paths as on the node, the first [`LISTED_CHANGES`] listed.
        changes: Box<ChangeList>,
        /// The full list as AIDE 0.18's JSON report (level `changed_attributes`, paths as on
        /// the node, `root_prefix` naming the root they are below in this process's view).
        changes_json: Vec<u8>,
    },
    Errored {
        /// AIDE's status for the failure; `None` when the daemon refused to scan itself.
        exit: Option<Exit>,
        message: String,
    },
}

impl Verdict {
    pub fn condition(&self) -> &'static str {
        match self {
            Verdict::Succeeded => "Succeeded",
            Verdict::Failed { .. } => "Failed",
            Verdict::Errored { .. } => "Errored",
        }
    }

    /// The exit status `aide --check` would have had.
    pub fn exit(&self) -> Exit {
        match self {
            Verdict::Succeeded => Exit::OK,
            Verdict::Failed {
                added,
                removed,
                changed,
                ..
            } => Exit::from_counts(*added, *removed, *changed),
            Verdict::Errored { exit, .. } => exit.unwrap_or(Exit::Io),
        }
    }
}

/// Runs scans on one node with one configuration file.
#[derive(Debug, Clone)]
pub struct NodeScanner {
    pub config_path: PathBuf,
    pub load: LoadOptions,
    pub max_backups: usize,
    pub node_name: String,
    /// The daemon's own files. When set, the configuration is read [`Confined`] and may name
    /// no other database or report file ([`OwnFiles::check`]), and the report file is removed
    /// once it is kept as `aide.log` (the seed's listing). When not set (the scanner's own
    /// `daemon` command), the configuration is the user's and used as AIDE would.
    pub own: Option<OwnFiles>,
    /// Where the node's root is in this process's view (the daemon's `/hostroot`): the change
    /// list shows paths below it as on the node. `None`: as scanned.
    pub node_root: Option<PathBuf>,
}

/// The only files a cluster daemon writes on its node (besides backups and `aide.log` beside
/// the database): its configuration comes from the cluster, and whatever it evaluates to, it
/// must not make a process that runs as root truncate or delete anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnFiles {
    pub database: PathBuf,
    pub database_out: PathBuf,
    pub report: PathBuf,
}

impl OwnFiles {
    /// The seed's names in `dir` (the node's `/etc/kubernetes`).
    pub fn in_dir(dir: &Path) -> OwnFiles {
        OwnFiles {
            database: dir.join("aide.db.gz"),
            database_out: dir.join("aide.db.gz.new"),
            report: dir.join("aide.log.new"),
        }
    }

    /// Refuse an evaluated configuration (after macros and includes) whose databases or
    /// report files are anything but these, naming the line that set them. Paths are
    /// compared as written: `..` or another spelling of the same file is refused too.
    /// (`database_new` is only read, by `--compare`, which the daemon never runs.)
    pub fn check(&self, cfg: &Config) -> Result<(), ConfigError> {
        let at = |o: &Option<Origin>, msg: String| match o {
            Some(o) => o.invalid(msg),
            None => ConfigError::Invalid {
                file: cfg.path.display().to_string(),
                line: 0,
                msg,
            },
        };
        let o = &cfg.origins;
        let is = |u: &Option<Url>, want: &Path| matches!(u, Some(Url::File(p)) if p == want);
        if !is(&cfg.options.database_in, &self.database) {
            return Err(at(
                &o.database_in,
                format!("database_in must be file:{}", self.database.display()),
            ));
        }
        if !is(&cfg.options.database_out, &self.database_out) {
            return Err(at(
                &o.database_out,
                format!("database_out must be file:{}", self.database_out.display()),
            ));
        }
        for (i, u) in cfg.options.report.urls.iter().enumerate() {
            let ok = match &u.url {
                Url::File(p) => p == &self.report,
                Url::Stdout | Url::Stderr | Url::Fd(1) | Url::Fd(2) => true,
                Url::Stdin | Url::Fd(_) => false,
            };
            if !ok {
                let origin = o.report_urls.get(i).cloned().flatten();
                return Err(at(
                    &origin,
                    format!(
                        "report_url must be stdout, stderr or file:{}: the daemon writes no other file",
                        self.report.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What a [`NodeScanner::check_sealed`] found.
#[derive(Debug, Clone)]
pub struct Checked {
    pub verdict: Verdict,
    /// How many files the scan examined, when it got that far.
    pub files: Option<u64>,
    /// The database the comparison read, when it got that far.
    pub database: Option<DatabaseId>,
    /// The whole comparison behind a Succeeded or Failed verdict: what a later focused check
    /// of the same baseline starts from ([`NodeScanner::check_focused`]).
    pub comparison: Option<Comparison>,
}

/// Paths the configuration names: database_in, database_out, the persistent log beside
/// database_in, and the `file:` report written by each scan.
struct Files {
    db: PathBuf,
    db_new: PathBuf,
    log: PathBuf,
    report: Option<PathBuf>,
}

/// A line of the daemon's log as upstream prints it: on stdout, once (`oc logs` shows both
/// streams, so a tracing copy on stderr would print every line twice).
pub fn say(msg: &str) {
    println!("{msg}");
}

impl NodeScanner {
    fn config(&self) -> Result<(Config, Files), Verdict> {
        let loaded = match &self.own {
            Some(own) => Config::load_on(&Confined, &self.config_path, &self.load)
                .and_then(|cfg| own.check(&cfg).map(|()| cfg)),
            None => Config::load_on(&System, &self.config_path, &self.load),
        };
        let mut cfg = loaded.map_err(|e| errored(e.exit(), &e))?;
        // A node daemon scans every interval in a memory-limited pod: its reads must not stay
        // in the page cache charged to it.
        cfg.options.drop_page_cache = true;
        let file = |u: &Option<Url>, what: &str| match u {
            Some(Url::File(p)) => Ok(p.clone()),
            _ => Err(errored(
                Exit::InvalidConfig,
                &format!("{}: {what} must be a file: URL", self.config_path.display()),
            )),
        };
        let db = file(&cfg.options.database_in, "database_in")?;
        let db_new = file(&cfg.options.database_out, "database_out")?;
        let log = db.parent().unwrap_or(Path::new("/")).join("aide.log");
        let report = cfg.options.report.urls.iter().find_map(|u| match &u.url {
            Url::File(p) => Some(p.clone()),
            _ => None,
        });
        Ok((
            cfg,
            Files {
                db,
                db_new,
                log,
                report,
            },
        ))
    }

    /// The walk a check makes, and its rules: what a watcher of the scanned tree watches.
    pub fn walk(&self) -> Result<(crate::walk::WalkBuilder, Arc<crate::select::RuleSet>), Verdict> {
        let (cfg, _) = self.config()?;
        Ok((scan::walker(&cfg), Arc::new(cfg.rules.clone())))
    }

    /// True when there is no usable baseline yet (missing or empty `database_in`).
    pub fn needs_init(&self) -> bool {
        match self.config() {
            Ok((_, f)) => std::fs::metadata(&f.db)
                .map(|m| m.len() == 0)
                .unwrap_or(true),
            Err(_) => false,
        }
    }

    /// Write a new baseline; the old database and log become timestamped backups.
    pub fn init(&self, reinit: bool) -> Result<DatabaseId, Verdict> {
        say(if reinit { LOG_REINIT } else { LOG_INIT });
        let (cfg, f) = self.config()?;
        let out = scan::run(&cfg, Mode::Init).map_err(|e| errored(e.exit(), &e))?;
        crate::backups::rotate(&f.db_new, &f.db, Some(&f.log), self.max_backups)
            .map_err(|e| errored(e.exit(), &e))?;
        say(LOG_INIT_DONE);
        let mut b = self.baseline()?;
        b.entries = Some(out.entries);
        Ok(b)
    }

    /// Move the baseline for `paths` only (expected or administrator-accepted changes, issue
    /// 28): each path is measured now, and its entry replaced, added or removed when `wanted`
    /// says the difference seen now, as a check would list it, is the one that was accepted (a
    /// path written again since stays as it was, and fails the next check). Every other entry is copied byte for byte.
    /// The old database and log become timestamped backups, never pruned (as automatic
    /// re-inits). Returns the new baseline and the paths moved; with none, nothing is written.
    pub fn accept(
        &self,
        paths: &[Vec<u8>],
        wanted: &dyn Fn(&crate::changes::Change) -> bool,
    ) -> Result<(Option<DatabaseId>, Vec<Vec<u8>>), Verdict> {
        use crate::database::delta::{self, Edit};
        let (cfg, f) = self.config()?;
        let focus = Arc::new(Focus::new(paths.iter().cloned()));
        let out =
            scan::run_focused(&cfg, Mode::Check, Some(focus)).map_err(|e| errored(e.exit(), &e))?;
        let fresh = out.comparison.unwrap_or_default();
        let root = self.root();
        let named = |d: &Difference| paths.iter().any(|p| p.as_slice() == d.name());
        let listed = |d: &Difference| {
            wanted(&crate::changes::Change::of(d, &cfg.options.report, root).shortened())
        };
        let differences = (fresh.added.iter().map(Difference::Added))
            .chain(fresh.removed.iter().map(Difference::Removed))
            .chain(fresh.changed.iter().map(Difference::Changed));
        let mut edits = Vec::new();
        for d in differences.filter(|d| named(d) && listed(d)) {
            edits.push(match d {
                Difference::Added(e) => Edit::Add(e.clone()),
                Difference::Removed(e) => Edit::Remove(e.name.clone()),
                Difference::Changed(c) => Edit::Replace(c.new.clone()),
            });
        }
        if edits.is_empty() {
            return Ok((None, Vec::new()));
        }
        let moved: Vec<Vec<u8>> = edits
            .iter()
            .map(|e| match e {
                Edit::Replace(e) | Edit::Add(e) => e.name.clone(),
                Edit::Remove(n) => n.clone(),
            })
            .collect();
        let opts = scan::write_options(&cfg);
        let written =
            delta::apply(&f.db, &f.db_new, &opts, edits).map_err(|e| errored(e.exit(), &e))?;
        crate::backups::rotate(&f.db_new, &f.db, Some(&f.log), usize::MAX)
            .map_err(|e| errored(e.exit(), &e))?;
        let mut b = self.baseline()?;
        b.entries = Some(written.entries);
        Ok((Some(b), moved))
    }

    /// The identity of the database a check would use now (`database_in`).
    pub fn baseline(&self) -> Result<DatabaseId, Verdict> {
        let (_, f) = self.config()?;
        let data = std::fs::read(&f.db)
            .map_err(|e| errored(Exit::Io, &format!("{}: {e}", f.db.display())))?;
        Ok(DatabaseId {
            sha256: crate::hash::sha256_hex(&data),
            size: data.len() as u64,
            entries: None,
        })
    }

    /// One check against the baseline. The report goes to the configuration's report URLs and
    /// is then kept as `aide.log`.
    pub fn check(&self) -> Verdict {
        self.check_counted().0
    }

    /// [`NodeScanner::check`], and how many files the scan examined (when it got that far).
    pub fn check_counted(&self) -> (Verdict, Option<u64>) {
        let c = self.check_sealed(&|_| Ok(()));
        (c.verdict, c.files)
    }

    /// A check whose database is verified: `verify` is given the identity of the stored bytes
    /// the comparison actually read (hashed as they were read, so a file swapped in before or
    /// after cannot be the one reported), after the scan and before any report is written. Its
    /// `Err` is the verdict (Errored, no exit status: the daemon refused the result).
    pub fn check_sealed(&self, verify: &dyn Fn(&DatabaseId) -> Result<(), String>) -> Checked {
        let mut c = Checked {
            verdict: Verdict::Succeeded,
            files: None,
            database: None,
            comparison: None,
        };
        c.verdict = self.check_inner(&mut c, verify, None);
        c
    }

    /// A focused check ([`Focus`]): only the focused paths re-measured, the rest of the
    /// comparison taken from `standing`, the whole comparison of the previous check of the same
    /// baseline. The verdict, report and change list are those of the whole tree, as a full
    /// check would give them if nothing outside the focus changed since `standing` was made.
    /// The database is read (and sealed) whole, as by a full check.
    pub fn check_focused(
        &self,
        focus: Arc<Focus>,
        standing: Comparison,
        verify: &dyn Fn(&DatabaseId) -> Result<(), String>,
    ) -> Checked {
        let mut c = Checked {
            verdict: Verdict::Succeeded,
            files: None,
            database: None,
            comparison: None,
        };
        c.verdict = self.check_inner(&mut c, verify, Some((focus, standing)));
        c
    }

    fn check_inner(
        &self,
        c: &mut Checked,
        verify: &dyn Fn(&DatabaseId) -> Result<(), String>,
        refocus: Option<(Arc<Focus>, Comparison)>,
    ) -> Verdict {
        say(LOG_CHECK);
        let (cfg, f) = match self.config() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let focus = refocus.as_ref().map(|(f, _)| f.clone());
        let mut out = match scan::run_focused(&cfg, Mode::Check, focus) {
            Ok(o) => o,
            Err(e) => return errored(e.exit(), &e),
        };
        if let Some((focus, mut standing)) = refocus {
            if let Some(fresh) = out.comparison.take() {
                standing.refocus(&focus, fresh);
                out.comparison = Some(standing);
            }
        }
        let db = out.sealed.as_ref().map(|s| DatabaseId {
            sha256: s.sha256.clone(),
            size: s.size,
            entries: None,
        });
        if let Some(db) = &db {
            if let Err(message) = verify(db) {
                tracing::error!("{message}");
                c.database = Some(db.clone());
                return Verdict::Errored {
                    exit: None,
                    message,
                };
            }
        }
        c.database = db;
        c.files = out.comparison.as_ref().map(|c| c.total);
        let verdict = self.judge(&cfg, &f, &out);
        if matches!(verdict, Verdict::Succeeded | Verdict::Failed { .. }) {
            c.comparison = out.comparison;
        }
        verdict
    }

    /// The verdict on a check's outcome: its report written and kept as `aide.log`.
    fn judge(&self, cfg: &Config, f: &Files, out: &scan::Outcome) -> Verdict {
        // Opened only now (AIDE opens them first): a refused result leaves no report behind.
        let mut outputs = match ReportOutputs::open(&cfg.options.report, false) {
            Ok(o) => o,
            Err(e) => return errored(e.exit(), &e),
        };
        let rep = out.report(cfg);
        if let Err(e) = outputs.write(&rep) {
            return errored(e.exit(), &e);
        }
        drop(outputs);
        let code = report::exit(&rep);
        say(&format!("aide check returned status {code}"));
        let log = f
            .report
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .unwrap_or_default();
        if !log.is_empty() {
            if let Err(e) = crate::atomic::replace_file(&f.log, &log, 0o644) {
                return errored(
                    Exit::Write,
                    &format!("Error updating log files from scan: {e}"),
                );
            }
            // The report is now aide.log; the seed's listing of /etc/kubernetes has no .new.
            // Only the daemon's own report file: a path a configuration chose stays.
            let own = self.own.as_ref().map(|o| &o.report);
            if let Some(report) = f
                .report
                .as_ref()
                .filter(|r| **r != f.log && Some(*r) == own)
            {
                let _ = std::fs::remove_file(report);
            }
        }
        if code == Exit::OK {
            return Verdict::Succeeded;
        }
        if code.is_error() {
            // No differences, but entries that could not be read: not a clean check.
            let n = out.walk_errors.len();
            let first: Vec<String> = out
                .walk_errors
                .iter()
                .take(3)
                .map(|e| e.to_string())
                .collect();
            let more = if n > 3 { ", ..." } else { "" };
            return errored(
                code,
                &format!("{n} entries could not be read: {}{more}", first.join("; ")),
            );
        }
        let (added, removed, changed) = report::counts(&rep);
        let (changes, changes_json) = self.changes(&rep);
        Verdict::Failed {
            added,
            removed,
            changed,
            log,
            changes,
            changes_json,
        }
    }
}

impl NodeScanner {
    /// The change list of a check's report, and the full list as AIDE's JSON report would
    /// show it with `root_prefix` set to the node's root.
    /// The node's root in this process's view, as bytes (empty: `/`).
    fn root(&self) -> &[u8] {
        use std::os::unix::ffi::OsStrExt;
        self.node_root
            .as_deref()
            .map_or(&b""[..], |p| p.as_os_str().as_bytes())
    }

    fn changes(&self, rep: &report::Report) -> (Box<ChangeList>, Vec<u8>) {
        let root = self.root();
        let Some(cmp) = rep.comparison else {
            return (Box::default(), Vec::new());
        };
        let list = crate::changes::list(cmp, rep.options, root, LISTED_CHANGES);
        let on_node = crate::changes::as_on_node(cmp, root);
        let mut json = rep.clone();
        json.comparison = Some(&on_node);
        if !root.is_empty() {
            json.root_prefix = Some(String::from_utf8_lossy(root).into_owned());
        }
        let url = crate::options::ReportUrl {
            url: Url::Stdout,
            level: crate::options::ReportLevel::ChangedAttributes,
            format: crate::options::ReportFormat::Json,
        };
        (Box::new(list), report::render(&json, &url))
    }
}

/// An AIDE failure, with upstream's message ("AIDE error: 18 IO error: ...").
fn errored(exit: Exit, e: &dyn std::fmt::Display) -> Verdict {
    let message = format!("AIDE error: {} {}: {e}", exit.code(), exit.meaning());
    tracing::error!("{message}");
    Verdict::Errored {
        exit: Some(exit),
        message,
    }
}

/// The daemon loop without the cluster: initialise if needed, then check every `interval`.
/// `once` stops after the first check (for tests and manual runs).
pub fn run_local(node: &NodeScanner, interval: std::time::Duration, once: bool) -> Verdict {
    say(LOG_START);
    loop {
        if node.needs_init() {
            if let Err(r) = node.init(false) {
                if once {
                    return r;
                }
                std::thread::sleep(interval);
                continue;
            }
        }
        let r = node.check();
        say(&format!(
            "scan result for node {}: {}",
            node.node_name,
            r.condition()
        ));
        if once {
            return r;
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests;
