//! The results controller's decisions, fed with objects (no cluster).

use super::*;
use fio_api::result::{DatabaseId, FileCounts, HostView, Log};
use fio_api::FileIntegritySpec;
use fio_core::exit::Exit;

const NS: &str = "openshift-file-integrity";

fn t(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
}

fn fi() -> FileIntegrity {
    let mut fi = FileIntegrity::new("worker-fileintegrity", FileIntegritySpec::default());
    fi.metadata.namespace = Some(NS.into());
    fi.metadata.uid = Some("fi-uid".into());
    fi
}

fn report(condition: ScanCondition, sha: char, initialized: bool, reinit_id: i64) -> ScanReport {
    ScanReport {
        owner: "worker-fileintegrity".into(),
        node: "node-1".into(),
        condition,
        reinit_id: Some(reinit_id),
        database: Some(DatabaseId {
            sha256: sha.to_string().repeat(64),
            size: 100,
            entries: None,
        }),
        initialized,
        figures: None,
        superseded: 0,
        view: None,
        realtime: None,
        accepted: None,
    }
}

fn cm_at(r: &ScanReport, secs: i64) -> ConfigMap {
    let mut cm = r.to_config_map(NS, "fi-uid");
    cm.metadata.creation_timestamp = Some(t(secs));
    cm.metadata.uid = Some(format!("cm-{secs}"));
    cm
}

fn failed(added: u64) -> ScanCondition {
    ScanCondition::Failed {
        counts: FileCounts {
            added,
            changed: 0,
            removed: 0,
        },
        log: Log::Text("AIDE found differences".into()),
        changes: None,
    }
}

/// Run `plan` over a sequence of results of one node, as the controller would, returning each
/// plan.
fn sequence(cms: &[ConfigMap]) -> Vec<ResultPlan> {
    sequence_of(&fi(), cms)
}

/// The FileIntegrity after the operator requested re-init `id` of node-1.
fn fi_requested(id: i64) -> FileIntegrity {
    let mut fi = fi();
    let r = fio_api::ReinitRequests {
        config: String::new(),
        seq: id,
        nodes: [("node-1".to_owned(), id)].into(),
        keep: Default::default(),
    };
    fi.annotations_mut()
        .insert(names::REINIT_REQUESTS_ANNOTATION.into(), r.to_annotation());
    fi
}

fn sequence_of(fi: &FileIntegrity, cms: &[ConfigMap]) -> Vec<ResultPlan> {
    let mut prev: Option<FileIntegrityNodeStatusFields> = None;
    let mut plans = Vec::new();
    for cm in cms {
        let p = plan(cm, fi, prev.as_ref(), NS, t(0)).unwrap();
        prev = Some(p.status.spec.clone());
        plans.push(p);
    }
    plans
}

/// Each result is created by the daemon and recorded with its resourceVersion: once recorded, it
/// is only deleted (an operator that stopped between the two does not process it again). Its
/// probe time is when the API server created it; results it replaced on the node are counted.
#[test]
fn a_result_is_recorded_once_with_the_api_servers_time() {
    let mut r = report(ScanCondition::Succeeded, 'a', true, 0);
    r.superseded = 2;
    let mut first = cm_at(&r, 7);
    first.metadata.resource_version = Some("10".into());
    let p = plan(&first, &fi(), None, NS, t(0)).unwrap();
    assert_eq!(p.status.spec.last_result.last_probe_time, t(7));
    assert_eq!(p.status.spec.result_version.as_deref(), Some("10"));
    assert_eq!(p.superseded, 2);
    assert!(recorded(&first, Some(&p.status.spec)));
    // The next result, a new object.
    let mut second = cm_at(&report(ScanCondition::Succeeded, 'a', false, 0), 900);
    second.metadata.resource_version = Some("17".into());
    assert!(!recorded(&second, Some(&p.status.spec)));
    let p2 = plan(&second, &fi(), Some(&p.status.spec), NS, t(0)).unwrap();
    assert_eq!(p2.status.spec.last_result.last_probe_time, t(900));
    assert_eq!(p2.superseded, 0);
    // Without a resourceVersion nothing counts as recorded.
    let mut bare = second.clone();
    bare.metadata.resource_version = None;
    assert!(!recorded(&bare, Some(&p2.status.spec)));
    assert!(!recorded(&second, None));
}

