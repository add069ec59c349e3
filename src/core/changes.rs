//! What a check found, as a list an administrator reads without the report: one [`Change`] per
//! added, removed or changed entry (counted exactly as the report counts them), paths as on the
//! node (below the scanned root), escaped like AIDE's report, sorted by path; the first few kept
//! whole, the rest counted, and a digest of the full list.
//!
//! The digest is SHA-256 over one canonical line per change in path order (kind, path, changed
//! attributes, and old -> new of every attribute with a short value, digests in full hex), so
//! two lists with the same digest name the same paths changed in the same way.

use crate::attr::{Attr, AttrSet, HASHES};
use crate::compare::{Comparison, Difference};
use crate::entry::{path_order, Entry};
use crate::options::ReportOptions;
use crate::report::{counts_as_changed, values};

/// Added, removed or changed, as AIDE's report lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

/// One attribute's old and new value, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// AIDE's JSON report name (`perm`, `modify_time`, `sha512`, ...).
    pub attribute: &'static str,
    pub old: String,
    pub new: String,
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// As on the node, escaped ([`escape_path`]).
    pub path: String,
    pub kind: ChangeKind,
    /// Changed entries: the attributes that changed (AIDE's JSON names, report order).
    pub attributes: Vec<&'static str>,
    /// Changed entries: old -> new of the changed attributes that have a short value (type,
    /// permissions, owner, group, size, link target, modification time, inode, link count)
    /// and of digests (hex).
    pub details: Vec<Detail>,
}

/// The whole list, of which the first entries are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeList {
    /// Entries in the full list.
    pub total: u64,
    /// Its first entries, in path order, shortened for display ([`Change::shortened`]).
    pub listed: Vec<Change>,
    /// SHA-256 (hex) of the full list (module documentation).
    pub sha256: String,
}

/// Most bytes of a path shown in a listed entry; the rest is cut, saying `...`.
pub const MAX_SHOWN_PATH: usize = 1024;
/// Most bytes of a detail value shown (a link target may be long).
pub const MAX_SHOWN_VALUE: usize = 256;
/// Hex digits of a digest shown in a listed entry.
pub const DIGEST_PREFIX: usize = 16;

/// The attributes whose values a change shows, in the report's order.
const DETAILED: [Attr; 10] = [
    Attr::Ftype,
    Attr::Linkname,
    Attr::Size,
    Attr::Perm,
    Attr::Uid,
    Attr::Gid,
    Attr::Mtime,
    Attr::Inode,
    Attr::Linkcount,
    Attr::SizeGrowing,
];

/// A path as AIDE's plain report escapes it (`\ooo` for bytes below 0x1f and 0x7f, and for a
/// backslash followed by three digits), plus what an API object needs and AIDE's report does
/// not: 0x1f and every byte of an invalid UTF-8 sequence as `\ooo` too, so the text is valid
/// UTF-8 and nothing is dropped.
pub fn escape_path(raw: &[u8]) -> String {
    let aide = values::plain_escape(raw);
    let mut out = String::with_capacity(aide.len());
    for chunk in aide.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\u{1f}' {
                out.push_str("\\037");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    out
}

