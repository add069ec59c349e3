//! The baseline rule, applied by the operator to every result. The anchor (a node status's
//! `baseline`) is set by the node's first report (trust on first use) and moved only by an
//! initialisation that completed a re-init request the operator made, or by a baseline moved
//! for some paths that completed an acceptance request it made (issue 28); a database
//! rewritten or re-created on the node by anything else (including the daemon re-initialising
//! a deleted database on its own) does not match it.

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
    /// It claims an acceptance the operator never asked for.
    UnrequestedAccept {
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
            Distrust::UnrequestedAccept {
                node,
                id,
                requested,
            } => write!(
                f,
                "node {node} reports acceptance {id}, but the newest acceptance requested for \
                 it is {requested}: result not believed"
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

/// A node's requests of one kind: the newest id it completed (as its status records) and the
/// newest the operator asked of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asked {
    pub completed: i64,
    pub requested: i64,
}

/// The operator's judgement of a report: the anchor after it, and why the report is not
/// believed (the result is then Errored). Only an initialisation for a re-init id the operator
/// requested and the node had not yet completed, or a baseline moved for an acceptance id
/// likewise, moves the anchor; an id above the one requested was never asked for; and once a
/// baseline is anchored, a scan result must say which database it compared against.
pub fn judge(
    anchor: Option<&NodeBaseline>,
    reinit: Asked,
    accept: Asked,
    report: &ScanReport,
    probe: &Time,
) -> (Option<NodeBaseline>, Option<Distrust>) {
    let node = report.node.clone();
    let id = report.reinit_id.unwrap_or(0);
    if id > reinit.requested {
        let why = Distrust::UnrequestedReinit {
            node,
            id,
            requested: reinit.requested,
        };
        return (anchor.cloned(), Some(why));
    }
    let accepted = report.accepted.as_ref().map_or(0, |a| a.id);
    if accepted > accept.requested {
        let why = Distrust::UnrequestedAccept {
            node,
            id: accepted,
            requested: accept.requested,
        };
        return (anchor.cloned(), Some(why));
    }
    let Some(db) = &report.database else {
        let scanned = !matches!(report.condition, ScanCondition::Errored { .. });
        let why = (anchor.is_some() && scanned).then_some(Distrust::NoDigest { node });
        return (anchor.cloned(), why);
    };
    let requested_init = report.initialized && id > reinit.completed;
    let requested_move = report
        .accepted
        .as_ref()
        .is_some_and(|a| !a.paths.is_empty() && a.id > accept.completed);
    match anchor {
        Some(a) if a.sha256 == db.sha256 => (Some(a.clone()), None),
        Some(a) if !requested_init && !requested_move => {
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
            accepted: None,
        }
    }

    const NO: Asked = Asked {
        completed: 0,
        requested: 0,
    };

    fn re(completed: i64, requested: i64) -> Asked {
        Asked {
            completed,
            requested,
        }
    }

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn first_report_anchors_then_only_requested_reinits_move_it() {
        let (a, err) = judge(None, re(0, 0), NO, &report('a', true, 0), &t(1));
        let a = a.unwrap();
        assert_eq!((a.sha256.as_str(), err), ("a".repeat(64).as_str(), None));
        // Same database: stays.
        assert_eq!(
            judge(Some(&a), re(0, 0), NO, &report('a', false, 0), &t(2)),
            (Some(a.clone()), None)
        );
        // Rewritten on the node: mismatch, anchor kept.
        let (kept, err) = judge(Some(&a), re(0, 0), NO, &report('b', false, 0), &t(3));
        assert_eq!(kept, Some(a.clone()));
        assert!(err
            .unwrap()
            .to_string()
            .contains("does not match the baseline"));
        // Re-initialised by the daemon on its own (no new request): still a mismatch.
        assert!(judge(Some(&a), re(2, 2), NO, &report('b', true, 2), &t(4))
            .1
            .is_some());
        // Re-initialised for request 3: the anchor moves.
        let (moved, err) = judge(Some(&a), re(2, 3), NO, &report('b', true, 3), &t(5));
        assert_eq!((moved.unwrap().recorded_at, err), (t(5), None));
        // A re-init id that was never requested (pinning the anchor): not believed.
        let (kept, err) = judge(Some(&a), re(2, 3), NO, &report('c', true, i64::MAX), &t(6));
        assert_eq!(kept, Some(a.clone()));
        assert!(err
            .unwrap()
            .to_string()
            .contains("reports re-init 9223372036854775807"));
        let (_, err) = judge(Some(&a), re(2, 3), NO, &report('c', true, 4), &t(6));
        assert!(err
            .unwrap()
            .to_string()
            .contains("the newest re-init requested for it is 3"));
        // No digest: believed only before a baseline is anchored, or for an error.
        let mut r = report('b', false, 0);
        r.database = None;
        assert_eq!(judge(None, re(0, 0), NO, &r, &t(6)), (None, None));
        let (kept, err) = judge(Some(&a), re(0, 0), NO, &r, &t(6));
        assert_eq!(kept, Some(a.clone()));
        assert!(err
            .unwrap()
            .to_string()
            .contains("without its database digest"));
        r.condition = ScanCondition::Errored {
            exit: None,
            message: "cannot read".into(),
        };
        assert_eq!(judge(Some(&a), re(0, 0), NO, &r, &t(6)), (Some(a), None));
    }

    #[test]
    fn only_a_requested_acceptance_moves_the_anchor() {
        let (a, _) = judge(None, NO, NO, &report('a', true, 0), &t(1));
        let a = a.unwrap();
        let moved = |sha: char, id: i64, paths: &[&str]| {
            let mut r = report(sha, false, 0);
            r.accepted = Some(fio_api::accept::Accepted {
                id,
                paths: paths.iter().map(|p| p.to_string()).collect(),
            });
            r
        };
        // Request 4 asked, 3 completed: the delta's database is the new anchor.
        let (b, err) = judge(Some(&a), NO, re(3, 4), &moved('b', 4, &["/etc/x"]), &t(2));
        assert_eq!((b.unwrap().sha256, err), ("b".repeat(64), None));
        // Completed already (a replay of the same result), or nothing moved: a mismatch.
        for r in [moved('b', 4, &["/etc/x"]), moved('b', 5, &[])] {
            let (kept, err) = judge(Some(&a), NO, re(4, 5), &r, &t(3));
            assert_eq!(kept, Some(a.clone()));
            assert!(err.is_some());
        }
        // Never asked for: not believed, named.
        let (kept, err) = judge(Some(&a), NO, re(4, 5), &moved('c', 6, &["/etc/x"]), &t(4));
        assert_eq!(kept, Some(a.clone()));
        assert_eq!(
            err.unwrap().to_string(),
            "node n1 reports acceptance 6, but the newest acceptance requested for it is 5: \
             result not believed"
        );
    }
}
