//! AIDE 0.18.3 reports: plain and JSON, for `--init`, `--check`, `--update` and `--compare`.
//!
//! The text is byte-identical to what Debian 12's `aide` 0.18.3 (which carries the
//! CVE-2025-54389 escaping fix) prints, apart from timestamps and run time. Rendering follows
//! AIDE's `report.c`, `report_plain.c` and `report_json.c`:
//!
//! * which entries count as added / removed / changed for a report ([`counts_as_changed`]),
//! * the summary strings of changed entries ([`summary_string`]),
//! * which attributes a changed entry's detail block shows ([`reported_attrs`]),
//! * the report levels, `report_grouped`, `report_summarize_changes`, `report_quiet`,
//!   `report_base16`, `report_detailed_init`, `report_ignore_*` and `report_force_attrs`.
//!
//! Use [`render`] to get the bytes for one report URL, or [`ReportOutputs`] / [`write_all`] to
//! open every `report_url` (as AIDE does before scanning, taking the same locks) and write to it.

mod json;
mod output;
mod plain;
pub mod values;

#[cfg(test)]
mod tests;

use crate::attr::{Attr, AttrSet};
use crate::compare::{Changed, Comparison};
use crate::entry::{path_order, Entry};
use crate::mode::Mode;
use crate::options::{ReportFormat, ReportLevel, ReportOptions, ReportUrl, Url};
use std::time::SystemTime;

pub use output::{write_all, ReportError, ReportOutputs};

/// Printed in reports (`(AIDE 0.18.3)`, `"aide_version"`): the AIDE version whose output we
/// reproduce, not this tool's own version.
pub(crate) use crate::database::AIDE_VERSION;

/// Digests of one database file, for "The attributes of the (uncompressed) database(s)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbDigests {
    /// As AIDE prints it: the URL value (the path of a `file:` URL).
    pub path: String,
    /// Hash attribute and raw digest; printed in AIDE's hash order whatever the order here.
    pub digests: Vec<(Attr, Vec<u8>)>,
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub mode: Mode,
    pub options: &'a ReportOptions,
    pub start: SystemTime,
    pub end: SystemTime,
    /// Check / update / compare: the comparison, entries in AIDE order (tree pre-order). For
    /// `--init` with `report_detailed_init`, pass a comparison whose `added` holds the entries
    /// written (AIDE lists them as added); otherwise `None` for init.
    pub comparison: Option<&'a Comparison>,
    /// Number of entries for `--init` (`Number of entries:`). For the other modes the
    /// comparison's `total` is used.
    pub entries: u64,
    /// `--init` / `--update`: the `database_out` URL value, for `New AIDE database written to`.
    pub new_database: Option<String>,
    /// Digests of the databases read and written, in AIDE's order: `database_in`,
    /// `database_out`, `database_new`. Leave empty when `database_attrs` is empty.
    pub databases: Vec<DbDigests>,
    /// AIDE prints `Entry <path> in databases has different attributes: ...` lines (JSON:
    /// `different_attributes`) at the top of the report for every entry present on both sides
    /// whose attribute *sets* differ. They are taken from `comparison.changed` automatically,
    /// including `Changed` items with an empty `changed` set (listed there only for their
    /// differing sets; such items are not counted as changed). Entries the comparison does not
    /// carry can be given here as (path, old attrs, new attrs); a path given in both places is
    /// printed once.
    pub attr_differences: Vec<(Vec<u8>, AttrSet, AttrSet)>,
    /// `--limit` (printed as `Limit: ...`).
    pub limit: Option<String>,
    /// `root_prefix`, printed for init/check/update when non-empty.
    pub root_prefix: Option<String>,
    /// `report_append`: append to `file:` report URLs instead of truncating them.
    pub append: bool,
    /// Entries the walk could not read. Not in AIDE (which only warns): listed after the
    /// summary, and a check with no differences but such entries exits 18, not 0.
    pub walk_errors: &'a [crate::walk::WalkError],
}