/// The bytes of a path [`escape_path`] wrote (every `\ooo` is an escape there: a backslash
/// followed by three digits is escaped itself).
pub fn unescape_path(shown: &str) -> Vec<u8> {
    let b = shown.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |k: usize| {
            b.get(i + k)
                .filter(|c| (b'0'..=b'7').contains(c))
                .map(|c| c - b'0')
        };
        match (b[i], octal(1), octal(2), octal(3)) {
            (b'\\', Some(x), Some(y), Some(z)) if x < 4 => {
                out.push(x * 64 + y * 8 + z);
                i += 4;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `name` as on the node: without `root` when it is below it.
pub fn on_node<'a>(name: &'a [u8], root: &[u8]) -> &'a [u8] {
    if root.is_empty() || root == b"/" {
        return name;
    }
    match name.strip_prefix(root) {
        Some(b"") => b"/",
        Some(rest) if rest.starts_with(b"/") => rest,
        _ => name,
    }
}

/// `cmp` with every name below `root` as on the node (AIDE's `root_prefix` view): for a
/// report that shows paths as the node has them.
pub fn as_on_node(cmp: &Comparison, root: &[u8]) -> Comparison {
    let strip = |e: &Entry| Entry {
        name: on_node(&e.name, root).to_vec(),
        ..e.clone()
    };
    Comparison {
        total: cmp.total,
        added: cmp.added.iter().map(strip).collect(),
        removed: cmp.removed.iter().map(strip).collect(),
        changed: cmp
            .changed
            .iter()
            .map(|c| crate::compare::Changed {
                old: strip(&c.old),
                new: strip(&c.new),
                changed: c.changed,
            })
            .collect(),
    }
}

/// RFC 3339 in UTC, as Kubernetes shows times.
fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::timefmt::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

fn value(a: Attr, e: &Entry) -> String {
    match a {
        Attr::Ftype => values::file_type_word(e.perm).unwrap_or("").to_owned(),
        Attr::Linkname => escape_path(e.linkname.as_deref().unwrap_or(b"")),
        Attr::Size | Attr::SizeGrowing => e.size.to_string(),
        Attr::Perm => values::perm_string(e.perm),
        Attr::Uid => e.uid.to_string(),
        Attr::Gid => e.gid.to_string(),
        Attr::Mtime => utc(e.mtime),
        Attr::Inode => e.inode.to_string(),
        Attr::Linkcount => e.lcount.to_string(),
        h => crate::hash::hex(e.hash(h).unwrap_or(&[])),
    }
}

/// The attributes of a changed entry that count (as the report counts them), in report order.
fn changed_attrs(c: &crate::compare::Changed, opts: &ReportOptions) -> AttrSet {
    let mut set = c.changed.minus(opts.ignore_changed_attrs);
    if !crate::report::e2fs_really_changed(&c.old, &c.new, opts) {
        set.remove(Attr::E2fsattrs);
    }
    set
}

impl Change {
    /// The change a difference is, in full (not [`shortened`](Self::shortened)).
    pub fn of(d: &Difference, opts: &ReportOptions, root: &[u8]) -> Change {
        match d {
            Difference::Added(e) => Change::of_entry(e, ChangeKind::Added, root),
            Difference::Removed(e) => Change::of_entry(e, ChangeKind::Removed, root),
            Difference::Changed(c) => Change::of_changed(c, opts, root),
        }
    }

    fn of_changed(c: &crate::compare::Changed, opts: &ReportOptions, root: &[u8]) -> Change {
        let set = changed_attrs(c, opts);
        let order = crate::report::detail_order(set);
        let details = order
            .iter()
            .filter(|a| DETAILED.contains(a) || HASHES.contains(**a))
            .map(|&a| Detail {
                attribute: values::json_name(a),
                old: value(a, &c.old),
                new: value(a, &c.new),
            })
            .collect();
        Change {
            path: escape_path(on_node(&c.new.name, root)),
            kind: ChangeKind::Changed,
            attributes: order.into_iter().map(values::json_name).collect(),
            details,
        }
    }

    fn of_entry(e: &Entry, kind: ChangeKind, root: &[u8]) -> Change {
        Change {
            path: escape_path(on_node(&e.name, root)),
            kind,
            attributes: Vec::new(),
            details: Vec::new(),
        }
    }

    /// The canonical line the list's digest is computed over.
    fn canonical(&self) -> String {
        let mut s = format!(
            "{}\t{}\t{}",
            self.kind.as_str(),
            self.path,
            self.attributes.join(",")
        );
        for d in &self.details {
            s.push_str(&format!("\t{}={}>{}", d.attribute, d.old, d.new));
        }
        s.push('\n');
        s
    }

    /// As listed: the path cut to [`MAX_SHOWN_PATH`] bytes, values to [`MAX_SHOWN_VALUE`],
    /// digests to their first [`DIGEST_PREFIX`] hex digits.
    pub fn shortened(mut self) -> Change {
        self.path = cut(&self.path, MAX_SHOWN_PATH);
        for d in &mut self.details {
            let digest = !DETAILED
                .iter()
                .any(|a| values::json_name(*a) == d.attribute);
            let max = if digest {
                DIGEST_PREFIX
            } else {
                MAX_SHOWN_VALUE
            };
            d.old = cut(&d.old, max);
            d.new = cut(&d.new, max);
        }
        self
    }
}

/// `s` cut to at most `max` bytes at a character boundary, `...` added when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The change list of a check's comparison: entries counted as the report counts them, paths
/// below `root` shown as on the node, the first `keep` entries listed.
pub fn list(cmp: &Comparison, opts: &ReportOptions, root: &[u8], keep: usize) -> ChangeList {
    let mut items: Vec<Difference> = cmp.added.iter().map(Difference::Added).collect();
    items.extend(cmp.removed.iter().map(Difference::Removed));
    items.extend(
        cmp.changed
            .iter()
            .filter(|c| counts_as_changed(c, opts))
            .map(Difference::Changed),
    );
    items.sort_by(|a, b| path_order(a.name(), b.name()));

    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut listed = Vec::with_capacity(keep.min(items.len()));
    for item in &items {
        let change = Change::of(item, opts, root);
        digest.update(change.canonical().as_bytes());
        if listed.len() < keep {
            listed.push(change.shortened());
        }
    }
    ChangeList {
        total: items.len() as u64,
        listed,
        sha256: crate::hash::hex(digest.finish().as_ref()),
    }
}

#[cfg(test)]
mod tests;
