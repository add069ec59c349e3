//! How each listed change was found: by the realtime watcher (with the writers the kernel
//! named) or by a scan. Pure: the daemon keeps the map between results and marks each result's
//! listed changes with it; the tests feed lists.

use std::collections::BTreeMap;

use fio_api::{FileChange, FoundBy, Writer, MAX_WRITERS};

/// Listed path -> how it was found and by whom.
pub type Found = BTreeMap<String, (FoundBy, Vec<Writer>)>;

/// Mark `listed` (a result's listed changes): a change known from an earlier result keeps how
/// it was found first; a new one is the realtime watcher's when it is at or below a path the
/// watcher named for this result (`realtime`: paths as listed, with their writers), else a
/// scan's. Writers named again add to those known (the first [`MAX_WRITERS`]). `found` then
/// holds the listed changes only.
pub fn mark(
    found: &mut Found,
    listed: &mut [FileChange],
    realtime: Option<&[(String, Vec<Writer>)]>,
) {
    let mut next = Found::new();
    for c in listed.iter_mut() {
        let named = realtime.and_then(|named| {
            named
                .iter()
                .find(|(p, _)| {
                    c.path == *p
                        || (c.path.starts_with(p.as_str())
                            && (p == "/" || c.path.as_bytes().get(p.len()) == Some(&b'/')))
                })
                .map(|(_, w)| w)
        });
        let (by, mut writers) = match (found.remove(&c.path), named) {
            (Some(known), _) => known,
            (None, Some(_)) => (FoundBy::Realtime, Vec::new()),
            (None, None) => (FoundBy::Scan, Vec::new()),
        };
        for w in named.into_iter().flatten() {
            if writers.len() < MAX_WRITERS && !writers.contains(w) {
                writers.push(w.clone());
            }
        }
        c.found_by = Some(by);
        c.writers = writers.clone();
        next.insert(c.path.clone(), (by, writers));
    }
    *found = next;
}

#[cfg(test)]
mod tests {
    use super::*;
    use fio_api::{ChangeKind, WriterState};

    fn change(path: &str) -> FileChange {
        FileChange {
            path: path.into(),
            kind: ChangeKind::Added,
            attributes: Vec::new(),
            details: Vec::new(),
            since: None,
            found_by: None,
            writers: Vec::new(),
        }
    }

    fn writer(pid: i64) -> Writer {
        Writer {
            state: WriterState::Attributed,
            pid: Some(pid),
            ..Writer::default()
        }
    }

    #[test]
    fn realtime_then_scan_keeps_how_it_was_found_first() {
        let mut found = Found::new();
        let mut listed = vec![change("/etc/a"), change("/etc/d/f")];
        let named = [("/etc/d".to_owned(), vec![writer(7)])];
        mark(&mut found, &mut listed, Some(&named));
        assert_eq!(
            listed[0].found_by,
            Some(FoundBy::Scan),
            "not named: a scan's"
        );
        assert_eq!(
            listed[1].found_by,
            Some(FoundBy::Realtime),
            "below a named directory"
        );
        assert_eq!(listed[1].writers, [writer(7)]);

        // The next scan lists both again and a new one.
        let mut listed = vec![change("/etc/a"), change("/etc/d/f"), change("/etc/dd")];
        mark(&mut found, &mut listed, None);
        assert_eq!(listed[1].found_by, Some(FoundBy::Realtime));
        assert_eq!(listed[1].writers, [writer(7)]);
        assert_eq!(
            listed[2].found_by,
            Some(FoundBy::Scan),
            "/etc/dd is not below /etc/d"
        );

        // Written again by another process: both named, each once.
        let named = [("/etc/d/f".to_owned(), vec![writer(8), writer(7)])];
        let mut listed = vec![change("/etc/d/f")];
        mark(&mut found, &mut listed, Some(&named));
        assert_eq!(listed[0].writers, [writer(7), writer(8)]);
        assert_eq!(found.len(), 1, "only listed changes are remembered");
    }
}
