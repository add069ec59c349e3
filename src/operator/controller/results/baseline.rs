//! The baseline rule, applied by the operator to every result. The anchor (a node status's
//! `baseline`) is set by the node's first report (trust on first use) and moved only by an initialisation that
//! completed a re-init request the operator made; a database rewritten or re-created on the
//! node by anything else (including the daemon re-initialising a deleted database on its own)
//! does not match it.

use std::fmt;

use fio_api::result::{DatabaseId, ScanCondition, ScanReport};
use fio_api::NodeBaseline;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Why a report is not believed (its result is then Errored with this text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distrust {
    /// It claims a re-init id the operator never asked for (which would pin the anchor).
    UnrequestedReinit {
        node: String,
        id: i64,
        requested: i64,
    },
    /// A scan result that does not say which database it compared against, once a baseline
    /// is anchored.
    NoDigest { node: String },
    /// Its database is not the anchored baseline, and no requested re-init moved it.
    Mismatch {
        node: String,
        anchor: NodeBaseline,
        found: String,
    },
}

impl Distrust {
    /// The `error` label of the node's Errored result (`error_total`): a database the daemon
    /// refused is also one whose digest the operator finds mismatched, one kind for all.
    pub fn metric_label(&self) -> &'static str {
        "BaselineMismatch"
    }
}

impl fmt::Display for Distrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distrust::UnrequestedReinit {
                node,
                id,
                requested,
            } => write!(
                f,
                "node {node} reports re-init {id}, but the newest re-init requested for it is \
                 {requested}: result not believed"
            ),
            Distrust::NoDigest { node } => write!(
                f,
                "node {node} reports a scan result without its database digest, but its \
                 baseline is anchored: result not believed"
            ),
            Distrust::Mismatch {
                node,
                anchor,
                found,
            } => f.write_str(&anchor.mismatch(node, found)),
        }
    }
}

/// The operator's judgement of a report: the anchor after it, and why the report is not
/// believed (the result is then Errored). `requested` is the newest re-init id the operator
/// asked of this node: only an initialisation for an id it requested and the node had not yet
/// completed moves the anchor; an id above it was never asked for; and once a baseline is
/// anchored, a scan result must say which database it compared against.
pub fn judge(
    anchor: Option<&NodeBaseline>,
    completed_reinit: Option<i64>,
    requested: i64,
    report: &ScanReport,
    probe: &Time,
) -> (Option<NodeBaseline>, Option<Distrust>) {
    let node = report.node.clone();
    let id = report.reinit_id.unwrap_or(0);
    if id > requested {
        let why = Distrust::UnrequestedReinit {
            node,
            id,
            requested,
        };
        return (anchor.cloned(), Some(why));
    }
    let Some(db) = &report.database else {
        let scanned = !matches!(report.condition, ScanCondition::Errored { .. });
        let why = (anchor.is_some() && scanned).then_some(Distrust::NoDigest { node });
        return (anchor.cloned(), why);
    };
    let requested_init = report.initialized && id > completed_reinit.unwrap_or(0);
    match anchor {
        Some(a) if a.sha256 == db.sha256 => (Some(a.clone()), None),
        Some(a) if !requested_init => {
            let why = Distrust::Mismatch {
                node,
                anchor: a.clone(),
                found: db.sha256.clone(),
            };
            (Some(a.clone()), Some(why))
        }
        _ => (Some(anchor_of(db, probe)), None),
    }
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
            superseded: 0,
            view: None,
            realtime: None,
        }
    }

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn first_report_anchors_then_only_requested_reinits_move_it() {
        let (a, err) = judge(None, None, 0, &report('a', true, 0), &t(1));
        let a = a.unwrap();
        assert_eq!((a.sha256.as_str(), err), ("a".repeat(64).as_str(), None));
        // Same database: stays.
        assert_eq!(
            judge(Some(&a), Some(0), 0, &report('a', false, 0), &t(2)),
            (Some(a.clone()), None)
        );
        // Rewritten on the node: mismatch, anchor kept.
        let (kept, err) = judge(Some(&a), Some(0), 0, &report('b', false, 0), &t(3));
        assert_eq!(kept, Some(a.clone()));
        assert!(err
            .unwrap()
            .to_string()
            .contains("does not match the baseline"));
        // Re-initialised by the daemon on its own (no new request): still a mismatch.
        assert!(judge(Some(&a), Some(2), 2, &report('b', true, 2), &t(4))
            .1
            .is_some());
        // Re-initialised for request 3: the anchor moves.
        let (moved, err) = judge(Some(&a), Some(2), 3, &report('b', true, 3), &t(5));
        assert_eq!((moved.unwrap().recorded_at, err), (t(5), None));
        // A re-init id that was never requested (pinning the anchor): not believed.
        let (kept, err) = judge(Some(&a), Some(2), 3, &report('c', true, i64::MAX), &t(6));
        assert_eq!(kept, Some(a.clone()));
        assert!(err
            .unwrap()
            .to_string()
            .contains("reports re-init 9223372036854775807"));
        let (_, err) = judge(Some(&a), Some(2), 3, &report('c', true, 4), &t(6));
        assert!(err
            .unwrap()
            .to_string()
            .contains("the newest re-init requested for it is 3"));
        // No digest: believed only before a baseline is anchored, or for an error.
        let mut r = report('b', false, 0);
        r.database = None;
        assert_eq!(judge(None, None, 0, &r, &t(6)), (None, None));
        let (kept, err) = judge(Some(&a), None, 0, &r, &t(6));
        assert_eq!(kept, Some(a.clone()));
        assert!(err
            .unwrap()
            .to_string()
            .contains("without its database digest"));
        r.condition = ScanCondition::Errored {
            exit: None,
            message: "cannot read".into(),
        };
        assert_eq!(judge(Some(&a), None, 0, &r, &t(6)), (Some(a), None));
    }
}