#[test]
fn first_success_anchors_and_is_news() {
    let p = &sequence(&[cm_at(&report(ScanCondition::Succeeded, 'a', true, 0), 10)])[0];
    assert_eq!(
        p.status.metadata.name.as_deref(),
        Some("worker-fileintegrity-node-1")
    );
    let f = &p.status.spec;
    assert_eq!(f.last_result.condition, Condition::Succeeded);
    assert_eq!(f.baseline.as_ref().unwrap().sha256, "a".repeat(64));
    assert_eq!(p.event, Some((false, "no changes to node node-1".into())));
    assert!(p.condition_changed && p.kept_report.is_none() && p.error_kind.is_none());
    let owner = &p.status.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.uid, "fi-uid");
}

#[test]
fn a_failure_keeps_its_report_and_repeats_are_not_news() {
    let plans = sequence(&[
        cm_at(&report(ScanCondition::Succeeded, 'a', true, 0), 10),
        cm_at(&report(failed(2), 'a', false, 0), 20),
        cm_at(&report(failed(2), 'a', false, 0), 30),
        cm_at(&report(failed(3), 'a', false, 0), 40),
    ]);
    let kept = plans[1].kept_report.as_ref().unwrap();
    assert_eq!(
        kept.metadata.name.as_deref(),
        Some("aide-worker-fileintegrity-node-1-failed")
    );
    let labels = kept.metadata.labels.as_ref().unwrap();
    assert!(labels.contains_key(names::RESULT_LOG_LABEL) && !labels.contains_key(names::LOG_LABEL));
    assert!(
        kept.metadata.owner_references.is_none(),
        "kept reports outlive the FileIntegrity"
    );
    let (warning, note) = plans[1].event.clone().unwrap();
    assert!(warning);
    assert_eq!(
        note,
        format!(
            "node node-1 has changed! a:2,c:0,r:0 log:{NS}/aide-worker-fileintegrity-node-1-failed"
        )
    );
    assert_eq!(plans[2].event, None, "the same failure again is not news");
    assert!(plans[3].event.is_some(), "different counts are");
    // One result per condition, the latest Failed one replacing the earlier.
    let f = &plans[3].status.spec;
    assert_eq!(f.results.len(), 2);
    assert_eq!(
        (
            f.last_result.files_added,
            f.last_result.last_probe_time.clone()
        ),
        (3, t(40))
    );
}

#[test]
fn on_equal_times_the_result_just_received_is_the_last() {
    let plans = sequence(&[
        cm_at(&report(failed(1), 'a', true, 0), 10),
        cm_at(&report(ScanCondition::Succeeded, 'a', false, 0), 10),
    ]);
    assert_eq!(
        plans[1].status.spec.last_result.condition,
        Condition::Succeeded
    );
}

#[test]
fn a_rewritten_database_is_errored_until_a_requested_reinit() {
    let plans = sequence_of(
        &fi_requested(1),
        &[
            cm_at(&report(ScanCondition::Succeeded, 'a', true, 0), 10),
            // Rewritten on the node, reported as a success: Errored, the anchor stays.
            cm_at(&report(ScanCondition::Succeeded, 'b', false, 0), 20),
            // Re-created by the daemon on its own (no new request): still Errored.
            cm_at(&report(ScanCondition::Succeeded, 'c', true, 0), 30),
            // Re-initialised for request 1: accepted, the anchor moves.
            cm_at(&report(ScanCondition::Succeeded, 'c', true, 1), 40),
        ],
    );
    for p in &plans[1..3] {
        let last = &p.status.spec.last_result;
        assert_eq!(last.condition, Condition::Errored);
        assert!(
            last.error_message.contains("does not match the baseline"),
            "{}",
            last.error_message
        );
        assert!(p.mismatched);
        assert_eq!(p.error_kind.as_deref(), Some("BaselineMismatch"));
        assert_eq!(
            p.status.spec.baseline.as_ref().unwrap().sha256,
            "a".repeat(64)
        );
    }
    let f = &plans[3].status.spec;
    assert_eq!(f.last_result.condition, Condition::Succeeded);
    assert_eq!(
        (f.baseline.as_ref().unwrap().sha256.clone(), f.reinit_id),
        ("c".repeat(64), Some(1))
    );
}

