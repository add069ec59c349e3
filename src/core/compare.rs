//! Comparing a baseline with what is on disk now: AIDE's change rules, applied as a sorted
//! merge of two streams in AIDE order, so neither side is held in memory whole.

use crate::attr::{Attr, AttrSet, HASHES};
use crate::entry::{path_order, Entry, Xattrs};
use crate::focus::Focus;

/// An entry present in both baseline and disk whose reported attributes differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub old: Entry,
    pub new: Entry,
    /// Attributes present in both entries whose values differ (before report_ignore_changed_attrs).
    pub changed: AttrSet,
}

/// How one path differs from its baseline entry.
#[derive(Debug, Clone, Copy)]
pub enum Difference<'a> {
    Added(&'a Entry),
    Removed(&'a Entry),
    Changed(&'a Changed),
}

impl<'a> Difference<'a> {
    /// The entry's name (the new one's, for a change).
    pub fn name(&self) -> &'a [u8] {
        match self {
            Difference::Added(e) | Difference::Removed(e) => &e.name,
            Difference::Changed(c) => &c.new.name,
        }
    }
}

/// The outcome of a comparison, entries in AIDE order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Entries on the new side (disk, or `database_new` for `--compare`).
    pub total: u64,
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    /// Entries with changed values or a different attribute set.
    pub changed: Vec<Changed>,
}

impl Comparison {
    /// Entries the baseline holds (selected by the rules): what the disk side has, less what
    /// was added, plus what was removed.
    pub fn baseline_entries(&self) -> u64 {
        (self.total + self.removed.len() as u64).saturating_sub(self.added.len() as u64)
    }

    /// This comparison with what `focus` covers replaced by `fresh`, a comparison of the same
    /// baseline focused on it: the state of the whole tree after a focused check, provided
    /// nothing outside the focus changed since this one was made.
    pub fn refocus(&mut self, focus: &Focus, fresh: Comparison) {
        let baseline = self.baseline_entries();
        let outside = |name: &[u8]| !focus.covers(name);
        self.added.retain(|e| outside(&e.name));
        self.removed.retain(|e| outside(&e.name));
        self.changed.retain(|c| outside(&c.new.name));
        let by_name = |a: &Entry, b: &Entry| path_order(&a.name, &b.name);
        self.added.extend(fresh.added);
        self.added.sort_by(by_name);
        self.removed.extend(fresh.removed);
        self.removed.sort_by(by_name);
        self.changed.extend(fresh.changed);
        self.changed.sort_by(|a, b| by_name(&a.new, &b.new));
        self.total = (baseline + self.added.len() as u64).saturating_sub(self.removed.len() as u64);
    }
}

/// The attributes whose values differ, compared only where both entries recorded them.
pub fn changed_attributes(old: &Entry, new: &Entry) -> AttrSet {
    let both = old.attrs.intersect(new.attrs);
    let growing = old.attrs.contains(Attr::Growing);
    let mut ret = AttrSet::EMPTY;
    let mut check = |a: Attr, differs: bool| {
        if both.contains(a) && differs {
            ret.insert(a);
        }
    };
    // With `growing`, only a decrease counts.
    let grow = |o: i128, n: i128| if growing { o > n } else { o != n };
    check(
        Attr::Ftype,
        old.perm & libc::S_IFMT != new.perm & libc::S_IFMT,
    );
    check(Attr::Linkname, old.linkname != new.linkname);
    check(Attr::SizeGrowing, old.size > new.size);
    check(Attr::Size, grow(old.size as i128, new.size as i128));
    check(Attr::Bcount, grow(old.bcount as i128, new.bcount as i128));
    check(Attr::Perm, old.perm != new.perm);
    check(Attr::Uid, old.uid != new.uid);
    check(Attr::Gid, old.gid != new.gid);
    check(Attr::Atime, grow(old.atime as i128, new.atime as i128));
    check(Attr::Mtime, grow(old.mtime as i128, new.mtime as i128));
    check(Attr::Ctime, grow(old.ctime as i128, new.ctime as i128));
    check(Attr::Inode, old.inode != new.inode);
    check(Attr::Linkcount, old.lcount != new.lcount);
    for h in HASHES.iter() {
        // Full comparison: AIDE 0.18 stops at the first zero byte of a digest (strncmp).
        check(h, old.hash(h) != new.hash(h));
    }
    check(Attr::Acl, old.acl != new.acl);
    check(Attr::Xattrs, xattrs_differ(&old.xattrs, &new.xattrs));
    check(Attr::Selinux, old.selinux != new.selinux);
    check(Attr::E2fsattrs, old.e2fsattrs != new.e2fsattrs);
    check(Attr::Caps, old.caps != new.caps);
    ret
}

fn xattrs_differ(a: &Option<Xattrs>, b: &Option<Xattrs>) -> bool {
    let norm = |x: &Option<Xattrs>| {
        let mut v: Xattrs = x.clone().unwrap_or_default();
        v.sort();
        v
    };
    norm(a) != norm(b)
}

/// Collects the comparison of the baseline stream with the disk stream (the merge itself,
/// which can skip decoding identical lines, is `scan`'s).
#[derive(Default)]
pub struct Merger {
    result: Comparison,
}

impl Merger {
    pub fn new() -> Merger {
        Merger::default()
    }

    /// One entry that only the old side has.
    pub fn removed(&mut self, old: Entry) {
        self.result.removed.push(old);
    }

    /// One entry that only the new side has.
    pub fn added(&mut self, new: Entry) {
        self.result.total += 1;
        self.result.added.push(new);
    }

    /// The same path on both sides, known to be identical.
    pub fn unchanged(&mut self) {
        self.result.total += 1;
    }

    /// The comparison so far (every entry fed).
    pub fn into_comparison(self) -> Comparison {
        self.result
    }

    /// The same path on both sides.
    pub fn both(&mut self, old: Entry, new: Entry) {
        self.result.total += 1;
        let changed = changed_attributes(&old, &new);
        if !changed.is_empty() || old.attrs != new.attrs {
            self.result.changed.push(Changed { old, new, changed });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, perm: u32) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            perm,
            attrs: AttrSet::of(&[Attr::Filename, Attr::Perm, Attr::Ftype]),
            ..Default::default()
        }
    }

    #[test]
    fn digests_compare_in_full() {
        let mut a = e("/f", 0o100644);
        a.attrs.insert(Attr::Sha256);
        let mut b = a.clone();
        a.set_hash(Attr::Sha256, vec![0, 1].into());
        b.set_hash(Attr::Sha256, vec![0, 2].into());
        assert!(changed_attributes(&a, &b).contains(Attr::Sha256));
    }
}
