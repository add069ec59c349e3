//! Normal node-result Events ("no changes to node X"), folded. On a large cluster every node's
//! first result is news, and one Event per node was a third API write per result (upstream's
//! client-go recorder folds and rate-limits them the same way). They are gathered per
//! FileIntegrity and published every [`FLUSH`] as few Events as fit: each Event's note lists
//! whole per-node notes ("no changes to node a; no changes to node b"), so every node's outcome
//! is still in an Event as upstream words it, and in its node status. Warnings (a changed or
//! errored node) are not folded: they are published at once, one per node.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;

/// How often folded notes are published.
pub const FLUSH: Duration = Duration::from_secs(5);
/// The longest note of an Event (events.k8s.io/v1 refuses more than 1 kB).
pub const MAX_NOTE: usize = 1024;
const SEPARATOR: &str = "; ";

/// Notes waiting to be published, per object (a FileIntegrity) and reason.
#[derive(Default)]
pub struct Folded {
    pending: Mutex<BTreeMap<(String, String), Pending>>,
}

struct Pending {
    object: ObjectReference,
    notes: Vec<String>,
}

impl Folded {
    pub fn add(&self, object: ObjectReference, reason: &str, note: String) {
        let key = (object.uid.clone().unwrap_or_default(), reason.to_owned());
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .entry(key)
            .or_insert_with(|| Pending {
                object,
                notes: Vec::new(),
            })
            .notes
            .push(note);
    }

    /// Everything gathered since the last call: (object, reason, the notes of one Event each).
    pub fn take(&self) -> Vec<(ObjectReference, String, Vec<String>)> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        pending
            .into_iter()
            .map(|((_, reason), p)| (p.object, reason, fold(&p.notes, MAX_NOTE)))
            .collect()
    }
}

/// `notes` joined into as few texts of at most `max` bytes as their order allows; a note longer
/// than `max` on its own is cut at a character boundary.
pub fn fold(notes: &[String], max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for note in notes {
        let note = cut(note, max);
        match out.last_mut() {
            Some(last) if last.len() + SEPARATOR.len() + note.len() <= max => {
                last.push_str(SEPARATOR);
                last.push_str(note);
            }
            _ => out.push(note.to_owned()),
        }
    }
    out
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_nodes_fit_in_few_events_and_none_is_lost() {
        let notes: Vec<String> = (0..1000)
            .map(|i| format!("no changes to node node-{i}"))
            .collect();
        let folded = fold(&notes, MAX_NOTE);
        assert!(folded.iter().all(|n| n.len() <= MAX_NOTE));
        assert!(folded.len() <= 30, "{} Events", folded.len());
        let back: Vec<&str> = folded.iter().flat_map(|n| n.split(SEPARATOR)).collect();
        assert_eq!(back, notes.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn one_note_is_one_event_and_an_oversized_one_is_cut() {
        assert_eq!(fold(&["a".into()], 10), vec!["a".to_owned()]);
        let long = "é".repeat(10); // 20 bytes
        let folded = fold(&[long, "b".into()], 9);
        assert_eq!(folded, vec!["éééé".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn notes_are_kept_per_object_and_reason_and_taken_once() {
        let f = Folded::default();
        let obj = |uid: &str| ObjectReference {
            uid: Some(uid.into()),
            ..ObjectReference::default()
        };
        f.add(obj("a"), "R", "x".into());
        f.add(obj("b"), "R", "y".into());
        f.add(obj("a"), "R", "z".into());
        let mut taken = f.take();
        taken.sort_by(|l, r| l.0.uid.cmp(&r.0.uid));
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].2, vec!["x; z".to_owned()]);
        assert_eq!(taken[1].2, vec!["y".to_owned()]);
        assert!(f.take().is_empty());
    }
}