#[test]
fn errors_carry_their_kind_and_malformed_results_are_errors() {
    let io = ScanCondition::Errored {
        exit: Some(Exit::Io),
        message: "AIDE error: 18 IO error: x".into(),
    };
    let p = &sequence(&[cm_at(&report(io, 'a', false, 0), 10)])[0];
    assert_eq!(p.error_kind.as_deref(), Some("AideExit18"));
    assert_eq!(
        p.event,
        Some((
            true,
            "node node-1 has an error! AIDE error: 18 IO error: x".into()
        ))
    );

    let mut cm = cm_at(&report(failed(1), 'a', false, 0), 10);
    cm.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(names::FILES_ADDED_ANNOTATION.into(), "-5".into());
    let p = plan(&cm, &fi(), None, NS, t(0)).unwrap();
    let last = &p.status.spec.last_result;
    assert_eq!(last.condition, Condition::Errored);
    assert!(
        last.error_message.contains(names::FILES_ADDED_ANNOTATION),
        "{}",
        last.error_message
    );
    assert_eq!(last.files_added, 0);
    assert_eq!(p.error_kind.as_deref(), Some("MalformedResult"));

    cm.metadata
        .labels
        .as_mut()
        .unwrap()
        .remove(names::NODE_LABEL);
    assert!(plan(&cm, &fi(), None, NS, t(0)).is_err());
}

#[test]
fn a_nodes_error_text_is_bounded_in_its_status_and_event() {
    let huge = ScanCondition::Errored {
        exit: Some(Exit::Io),
        message: format!("AIDE error: 18 IO error: {}", "é".repeat(600_000)),
    };
    let p = &sequence(&[cm_at(&report(huge, 'a', false, 0), 10)])[0];
    let msg = &p.status.spec.last_result.error_message;
    assert!(msg.len() < MAX_MESSAGE + 64, "{} bytes", msg.len());
    assert!(
        msg.ends_with("bytes, truncated)"),
        "{}",
        &msg[msg.len() - 40..]
    );
    let (_, note) = p.event.clone().unwrap();
    assert!(note.len() < MAX_MESSAGE + 128);
}

#[test]
fn a_result_under_another_nodes_name_is_rejected() {
    let r = report(ScanCondition::Succeeded, 'a', true, 0);
    let mut cm = cm_at(&r, 10);
    // node-1's labels under node-2's result name (squatting it), and the reverse.
    cm.metadata.name = Some(names::result_configmap_name(
        "worker-fileintegrity",
        "node-2",
    ));
    let err = plan(&cm, &fi(), None, NS, t(0)).unwrap_err();
    assert!(matches!(&err, Unattributable::NotCanonical { node, .. } if node == "node-1"));
    assert!(
        err.to_string()
            .contains("not the result name of node node-1"),
        "{err}"
    );
    let mut cm = cm_at(&r, 10);
    cm.labels_mut()
        .insert(names::NODE_LABEL.into(), "node-2".into());
    assert!(matches!(
        plan(&cm, &fi(), None, NS, t(0)),
        Err(Unattributable::NotCanonical { .. })
    ));
    // Its own name and labels: accepted.
    assert!(plan(&cm_at(&r, 10), &fi(), None, NS, t(0)).is_ok());
}

