//! Comparing a baseline with what is on disk now.

use crate::attr::AttrSet;
use crate::entry::Entry;

/// An entry present in both baseline and disk whose reported attributes differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub old: Entry,
    pub new: Entry,
    /// Attributes present in both entries whose values differ (before report_ignore_changed_attrs).
    pub changed: AttrSet,
}

/// The outcome of a comparison, entries in AIDE order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Entries on the new side (disk, or `database_new` for `--compare`).
    pub total: u64,
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    pub changed: Vec<Changed>,
}

impl Comparison {
    /// AIDE's exit code bits: 1 added, 2 removed, 4 changed.
    pub fn exit_bits(&self) -> i32 {
        (!self.added.is_empty() as i32) | ((!self.removed.is_empty() as i32) << 1) | ((!self.changed.is_empty() as i32) << 2)
    }
}
