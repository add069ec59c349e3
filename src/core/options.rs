//! The settings an AIDE configuration produces, apart from the selection rules.
//! Filled in by `config`, read by the scanner, the database code and the report.

use crate::attr::AttrSet;
use std::path::PathBuf;

/// Where a database or report goes (AIDE's URL forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Url {
    File(PathBuf),
    Stdout,
    Stderr,
    Stdin,
    Fd(i32),
}

/// `report_level`, in AIDE's order: each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReportLevel {
    Minimal = 1,
    Summary = 2,
    DatabaseAttributes = 3,
    ListEntries = 4,
    ChangedAttributes = 5,
    AddedRemovedAttributes = 6,
    AddedRemovedEntries = 7,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Plain,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportUrl {
    pub url: Url,
    /// Per-URL overrides given in the URL (AIDE 0.18 `report_url` has none we honour yet), else the global ones.
    pub level: ReportLevel,
    pub format: ReportFormat,
}

/// Options of the report, AIDE's `report_*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    pub urls: Vec<ReportUrl>,
    /// Default for URLs that do not say otherwise.
    pub level: ReportLevel,
    pub format: ReportFormat,
    pub base16: bool,
    pub quiet: bool,
    /// `report_append`: append to `file:` report URLs instead of truncating them.
    pub append: bool,
    pub detailed_init: bool,
    pub summarize_changes: bool,
    pub grouped: bool,
    pub ignore_added_attrs: AttrSet,
    pub ignore_removed_attrs: AttrSet,
    pub ignore_changed_attrs: AttrSet,
    pub force_attrs: AttrSet,
    pub ignore_e2fsattrs: u64,
    /// `database_attrs`: digests of the database files printed at the end of the report.
    /// Default sha512, where AIDE's is `H` (all hashes): hashing a 30 MB database with ten
    /// algorithms (gost and whirlpool are slow) cost more CPU than walking /usr. Set
    /// `database_attrs=H` to get AIDE's list.
    pub database_attrs: AttrSet,
    pub config_version: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            urls: Vec::new(),
            level: ReportLevel::ChangedAttributes,
            format: ReportFormat::Plain,
            base16: false,
            quiet: false,
            append: false,
            detailed_init: false,
            summarize_changes: true,
            grouped: true,
            ignore_added_attrs: AttrSet::EMPTY,
            ignore_removed_attrs: AttrSet::EMPTY,
            ignore_changed_attrs: AttrSet::EMPTY,
            force_attrs: AttrSet::EMPTY,
            ignore_e2fsattrs: 0,
            database_attrs: AttrSet::of(&[crate::attr::Attr::Sha512]),
            config_version: None,
        }
    }
}

/// `log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warning,
    Notice,
    Info,
    Rule,
    Compare,
    Config,
    Debug,
    Trace,
}

/// Every non-rule setting of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `database_in` (or the 0.16 alias `database`).
    pub database_in: Option<Url>,
    pub database_out: Option<Url>,
    /// `database_new`: the second database of `--compare`.
    pub database_new: Option<Url>,
    pub gzip_dbout: bool,
    pub database_add_metadata: bool,
    /// `root_prefix`, as bytes, without a trailing `/`.
    pub root_prefix: Vec<u8>,
    pub log_level: LogLevel,
    /// `verbose` (0.16; accepted and mapped onto log/report level).
    pub verbose: Option<u8>,
    pub num_workers: Option<usize>,
    pub warn_dead_symlinks: bool,
    /// `acl_no_symlink_follow`: keep the `acl` attribute on symlinks.
    pub acl_no_symlink_follow: bool,
    /// Not an AIDE option: descend into other filesystems. AIDE always does; so do we by default.
    pub one_filesystem: bool,
    /// Not an AIDE option: drop each file's pages from the page cache once hashed
    /// ([`crate::measure::MeasureOptions::drop_page_cache`]); set for the node daemon.
    pub drop_page_cache: bool,
    pub report: ReportOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            database_in: None,
            database_out: None,
            database_new: None,
            gzip_dbout: false,
            database_add_metadata: true,
            root_prefix: Vec::new(),
            log_level: LogLevel::Warning,
            verbose: None,
            num_workers: None,
            warn_dead_symlinks: false,
            acl_no_symlink_follow: false,
            one_filesystem: false,
            drop_page_cache: false,
            report: ReportOptions::default(),
        }
    }
}