#[test]
fn only_requested_reinits_count_and_an_anchored_node_must_name_its_database() {
    let fi = fi_requested(2);
    let mut no_digest = report(ScanCondition::Succeeded, 'a', false, 2);
    no_digest.database = None;
    let plans = sequence_of(
        &fi,
        &[
            cm_at(&report(ScanCondition::Succeeded, 'a', true, 0), 10),
            // A forged re-init far above what was requested: not believed, nothing pinned.
            cm_at(&report(ScanCondition::Succeeded, 'b', true, i64::MAX), 20),
            // A success without a digest once anchored: not believed.
            cm_at(&no_digest, 30),
            // The requested re-init: the anchor moves, the id is recorded.
            cm_at(&report(ScanCondition::Succeeded, 'c', true, 2), 40),
        ],
    );
    for (p, says) in plans[1..3].iter().zip([
        "newest re-init requested for it is 2",
        "without its database digest",
    ]) {
        let f = &p.status.spec;
        assert_eq!(f.last_result.condition, Condition::Errored);
        assert!(
            f.last_result.error_message.contains(says),
            "{}",
            f.last_result.error_message
        );
        assert_eq!(f.baseline.as_ref().unwrap().sha256, "a".repeat(64));
        assert_eq!(f.reinit_id, Some(0));
    }
    let f = &plans[3].status.spec;
    assert_eq!(
        (f.last_result.condition, f.reinit_id),
        (Condition::Succeeded, Some(2))
    );
    assert_eq!(f.baseline.as_ref().unwrap().sha256, "c".repeat(64));
}

fn viewed(mut r: ScanReport, covered: &[&str]) -> ScanReport {
    r.view = Some(HostView {
        digest: "e".repeat(64),
        covered_files: covered.iter().map(|c| c.to_string()).collect(),
    });
    r
}

/// The node's view of its mounts is recorded; files covered by mounts are a Warning Event when
/// the list changes (not at every scan), and a node's list is bounded in the status.
#[test]
fn covered_files_are_shown_and_told_once_per_change() {
    let ok = || report(ScanCondition::Succeeded, 'a', false, 0);
    let many: Vec<String> = (0..21).map(|i| format!("/etc/f{i:02}")).collect();
    let long = format!("/etc/{}", "x".repeat(400));
    let plans = sequence(&[
        cm_at(
            &viewed(report(ScanCondition::Succeeded, 'a', true, 0), &[]),
            10,
        ),
        cm_at(&viewed(ok(), &["/etc/passwd"]), 20),
        cm_at(&viewed(ok(), &["/etc/passwd"]), 30),
        cm_at(
            &viewed(ok(), &many.iter().map(String::as_str).collect::<Vec<_>>()),
            40,
        ),
        cm_at(&viewed(ok(), &[&long]), 50),
        cm_at(&viewed(ok(), &[]), 60),
    ]);
    let last = |i: usize| &plans[i].status.spec.last_result;
    assert_eq!(last(0).mounts_sha256, "e".repeat(64));
    assert!(last(0).covered_files.is_empty());
    assert_eq!(plans[0].covered_event, None);
    assert_eq!(last(1).covered_files, ["/etc/passwd"]);
    assert_eq!(
        plans[1].covered_event.as_deref(),
        Some(
            "node node-1: files covered by mounts (a scan reads the covering content): /etc/passwd"
        )
    );
    // The same list again: no Event; the condition is still the node's own.
    assert_eq!(plans[2].covered_event, None);
    assert_eq!(last(2).condition, Condition::Succeeded);
    assert_eq!(last(3).covered_files.len(), MAX_COVERED_SHOWN + 1);
    assert_eq!(last(3).covered_files[10], "(11 more lines in the result)");
    assert!(plans[3].covered_event.is_some());
    assert_eq!(last(4).covered_files[0].len(), 256 + 3);
    assert!(last(5).covered_files.is_empty());
    assert_eq!(plans[5].covered_event, None);
}

fn change(path: &str, kind: fio_api::ChangeKind) -> FileChange {
    FileChange {
        path: path.into(),
        kind,
        attributes: Vec::new(),
        details: Vec::new(),
        since: None,
        found_by: None,
        writers: Vec::new(),
    }
}

/// A Failed result of `added` added entries listing `paths`.
fn failed_listing(added: u64, paths: &[&str]) -> ScanCondition {
    let ScanCondition::Failed { counts, log, .. } = failed(added) else {
        unreachable!("failed() is a failure")
    };
    let listed = paths
        .iter()
        .map(|p| change(p, fio_api::ChangeKind::Added))
        .collect();
    let summary = fio_api::result::ChangeSummary {
        total: added,
        sha256: format!("{added:064x}"),
        listed,
    };
    ScanCondition::Failed {
        counts,
        log,
        changes: Some(fio_api::result::Changes {
            summary,
            json: Some("{}".into()),
        }),
    }
}