impl<'a> Report<'a> {
    /// A report with no entries, no databases and start = end = now.
    pub fn new(mode: Mode, options: &'a ReportOptions) -> Report<'a> {
        let now = SystemTime::now();
        Report {
            mode,
            options,
            start: now,
            end: now,
            comparison: None,
            entries: 0,
            new_database: None,
            databases: Vec::new(),
            attr_differences: Vec::new(),
            limit: None,
            root_prefix: None,
            append: false,
            walk_errors: &[],
        }
    }
}

pub(crate) use crate::timefmt::epoch_secs;

const E2FS: AttrSet = AttrSet::of(&[Attr::E2fsattrs]);

/// Whether the e2fsattrs change of an entry survives `report_ignore_e2fsattrs`.
pub(crate) fn e2fs_really_changed(old: &Entry, new: &Entry, opts: &ReportOptions) -> bool {
    !opts.ignore_e2fsattrs & (old.e2fsattrs ^ new.e2fsattrs) != 0
}

/// AIDE's rule for counting an entry present on both sides as changed (`terse_report`): some
/// changed attribute is not in `report_ignore_changed_attrs`, where an e2fsattrs change counts
/// only if a flag outside `report_ignore_e2fsattrs` changed. Entries for which this is false are
/// neither listed nor counted (nor do they affect the exit code).
pub fn counts_as_changed(c: &Changed, opts: &ReportOptions) -> bool {
    let changed = c.changed.minus(opts.ignore_changed_attrs);
    !changed.minus(E2FS).is_empty()
        || (changed.contains(Attr::E2fsattrs) && e2fs_really_changed(&c.old, &c.new, opts))
}

/// The attributes shown in the detail block of a changed entry (`get_report_attributes`), at the
/// report level of `opts.level`: changed attributes minus ignored ones, plus (from level
/// `added_removed_attributes` on) attributes only one side has, plus `report_force_attrs` when
/// anything is shown at all. Empty means "nothing to report".
pub fn reported_attrs(old: &Entry, new: &Entry, changed: AttrSet, opts: &ReportOptions) -> AttrSet {
    reported_attrs_at(old, new, changed, opts, opts.level)
}

/// [`reported_attrs`] for an explicit report level (report URLs may have their own).
pub fn reported_attrs_at(
    old: &Entry,
    new: &Entry,
    changed: AttrSet,
    opts: &ReportOptions,
    level: ReportLevel,
) -> AttrSet {
    let mut attrs = changed;
    if changed.contains(Attr::E2fsattrs) && !e2fs_really_changed(old, new, opts) {
        attrs.remove(Attr::E2fsattrs);
    }
    let mut report = attrs.minus(opts.ignore_changed_attrs);
    if level >= ReportLevel::AddedRemovedAttributes {
        report = report.union(new.attrs.minus(old.attrs).minus(opts.ignore_added_attrs));
        report = report.union(old.attrs.minus(new.attrs).minus(opts.ignore_removed_attrs));
    }
    if !report.is_empty() {
        report = report.union(opts.force_attrs);
    }
    report
}

/// The summary columns after the file type, in AIDE's `report_attrs_order`.
const SUMMARY_ORDER: [Attr; 17] = [
    Attr::Linkname,
    Attr::Size,
    Attr::Bcount,
    Attr::Perm,
    Attr::Uid,
    Attr::Gid,
    Attr::Atime,
    Attr::Mtime,
    Attr::Ctime,
    Attr::Inode,
    Attr::Linkcount,
    Attr::AllHashsums,
    Attr::Acl,
    Attr::Xattrs,
    Attr::Selinux,
    Attr::E2fsattrs,
    Attr::Caps,
];

/// The attribute bits one summary column stands for (`get_attrs`).
fn column_attrs(a: Attr) -> AttrSet {
    match a {
        Attr::AllHashsums => values::ALL_HASHES,
        Attr::Size => AttrSet::of(&[Attr::Size, Attr::SizeGrowing]),
        other => AttrSet::of(&[other]),
    }
}

/// The 18-character summary string of a changed entry (`get_summarize_changes_string`): file
/// type of the new entry, then per column the attribute's letter when changed, `.` unchanged
/// (`=` for size), `+`/`-` attribute only on the new/old side, `:` ignored, ` ` not checked;
/// the size column shows `<` when the file shrank, `>` when it changed otherwise.
pub fn summary_string(c: &Changed, opts: &ReportOptions) -> String {
    let (old, new) = (c.old.attrs, c.new.attrs);
    let mut s = String::with_capacity(18);
    s.push(values::file_type_char(c.new.perm));
    for (i, &a) in SUMMARY_ORDER.iter().enumerate() {
        let attrs = column_attrs(a);
        let mut letter = a.info().summary_char.unwrap_or(' ');
        let mut unchanged = '.';
        if i == 1 {
            if !attrs
                .intersect(c.changed.minus(opts.ignore_removed_attrs))
                .is_empty()
                && c.old.size > c.new.size
            {
                letter = '<';
            }
            unchanged = '=';
        }
        let hit = |set: AttrSet| !attrs.intersect(set).is_empty();
        let not = |set: AttrSet| AttrSet(!set.0);
        let force = opts.force_attrs;
        let ch = if hit(c
            .changed
            .intersect(force.union(not(opts.ignore_changed_attrs))))
        {
            letter
        } else if hit(old
            .minus(new)
            .intersect(force.union(not(opts.ignore_removed_attrs))))
        {
            '-'
        } else if hit(new
            .minus(old)
            .intersect(force.union(not(opts.ignore_added_attrs))))
        {
            '+'
        } else if hit(old
            .minus(new)
            .intersect(opts.ignore_removed_attrs)
            .union(new.minus(old).intersect(opts.ignore_added_attrs))
            .union(old.intersect(new).intersect(opts.ignore_changed_attrs)))
        {
            ':'
        } else if hit(old.intersect(new)) {
            unchanged
        } else {
            ' '
        };
        s.push(ch);
    }
    s
}

/// Summary string of an added (`f+++...`) or removed (`f---...`) entry.
fn added_removed_string(e: &Entry, fill: char) -> String {
    let mut s = String::with_capacity(18);
    s.push(values::file_type_char(e.perm));
    s.extend(std::iter::repeat_n(fill, SUMMARY_ORDER.len()));
    s
}

/// One entry of the report lists, as AIDE's tree node with its NODE_* mark.
#[derive(Clone, Copy)]
enum Node<'a> {
    Added(&'a Entry),
    Removed(&'a Entry),
    Changed(&'a Changed),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    Added,
    Removed,
    Changed,
}

impl<'a> Node<'a> {
    fn kind(&self) -> NodeKind {
        match self {
            Node::Added(_) => NodeKind::Added,
            Node::Removed(_) => NodeKind::Removed,
            Node::Changed(_) => NodeKind::Changed,
        }
    }

    /// The name AIDE prints: the old entry's for removed, else the new one's.
    fn name(&self) -> &'a [u8] {
        match self {
            Node::Added(e) | Node::Removed(e) => &e.name,
            Node::Changed(c) => &c.new.name,
        }
    }
}

/// What one report URL shows: the counts and the entries, as `terse_report` marks them.
struct Model<'a> {
    level: ReportLevel,
    ntotal: u64,
    nadd: u64,
    nrem: u64,
    nchg: u64,
    /// Counted entries in tree order.
    nodes: Vec<Node<'a>>,
    /// `Entry ... has different attributes` lines: name, old attrs, new attrs (both masked).
    diffs: Vec<(&'a [u8], AttrSet, AttrSet)>,
}

impl<'a> Model<'a> {
    fn build(report: &'a Report<'a>, level: ReportLevel) -> Model<'a> {
        let opts = report.options;
        let mut nodes: Vec<Node<'a>> = Vec::new();
        let mut diffs: Vec<(&'a [u8], AttrSet, AttrSet)> = Vec::new();
        let mut ntotal = report.entries;
        if let Some(cmp) = report.comparison {
            if report.mode.compares() {
                ntotal = cmp.total;
            }
            if report.mode.compares() || opts.detailed_init {
                nodes.extend(cmp.added.iter().map(Node::Added));
            }
            if report.mode.compares() {
                nodes.extend(cmp.removed.iter().map(Node::Removed));
                nodes.extend(
                    cmp.changed
                        .iter()
                        .filter(|c| counts_as_changed(c, opts))
                        .map(Node::Changed),
                );
            }
            if level >= ReportLevel::ListEntries && report.mode.compares() {
                diffs.extend(
                    cmp.changed
                        .iter()
                        .map(|c| (&c.old.name[..], c.old.attrs, c.new.attrs)),
                );
            }
        }
        if level >= ReportLevel::ListEntries && report.mode.compares() {
            diffs.extend(
                report
                    .attr_differences
                    .iter()
                    .map(|(n, o, w)| (&n[..], *o, *w)),
            );
        }
        nodes.sort_by(|a, b| path_order(a.name(), b.name()));
        diffs.retain(|(_, o, n)| {
            let masked =
                AttrSet(o.minus(opts.ignore_removed_attrs).0 ^ n.minus(opts.ignore_added_attrs).0);
            !masked.intersect(AttrSet(o.0 ^ n.0)).is_empty()
        });
        diffs.sort_by(|a, b| path_order(a.0, b.0));
        diffs.dedup_by(|a, b| a.0 == b.0);
        for d in diffs.iter_mut() {
            d.1 = d.1.minus(opts.ignore_removed_attrs);
            d.2 = d.2.minus(opts.ignore_added_attrs);
        }
        let count = |k: NodeKind| nodes.iter().filter(|n| n.kind() == k).count() as u64;
        Model {
            level,
            ntotal,
            nadd: count(NodeKind::Added),
            nrem: count(NodeKind::Removed),
            nchg: count(NodeKind::Changed),
            nodes,
            diffs,
        }
    }

    fn any(&self) -> bool {
        self.nadd + self.nrem + self.nchg > 0
    }

    /// AIDE's outline line (`get_summary_string`).
    fn outline(&self, mode: Mode) -> &'static str {
        match (mode, self.any()) {
            (Mode::Init, _) => "AIDE successfully initialized database.",
            (Mode::Compare, true) => "AIDE found differences between the two databases!!",
            (Mode::Compare, false) => {
                "AIDE found NO differences between the two databases. Looks okay!!"
            }
            (_, true) => "AIDE found differences between database and filesystem!!",
            (_, false) => "AIDE found NO differences between database and filesystem. Looks okay!!",
        }
    }

    /// The summary string or the `added`/`removed`/`changed` word of a list line.
    fn line_summary(&self, node: &Node, opts: &ReportOptions) -> String {
        match node {
            Node::Added(e) => added_removed_string(e, '+'),
            Node::Removed(e) => added_removed_string(e, '-'),
            Node::Changed(c) => summary_string(c, opts),
        }
    }

    /// Whether the entry lists are shown at all (`DO_COMPARE|DO_DIFF` or detailed init).
    fn lists_entries(report: &Report) -> bool {
        report.mode.compares() || report.options.detailed_init
    }

    /// Whether "Detailed information about changes" is printed.
    fn has_details(&self) -> bool {
        (self.nchg > 0 && self.level >= ReportLevel::ChangedAttributes)
            || (self.nadd + self.nrem > 0 && self.level >= ReportLevel::AddedRemovedEntries)
    }

    /// The attributes of a node's detail block, and its old and new entry.
    fn detail(
        &self,
        node: &Node<'a>,
        opts: &ReportOptions,
    ) -> Option<(Option<&'a Entry>, Option<&'a Entry>, AttrSet)> {
        match *node {
            Node::Changed(c) => Some((
                Some(&c.old),
                Some(&c.new),
                reported_attrs_at(&c.old, &c.new, c.changed, opts, self.level),
            )),
            Node::Added(e) if self.level >= ReportLevel::AddedRemovedEntries => {
                Some((None, Some(e), e.attrs.minus(opts.ignore_added_attrs)))
            }
            Node::Removed(e) if self.level >= ReportLevel::AddedRemovedEntries => {
                Some((Some(e), None, e.attrs.minus(opts.ignore_removed_attrs)))
            }
            _ => None,
        }
    }
}

/// The detail lines' attribute order (`report_attrs_order` with `H` expanded to the hashes in
/// `hashsums[]` order and `Size (>)` after `Size`).
pub(crate) fn detail_order(attrs: AttrSet) -> Vec<Attr> {
    let mut out = Vec::new();
    for a in std::iter::once(Attr::Ftype).chain(SUMMARY_ORDER) {
        match a {
            Attr::AllHashsums => out.extend(
                values::REPORT_HASH_ORDER
                    .iter()
                    .copied()
                    .filter(|h| attrs.contains(*h)),
            ),
            Attr::Size => out.extend(
                [Attr::Size, Attr::SizeGrowing]
                    .into_iter()
                    .filter(|h| attrs.contains(*h)),
            ),
            a if attrs.contains(a) => out.push(a),
            _ => {}
        }
    }
    out
}

/// Old and new text lines of attribute `a` in a detail block. For xattrs AIDE's comparison
/// (`have_xattrs_changed`) sorts both lists by key in place when both are non-empty and equally
/// long, so the report shows them sorted in that case and in recorded order otherwise.
fn detail_values(
    a: Attr,
    old: Option<&Entry>,
    new: Option<&Entry>,
    opts: &ReportOptions,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    if a == Attr::Xattrs {
        if let (Some(o), Some(n)) = (old, new) {
            let (ox, nx) = (
                o.xattrs.as_deref().unwrap_or(&[]),
                n.xattrs.as_deref().unwrap_or(&[]),
            );
            let both = o.attrs.contains(a) && n.attrs.contains(a);
            if both && !ox.is_empty() && ox.len() == nx.len() {
                let sorted = |x: &[(Vec<u8>, Vec<u8>)]| {
                    let mut v = x.to_vec();
                    v.sort_by(|p, q| values::c_str(&p.0).cmp(values::c_str(&q.0)));
                    v
                };
                return (
                    values::xattr_lines(Some(&sorted(ox))),
                    values::xattr_lines(Some(&sorted(nx))),
                );
            }
        }
    }
    (
        values::attribute_values(a, old, opts.base16, opts.ignore_e2fsattrs),
        values::attribute_values(a, new, opts.base16, opts.ignore_e2fsattrs),
    )
}

/// The digests of a database in print order, encoded as the report shows them.
fn database_values(db: &DbDigests, base16: bool) -> Vec<(Attr, String)> {
    values::REPORT_HASH_ORDER
        .iter()
        .filter_map(|h| {
            db.digests
                .iter()
                .find(|(a, _)| a == h)
                .map(|(a, d)| (*a, values::digest_string(d, base16)))
        })
        .collect()
}

/// The `report_level` value names.
pub fn report_level_name(level: ReportLevel) -> &'static str {
    match level {
        ReportLevel::Minimal => "minimal",
        ReportLevel::Summary => "summary",
        ReportLevel::DatabaseAttributes => "database_attributes",
        ReportLevel::ListEntries => "list_entries",
        ReportLevel::ChangedAttributes => "changed_attributes",
        ReportLevel::AddedRemovedAttributes => "added_removed_attributes",
        ReportLevel::AddedRemovedEntries => "added_removed_entries",
    }
}

