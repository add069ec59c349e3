use super::*;

fn node_result(node: &str, warning: bool) -> Subject {
    Subject {
        object: "fi-uid".into(),
        warning,
        reason: "NodeIntegrityStatus".into(),
        node: Some(node.into()),
    }
}

/// Feeds `events` one second apart from `start`; names are `e<i>`.
fn feed(c: &mut Correlator, start: Instant, events: &[(Subject, String)]) -> Vec<Emit> {
    events
        .iter()
        .enumerate()
        .map(|(i, (s, note))| {
            c.observe(
                s,
                note,
                start + Duration::from_secs(i as u64),
                format!("e{i}"),
            )
        })
        .collect()
}

#[test]
fn two_nodes_give_two_events_in_upstreams_words() {
    let mut c = Correlator::default();
    let out = feed(
        &mut c,
        Instant::now(),
        &[
            (node_result("a", false), "no changes to node a".into()),
            (node_result("b", false), "no changes to node b".into()),
        ],
    );
    assert_eq!(
        out,
        vec![
            Emit::Create {
                name: "e0".into(),
                note: "no changes to node a".into()
            },
            Emit::Create {
                name: "e1".into(),
                note: "no changes to node b".into()
            },
        ]
    );
}

#[test]
fn a_repeated_note_counts_on_its_event() {
    let mut c = Correlator::default();
    let s = node_result("a", true);
    let note = "node a has changed! a:1,c:0,r:0 log:ns/aide-fi-a-failed".to_owned();
    let now = Instant::now();
    assert!(matches!(
        c.observe(&s, &note, now, "e0".into()),
        Emit::Create { .. }
    ));
    // Counted while its create is in flight: written once it returns, as one repeat.
    assert_eq!(c.observe(&s, &note, now, "e1".into()), Emit::Coalesced);
    assert_eq!(
        c.created("e0"),
        Some(Emit::Repeat {
            name: "e0".into(),
            count: 2
        })
    );
    assert_eq!(c.created("e0"), None, "nothing more to write");
    assert_eq!(
        c.observe(&s, &note, now, "e2".into()),
        Emit::Repeat {
            name: "e0".into(),
            count: 3
        }
    );
}

#[test]
fn a_thousand_nodes_are_combined_and_limited() {
    let mut c = Correlator::default();
    let events: Vec<(Subject, String)> = (0..1000)
        .map(|i| {
            (
                node_result(&format!("n{i}"), false),
                format!("no changes to node n{i}"),
            )
        })
        .collect();
    // All within one second (as the first results of a large cluster arrive).
    let now = Instant::now();
    // Each create returns before the next result (a burst in flight is coalesced instead: see
    // `a_repeated_note_counts_on_its_event`).
    let out: Vec<Emit> = events
        .iter()
        .enumerate()
        .map(|(i, (s, n))| {
            let e = c.observe(s, n, now, format!("e{i}"));
            if let Emit::Create { name, .. } = &e {
                assert_eq!(c.created(name), None);
            }
            e
        })
        .collect();
    let creates = out
        .iter()
        .filter(|e| matches!(e, Emit::Create { .. }))
        .count();
    let repeats = out
        .iter()
        .filter(|e| matches!(e, Emit::Repeat { .. }))
        .count();
    // Nine notes whole, then one combined Event and its repeats, 25 writes in all.
    assert_eq!(
        (creates, repeats),
        (MAX_SIMILAR, BURST as usize - MAX_SIMILAR)
    );
    let dropped = out.iter().filter(|e| **e == Emit::Dropped).count();
    assert_eq!(dropped, 1000 - BURST as usize);
    assert_eq!(
        out[MAX_SIMILAR - 1],
        Emit::Create {
            name: format!("e{}", MAX_SIMILAR - 1),
            note: format!("{COMBINED}no changes to node n{}", MAX_SIMILAR - 1)
        }
    );
    match &out[BURST as usize - 1] {
        Emit::Repeat { name, count } => {
            assert_eq!(name, &format!("e{}", MAX_SIMILAR - 1));
            assert_eq!(*count, BURST as i32 - MAX_SIMILAR as i32 + 1);
        }
        other => panic!("{other:?}"),
    }
    // One more token after REFILL.
    let later = now + REFILL;
    let e = c.observe(
        &node_result("x", false),
        "no changes to node x",
        later,
        "late".into(),
    );
    assert!(matches!(e, Emit::Repeat { .. }), "{e:?}");
    let e = c.observe(
        &node_result("y", false),
        "no changes to node y",
        later,
        "late2".into(),
    );
    assert_eq!(e, Emit::Dropped);
}