fn since(p: &ResultPlan) -> Vec<(String, i64)> {
    p.status
        .spec
        .last_result
        .changes
        .iter()
        .map(|c| (c.path.clone(), c.since.as_ref().unwrap().0.as_second()))
        .collect()
}

/// The node's changes are in its status, each with the time of the first scan that reported
/// it, kept over later scans and started afresh after a re-init; the kept report carries the
/// full list; the Event names the first paths after upstream's text.
#[test]
fn changes_are_listed_with_the_time_they_were_first_seen() {
    let plans = sequence_of(
        &fi_requested(1),
        &[
            cm_at(&report(ScanCondition::Succeeded, 'a', true, 0), 10),
            cm_at(&report(failed_listing(1, &["/etc/a"]), 'a', false, 0), 20),
            cm_at(
                &report(failed_listing(2, &["/etc/a", "/etc/b"]), 'a', false, 0),
                30,
            ),
            cm_at(
                &report(failed_listing(2, &["/etc/a", "/etc/b"]), 'a', false, 0),
                40,
            ),
            // Re-initialised (request 1): the same paths changed again are new.
            cm_at(&report(ScanCondition::Succeeded, 'c', true, 1), 50),
            cm_at(&report(failed_listing(1, &["/etc/a"]), 'c', false, 1), 60),
        ],
    );
    assert_eq!(since(&plans[1]), [("/etc/a".into(), 20)]);
    assert_eq!(
        since(&plans[2]),
        [("/etc/a".into(), 20), ("/etc/b".into(), 30)]
    );
    assert_eq!(
        since(&plans[3]),
        [("/etc/a".into(), 20), ("/etc/b".into(), 30)]
    );
    assert!(plans[4].status.spec.last_result.changes.is_empty());
    assert_eq!(since(&plans[5]), [("/etc/a".into(), 60)]);

    let last = &plans[2].status.spec.last_result;
    assert_eq!(last.changes_sha256, format!("{:064x}", 2));
    assert_eq!(last.changes_truncated, 0);
    let kept = plans[2].kept_report.as_ref().unwrap();
    assert_eq!(kept.data.as_ref().unwrap()[names::CHANGES_JSON_KEY], "{}");
    // Same counts, other paths: news.
    let (_, note) = plans[2].event.clone().unwrap();
    assert!(
        note.starts_with("node node-1 has changed! a:2,c:0,r:0 log:openshift-file-integrity/")
            && note.ends_with(" changed: /etc/a, /etc/b"),
        "{note}"
    );
    assert!(
        plans[3].event.is_none(),
        "the same changes again are not news"
    );
}

/// Whatever a node lists, its status stays small: entries beyond the byte budget are counted,
/// not shown.
#[test]
fn a_node_status_stays_small_whatever_the_node_lists() {
    let long = format!("/{}", "x".repeat(1024));
    let paths: Vec<&str> = std::iter::repeat_n(long.as_str(), 50).collect();
    let plans = sequence(&[
        cm_at(&report(ScanCondition::Succeeded, 'a', true, 0), 10),
        cm_at(&report(failed_listing(100_000, &paths), 'a', false, 0), 20),
    ]);
    let st = &plans[1].status;
    let last = &st.spec.last_result;
    assert!(last.changes.len() < 10, "{}", last.changes.len());
    assert_eq!(last.changes_truncated, 100_000 - last.changes.len() as i64);
    let size = serde_json::to_vec(st).unwrap().len();
    assert!(size < 16 * 1024, "{size} bytes");

    let short: Vec<String> = (0..50).map(|i| format!("/etc/many/f{i:04}")).collect();
    let short: Vec<&str> = short.iter().map(String::as_str).collect();
    let plans = sequence(&[
        cm_at(&report(ScanCondition::Succeeded, 'a', true, 0), 10),
        cm_at(&report(failed_listing(1000, &short), 'a', false, 0), 20),
    ]);
    let last = &plans[1].status.spec.last_result;
    assert_eq!((last.changes.len(), last.changes_truncated), (50, 950));
    let (_, note) = plans[1].event.clone().unwrap();
    assert!(
        note.ends_with(" changed: /etc/many/f0000, /etc/many/f0001, /etc/many/f0002, and 997 more"),
        "{note}"
    );
}