/// A configuration value shown in the report (`print_report_config_options`): JSON key, plain
/// label, value.
struct ConfigValue {
    key: &'static str,
    label: &'static str,
    value: String,
}

fn config_values(report: &Report, level: ReportLevel) -> Vec<ConfigValue> {
    let mut v = Vec::new();
    if let Some(cv) = &report.options.config_version {
        v.push(ConfigValue {
            key: "config_version",
            label: "Config version used",
            value: cv.clone(),
        });
    }
    if let Some(limit) = &report.limit {
        v.push(ConfigValue {
            key: "limit",
            label: "Limit",
            value: limit.clone(),
        });
    }
    if let Some(rp) = report.root_prefix.as_ref().filter(|p| !p.is_empty()) {
        if matches!(report.mode, Mode::Init | Mode::Check | Mode::Update) {
            v.push(ConfigValue {
                key: "root_prefix",
                label: "Root prefix",
                value: rp.clone(),
            });
        }
    }
    if level != ReportLevel::ChangedAttributes {
        v.push(ConfigValue {
            key: "report_level",
            label: "Report level",
            value: report_level_name(level).to_string(),
        });
    }
    v
}

/// The `report_*` options shown from level `list_entries` on (`print_report_report_options`).
fn report_option_values(opts: &ReportOptions, level: ReportLevel) -> Vec<ConfigValue> {
    let mut v = Vec::new();
    let mut attr_opt = |set: AttrSet, key, label| {
        if !set.is_empty() {
            v.push(ConfigValue {
                key,
                label,
                value: values::diff_attributes(AttrSet::EMPTY, set),
            });
        }
    };
    attr_opt(
        opts.ignore_added_attrs,
        "report_ignore_added_attrs",
        "Ignored added attributes",
    );
    attr_opt(
        opts.ignore_removed_attrs,
        "report_ignore_removed_attrs",
        "Ignored removed attributes",
    );
    attr_opt(
        opts.ignore_changed_attrs,
        "report_ignore_changed_attrs",
        "Ignored changed attributes",
    );
    if level >= ReportLevel::ChangedAttributes {
        attr_opt(opts.force_attrs, "report_force_attrs", "Forced attributes");
    }
    if opts.ignore_e2fsattrs != 0 {
        v.push(ConfigValue {
            key: "report_ignore_e2fsattrs",
            label: "Ignored e2fs attributes",
            value: values::e2fsattrs_string(opts.ignore_e2fsattrs, true, 0),
        });
    }
    v
}

