//! A baseline moved for some paths only (expected changes, issue 28): the database is copied
//! line by line and only the accepted entries are replaced, added or dropped, so every other
//! entry stays byte-identical and nothing outside the delta can slip into the new baseline.
//! The old database's own columns are kept (a line is copied, never re-encoded).

use std::collections::BTreeMap;
use std::path::Path;

use super::{DbError, DbReader, DbWriter, WriteOptions};
use crate::entry::{path_order, Entry};

/// What changes for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The entry as it is now: it replaces the baseline's entry of that name.
    Replace(Entry),
    /// A new entry: the baseline must not have one of that name.
    Add(Entry),
    /// The baseline's entry of that name goes.
    Remove(Vec<u8>),
}

impl Edit {
    fn name(&self) -> &[u8] {
        match self {
            Edit::Replace(e) | Edit::Add(e) => &e.name,
            Edit::Remove(n) => n,
        }
    }
}

/// The new database's entry count and the digests of its content (`WriteOptions::digests`).
#[derive(Debug, Clone)]
pub struct Written {
    pub entries: u64,
    pub digests: crate::hash::Digests,
}

/// Write `out` as `db` with `edits` applied. An edit that does not fit the baseline (a
/// replacement or removal of a name it lacks, an addition of one it has, two edits of one
/// name) is an error naming the path, and nothing is written.
pub fn apply(
    db: &Path,
    out: &Path,
    opts: &WriteOptions,
    edits: Vec<Edit>,
) -> Result<Written, DbError> {
    let misfit = |name: &[u8], why: &str| DbError::Format {
        path: db.to_owned(),
        line: 0,
        msg: format!(
            "cannot move the baseline of {}: {why}",
            String::from_utf8_lossy(name)
        ),
    };
    let mut by_name: BTreeMap<Vec<u8>, Edit> = BTreeMap::new();
    for e in edits {
        let name = e.name().to_vec();
        if by_name.insert(name.clone(), e).is_some() {
            return Err(misfit(&name, "two edits of one path"));
        }
    }
    let mut pending: Vec<Edit> = by_name.into_values().collect();
    pending.sort_by(|a, b| path_order(a.name(), b.name()));
    let mut pending = pending.into_iter().peekable();

    let mut reader = DbReader::open(db, crate::attr::AttrSet::EMPTY)?;
    let mut w = DbWriter::create(out, reader.spec().clone(), opts)?;
    while let Some(raw) = reader.next_raw()? {
        // Additions that sort before this entry.
        while let Some(edit) = pending.next_if(|e| path_order(e.name(), &raw.name).is_lt()) {
            match edit {
                Edit::Add(e) => w.write(&e)?,
                other => return Err(misfit(other.name(), "not in the baseline")),
            }
        }
        match pending.next_if(|e| e.name() == raw.name.as_slice()) {
            Some(Edit::Replace(e)) => w.write(&e)?,
            Some(Edit::Remove(_)) => {}
            Some(Edit::Add(e)) => return Err(misfit(&e.name, "already in the baseline")),
            None => w.write_line(&raw.line)?,
        }
    }
    for edit in pending {
        match edit {
            Edit::Add(e) => w.write(&e)?,
            other => return Err(misfit(other.name(), "not in the baseline")),
        }
    }
    // The old database read to its end (a corrupt tail is an error here too).
    reader.finish()?;
    let entries = w.entries;
    let digests = w.finish()?;
    Ok(Written { entries, digests })
}

#[cfg(test)]
mod tests;