fn covered(gaps: &[(i64, Option<i64>, &str)]) -> fio_api::RealtimeCoverage {
    fio_api::RealtimeCoverage {
        state: fio_api::CoverageState::Full,
        reason: String::new(),
        gaps: gaps
            .iter()
            .map(|(from, to, cause)| fio_api::RealtimeGap {
                from: t(*from),
                to: to.map(t),
                cause: (*cause).to_owned(),
            })
            .collect(),
    }
}

/// A restarted daemon's start gap runs from the node's previous result (nothing was watched in
/// between), and keeps that date in the daemon's later results; other gaps are as reported.
#[test]
fn a_restarted_daemons_gap_runs_from_the_previous_result() {
    let start = names::REALTIME_START_GAP;
    let mut first = report(ScanCondition::Succeeded, 'a', false, 0);
    first.realtime = Some(covered(&[(100, Some(101), start)]));
    // The daemon restarts at 300: its first result closes its start gap at 302.
    let mut restarted = first.clone();
    restarted.realtime = Some(covered(&[(300, Some(302), start)]));
    // It overflows later; its next result repeats the start gap as it dates it.
    let mut later = first.clone();
    later.realtime = Some(covered(&[
        (400, Some(405), "the kernel's event queue overflowed"),
        (300, Some(302), start),
    ]));
    let plans = sequence(&[
        cm_at(&first, 102),
        cm_at(&restarted, 302),
        cm_at(&later, 405),
    ]);
    let gaps = |p: &ResultPlan| -> Vec<(i64, Option<i64>)> {
        p.status
            .spec
            .last_result
            .realtime
            .as_ref()
            .unwrap()
            .gaps
            .iter()
            .map(|g| (g.from.0.as_second(), g.to.as_ref().map(|t| t.0.as_second())))
            .collect()
    };
    assert_eq!(
        gaps(&plans[0]),
        [(100, Some(101))],
        "no previous result: as reported"
    );
    assert_eq!(
        gaps(&plans[1]),
        [(102, Some(302))],
        "from the previous result at 102"
    );
    assert_eq!(gaps(&plans[2]), [(400, Some(405)), (102, Some(302))]);
    let new: Vec<&[String]> = plans.iter().map(|p| p.new_gaps.as_slice()).collect();
    assert_eq!(
        new,
        [
            &[start.to_owned()][..],
            &[start.to_owned()][..],
            &["the kernel's event queue overflowed".to_owned()][..]
        ],
        "each gap counted once"
    );
}