/// Renders the report for one report URL, honouring its level and format. Empty when
/// `report_quiet` is set and nothing was added, removed or changed.
pub fn render(report: &Report, url: &ReportUrl) -> Vec<u8> {
    let model = Model::build(report, url.level);
    if report.options.quiet && !model.any() {
        return Vec::new();
    }
    match url.format {
        ReportFormat::Plain => plain::render(report, &model),
        ReportFormat::Json => json::render(report, &model),
    }
}

/// The report URLs in the order AIDE writes them: highest level first, and among equal levels
/// the one configured last first. No URL configured means `stdout` (AIDE's default).
pub fn ordered_urls(opts: &ReportOptions) -> Vec<ReportUrl> {
    if opts.urls.is_empty() {
        return vec![ReportUrl {
            url: Url::Stdout,
            level: opts.level,
            format: opts.format,
        }];
    }
    let mut urls: Vec<ReportUrl> = opts.urls.iter().rev().cloned().collect();
    urls.sort_by_key(|u| std::cmp::Reverse(u.level));
    urls
}

/// AIDE's exit status for the run: 0 for `--init`, else 1 (added) | 2 (removed) | 4 (changed),
/// counting entries as the report does (after `report_ignore_changed_attrs` and
/// `report_ignore_e2fsattrs`); 18 instead of 0 when entries could not be read.
pub fn exit(report: &Report) -> crate::exit::Exit {
    use crate::exit::Exit;
    let differences = if report.mode.compares() {
        let (a, r, c) = counts(report);
        Exit::from_counts(a, r, c)
    } else {
        Exit::OK
    };
    // Differences matter most; a run that missed entries is not a clean one.
    if differences == Exit::OK && !report.walk_errors.is_empty() {
        return Exit::Io;
    }
    differences
}

/// Added, removed and changed entries as the report's summary counts them.
pub fn counts(report: &Report) -> (u64, u64, u64) {
    let model = Model::build(report, ReportLevel::Minimal);
    (model.nadd, model.nrem, model.nchg)
}
