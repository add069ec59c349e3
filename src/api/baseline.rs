//! The baseline rule, one definition for both sides. The anchor (a node status's `baseline`) is
//! set by the node's first report (trust on first use) and moved only by an initialisation that
//! completed a re-init request the operator made; a database rewritten or re-created on the
//! node by anything else (including the daemon re-initialising a deleted database on its own)
//! does not match it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::report::{DatabaseId, ScanReport};
use crate::NodeBaseline;

/// The operator's judgement of a report: the anchor after it, and why the report's database is
/// not the anchored one (the result is then Errored).
pub fn judge(
    anchor: Option<&NodeBaseline>,
    completed_reinit: Option<i64>,
    report: &ScanReport,
    probe: &Time,
) -> (Option<NodeBaseline>, Option<String>) {
    let Some(db) = &report.database else {
        return (anchor.cloned(), None);
    };
    let requested_init =
        report.initialized && report.reinit_id.unwrap_or(0) > completed_reinit.unwrap_or(0);
    match anchor {
        Some(a) if a.sha256 == db.sha256 => (Some(a.clone()), None),
        Some(a) if !requested_init => (Some(a.clone()), Some(a.mismatch(&report.node, &db.sha256))),
        _ => (Some(anchor_of(db, probe)), None),
    }
}

/// The daemon's own check before a scan: refuse a database that is neither the anchored one
/// nor the one this process wrote last (the operator moves the anchor only after it processed
/// the result that reported it, so the next check may come first).
pub fn daemon_refuses(
    anchor: Option<&NodeBaseline>,
    db: &DatabaseId,
    written_by_us: Option<&str>,
    node: &str,
) -> Option<String> {
    let a = anchor?;
    (a.sha256 != db.sha256 && written_by_us != Some(db.sha256.as_str()))
        .then(|| a.mismatch(node, &db.sha256))
}

fn anchor_of(db: &DatabaseId, probe: &Time) -> NodeBaseline {
    NodeBaseline {
        sha256: db.sha256.clone(),
        size: i64::try_from(db.size).unwrap_or(i64::MAX),
        entries: db.entries.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        recorded_at: probe.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ScanCondition;

    fn db(sha: char) -> DatabaseId {
        DatabaseId {
            sha256: sha.to_string().repeat(64),
            size: 10,
            entries: None,
        }
    }

    fn report(sha: char, initialized: bool, reinit_id: i64) -> ScanReport {
        ScanReport {
            owner: "fi".into(),
            node: "n1".into(),
            condition: ScanCondition::Succeeded,
            reinit_id: Some(reinit_id),
            database: Some(db(sha)),
            initialized,
            figures: None,
        }
    }

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn first_report_anchors_then_only_requested_reinits_move_it() {
        let (a, err) = judge(None, None, &report('a', true, 0), &t(1));
        let a = a.unwrap();
        assert_eq!((a.sha256.as_str(), err), ("a".repeat(64).as_str(), None));
        // Same database: stays.
        assert_eq!(
            judge(Some(&a), Some(0), &report('a', false, 0), &t(2)),
            (Some(a.clone()), None)
        );
        // Rewritten on the node: mismatch, anchor kept.
        let (kept, err) = judge(Some(&a), Some(0), &report('b', false, 0), &t(3));
        assert_eq!(kept, Some(a.clone()));
        assert!(err.unwrap().contains("does not match the baseline"));
        // Re-initialised by the daemon on its own (no new request): still a mismatch.
        assert!(judge(Some(&a), Some(2), &report('b', true, 2), &t(4))
            .1
            .is_some());
        // Re-initialised for request 3: the anchor moves.
        let (moved, err) = judge(Some(&a), Some(2), &report('b', true, 3), &t(5));
        assert_eq!((moved.unwrap().recorded_at, err), (t(5), None));
        // No digest reported (upstream's daemon): nothing to judge.
        let mut r = report('b', false, 0);
        r.database = None;
        assert_eq!(judge(Some(&a), None, &r, &t(6)), (Some(a), None));
    }

    #[test]
    fn the_daemon_uses_only_the_anchored_database_or_its_own() {
        let (a, _) = judge(None, None, &report('a', true, 0), &t(1));
        let a = a.unwrap();
        assert_eq!(daemon_refuses(None, &db('b'), None, "n1"), None);
        assert_eq!(daemon_refuses(Some(&a), &db('a'), None, "n1"), None);
        let own = "b".repeat(64);
        assert_eq!(daemon_refuses(Some(&a), &db('b'), Some(&own), "n1"), None);
        let why = daemon_refuses(Some(&a), &db('b'), None, "n1").unwrap();
        assert!(why.contains("node n1"), "{why}");
    }
}