#[test]
fn similar_notes_are_combined_only_within_the_window() {
    let mut c = Correlator::default();
    let start = Instant::now();
    for i in 0..MAX_SIMILAR - 1 {
        let s = node_result(&format!("n{i}"), false);
        let e = c.observe(
            &s,
            &format!("no changes to node n{i}"),
            start,
            format!("e{i}"),
        );
        assert!(matches!(e, Emit::Create { .. }));
    }
    // Past the window the count starts again: the next note is whole.
    let later = start + SIMILAR_WINDOW + Duration::from_secs(1);
    let e = c.observe(
        &node_result("z", false),
        "no changes to node z",
        later,
        "z".into(),
    );
    assert_eq!(
        e,
        Emit::Create {
            name: "z".into(),
            note: "no changes to node z".into()
        }
    );
}

#[test]
fn one_node_cannot_silence_another_nodes_warnings_nor_the_phase() {
    let mut c = Correlator::default();
    let now = Instant::now();
    // A hostile node alternates results: every one a Warning (and Normal ones between).
    for i in 0..200 {
        let note = format!("node evil has changed! a:{i},c:0,r:0 log:ns/aide-fi-evil-failed");
        c.observe(&node_result("evil", true), &note, now, format!("w{i}"));
        c.observe(
            &node_result("evil", false),
            "no changes to node evil",
            now,
            format!("n{i}"),
        );
    }
    let other = c.observe(
        &node_result("good", true),
        "node good has changed! a:1,c:0,r:0 log:ns/aide-fi-good-failed",
        now,
        "good".into(),
    );
    assert!(matches!(other, Emit::Create { .. }), "{other:?}");
    let phase = Subject {
        object: "fi-uid".into(),
        warning: false,
        reason: "FileIntegrityStatus".into(),
        node: None,
    };
    let e = c.observe(&phase, "Active", now, "phase".into());
    assert!(matches!(e, Emit::Create { .. }), "{e:?}");
}

#[test]
fn memory_is_bounded_whatever_the_notes() {
    let mut c = Correlator::default();
    let start = Instant::now();
    for i in 0..3 * MAX_KEYS {
        let s = Subject {
            object: format!("uid-{i}"),
            warning: true,
            reason: "R".into(),
            node: Some(format!("n{i}")),
        };
        let at = start + Duration::from_millis(i as u64);
        c.observe(&s, &"x".repeat(5000), at, format!("e{i}"));
    }
    assert!(c.aggregates.len() <= MAX_KEYS);
    assert!(c.series.len() <= MAX_KEYS);
    assert!(c.buckets.len() <= MAX_KEYS);
    let longest = c
        .aggregates
        .values()
        .flat_map(|a| a.notes.iter())
        .map(String::len)
        .max();
    assert!(longest <= Some(MAX_NOTE));
}

#[test]
fn a_failed_write_is_created_again() {
    let mut c = Correlator::default();
    let s = node_result("a", true);
    let now = Instant::now();
    assert!(matches!(
        c.observe(&s, "n", now, "e0".into()),
        Emit::Create { .. }
    ));
    c.failed("e0");
    assert_eq!(
        c.observe(&s, "n", now, "e1".into()),
        Emit::Create {
            name: "e1".into(),
            note: "n".into()
        }
    );
}