/// Expected changes (issue 28): a rotation by the allowed unit is requested for its path only
/// and the node reads Succeeded meanwhile; the node's result completing the request moves the
/// anchor and records the change as accepted; another change keeps the node Failed.
#[test]
fn an_expected_change_is_requested_then_accepted_and_the_anchor_moves() {
    use fio_api::expected::{ExpectedChange, ExpectedWriter};
    let mut fi = fi();
    fi.spec.expected_changes = vec![ExpectedChange {
        name: "kubelet-ca".into(),
        paths: vec!["/etc/fio-test/*.crt".into()],
        writers: vec![ExpectedWriter {
            kind: "unit".into(),
            name: "kubelet.service".into(),
            ..ExpectedWriter::default()
        }],
        attributes: Vec::new(),
    }];
    let rotated = |path: &str, unit: &str| FileChange {
        path: path.into(),
        kind: fio_api::ChangeKind::Changed,
        attributes: vec!["sha512".into()],
        details: vec![fio_api::AttributeChange {
            attribute: "sha512".into(),
            old: "aa".into(),
            new: "bb".into(),
        }],
        since: None,
        found_by: Some(fio_api::FoundBy::Realtime),
        writers: vec![fio_api::Writer {
            state: fio_api::WriterState::Attributed,
            pid: Some(9),
            unit: unit.into(),
            ..fio_api::Writer::default()
        }],
    };
    let failing = |listed: Vec<FileChange>| ScanCondition::Failed {
        counts: FileCounts {
            added: 0,
            changed: listed.len() as u64,
            removed: 0,
        },
        log: Log::Text("AIDE found differences".into()),
        changes: Some(fio_api::result::Changes {
            summary: fio_api::result::ChangeSummary {
                total: listed.len() as u64,
                sha256: "c".repeat(64),
                listed,
            },
            json: Some("{}".into()),
        }),
    };
    let first = plan(
        &cm_at(&report(ScanCondition::Succeeded, 'a', true, 0), 1),
        &fi,
        None,
        NS,
        t(0),
    )
    .unwrap();
    let ca = rotated("/etc/fio-test/ca.crt", "kubelet.service");
    let p = plan(
        &cm_at(&report(failing(vec![ca.clone()]), 'a', false, 0), 10),
        &fi,
        Some(&first.status.spec),
        NS,
        t(0),
    )
    .unwrap();
    assert_eq!(p.status.spec.last_result.condition, Condition::Succeeded);
    assert!(p.kept_report.is_none());
    assert!(p.event.is_none(), "no news: it stays Succeeded");
    let requests = p.accept_requests.clone().expect("a request");
    assert_eq!(requests.for_node("node-1").map(|q| q.id), Some(1));
    let rec = &p.status.spec.accepted_changes[0];
    assert_eq!(
        (rec.path.as_str(), rec.by.as_str(), rec.request),
        ("/etc/fio-test/ca.crt", "rule kubelet-ca", 1)
    );
    assert_eq!(rec.accepted_at, None);

    // The node moved its baseline for it (a new database) and reports so.
    let mut fi = fi.clone();
    fi.annotations_mut().insert(
        names::ACCEPT_REQUESTS_ANNOTATION.into(),
        requests.to_annotation(),
    );
    let mut moved = report(ScanCondition::Succeeded, 'b', false, 0);
    moved.accepted = Some(fio_api::accept::Accepted {
        id: 1,
        paths: vec!["/etc/fio-test/ca.crt".into()],
    });
    let p2 = plan(&cm_at(&moved, 20), &fi, Some(&p.status.spec), NS, t(0)).unwrap();
    assert!(!p2.mismatched);
    assert_eq!(p2.status.spec.last_result.condition, Condition::Succeeded);
    assert_eq!(
        p2.status.spec.baseline.as_ref().map(|b| b.sha256.clone()),
        Some("b".repeat(64))
    );
    assert_eq!(p2.status.spec.accept_id, Some(1));
    assert_eq!(p2.status.spec.accepted_changes[0].accepted_at, Some(t(20)));
    assert_eq!(p2.accepted, vec![("rule kubelet-ca".to_owned(), 1)]);
    assert_eq!(
        p2.accepted_event.as_deref(),
        Some(
            "node node-1: 1 change(s) accepted into the baseline: /etc/fio-test/ca.crt (rule \
             kubelet-ca)"
        )
    );

    // The same write by another unit, beside it: Failed, both listed; only the expected one
    // is requested.
    let other = rotated("/etc/passwd", "sshd.service");
    let mut again = rotated("/etc/fio-test/ca.crt", "kubelet.service");
    again.details[0].old = "bb".into();
    again.details[0].new = "cc".into();
    let p3 = plan(
        &cm_at(&report(failing(vec![again, other]), 'b', false, 0), 30),
        &fi,
        Some(&p2.status.spec),
        NS,
        t(0),
    )
    .unwrap();
    assert_eq!(p3.status.spec.last_result.condition, Condition::Failed);
    assert_eq!(p3.status.spec.last_result.changes.len(), 2);
    assert!(p3.accepted.is_empty() && p3.accepted_event.is_none());
    let q = p3.accept_requests.expect("a second request");
    assert_eq!(
        q.for_node("node-1").map(|r| (r.id, r.paths.len())),
        Some((2, 1))
    );
    // A replayed acceptance (already completed) does not move the anchor again.
    let mut replay = report(ScanCondition::Succeeded, 'c', false, 0);
    replay.accepted = Some(fio_api::accept::Accepted {
        id: 1,
        paths: vec!["/etc/fio-test/ca.crt".into()],
    });
    let p4 = plan(&cm_at(&replay, 40), &fi, Some(&p2.status.spec), NS, t(0)).unwrap();
    assert!(p4.mismatched);
}
