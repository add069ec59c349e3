//! The daemon's decisions, fed with objects as the operator's plan tests are (no cluster, no
//! node): each test follows a scenario through the steps the I/O loop would take.

use super::*;
use fio_api::{names, FileIntegritySpec};

const NODE: &str = "node-1";
const OTHER: &str = "node-2";
const CONF: &str = "/hostroot/etc p+sha512\n";

fn fi() -> FileIntegrity {
    let mut fi = FileIntegrity::new("worker-fileintegrity", FileIntegritySpec::default());
    fi.metadata.namespace = Some("openshift-file-integrity".into());
    fi.metadata.uid = Some("fi-uid".into());
    fi
}

fn annotated(mut fi: FileIntegrity, key: &str, value: &str) -> FileIntegrity {
    fi.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
    fi
}

/// `fi` with the operator's record of re-init requests.
fn with_requests(fi: FileIntegrity, r: &ReinitRequests) -> FileIntegrity {
    annotated(fi, names::REINIT_REQUESTS_ANNOTATION, &r.to_annotation())
}

fn requests_for(config: &str, nodes: &[&str]) -> ReinitRequests {
    let mut r = ReinitRequests {
        config: aideconf::config_hash(config),
        ..ReinitRequests::default()
    };
    r.request(nodes.iter().copied());
    r
}

fn ours(completed: i64) -> Read {
    Read {
        ownership: Ownership::Ours,
        completed,
        accepted: 0,
        config: CONF.into(),
    }
}

fn scan(init: Init, completed: i64) -> Step {
    Step::Scan(Scan { init, completed })
}

#[test]
fn the_first_cycle_reads_then_scans_initialising_only_a_node_without_database() {
    let fi = fi();
    assert_eq!(next(&fi, NODE, None), Step::Read);
    assert_eq!(next(&fi, NODE, Some(&ours(0))), scan(Init::IfMissing, 0));
}

#[test]
fn a_missing_configuration_is_waited_for() {
    let read = Read {
        config: String::new(),
        ..ours(0)
    };
    assert_eq!(next(&fi(), NODE, Some(&read)), Step::AwaitConfig);
}

#[test]
fn a_reinit_runs_exactly_once_and_only_on_the_nodes_requested() {
    let fi = with_requests(fi(), &requests_for(CONF, &[NODE]));
    let reinit = Init::Reinit {
        id: 1,
        take_over: false,
        keep_every_backup: false,
    };
    assert_eq!(next(&fi, NODE, Some(&ours(0))), scan(reinit, 0));
    // The wait after the result ends early for a request not completed yet, not for one done.
    assert!(wakes_early(&fi, NODE, 0, 0));
    assert!(!wakes_early(&fi, NODE, 1, 0));
    // Completed (the id is recorded beside the database): later cycles only scan.
    for _ in 0..3 {
        assert_eq!(next(&fi, NODE, Some(&ours(1))), scan(Init::IfMissing, 1));
    }
    assert_eq!(next(&fi, OTHER, Some(&ours(0))), scan(Init::IfMissing, 0));
    assert!(!wakes_early(&fi, OTHER, 0, 0));

    // A second request gets a new id, and runs once more.
    let mut r = requests_for(CONF, &[NODE]);
    r.request([NODE]);
    let fi = with_requests(fi, &r);
    assert!(wakes_early(&fi, NODE, 1, 0));
    assert_eq!(
        next(&fi, NODE, Some(&ours(1))),
        scan(
            Init::Reinit {
                id: 2,
                take_over: false,
                keep_every_backup: false
            },
            1
        )
    );
}

#[test]
fn a_reinit_the_operator_decided_keeps_every_backup() {
    let mut r = requests_for(CONF, &[]);
    r.request_keeping_backups([NODE]);
    let fi = with_requests(fi(), &r);
    assert_eq!(
        next(&fi, NODE, Some(&ours(0))),
        scan(
            Init::Reinit {
                id: 1,
                take_over: false,
                keep_every_backup: true
            },
            0
        )
    );
}

#[test]
fn a_request_for_a_configuration_not_published_yet_waits_for_it() {
    let fi = with_requests(fi(), &requests_for("/hostroot/etc p\n", &[NODE]));
    assert_eq!(
        next(&fi, NODE, Some(&ours(0))),
        Step::AwaitRequestedConfig { wanted: 1 }
    );
    // Once completed, an old request's configuration no longer matters.
    assert_eq!(next(&fi, NODE, Some(&ours(1))), scan(Init::IfMissing, 1));
    // Nor does it on a node the request does not name.
    assert_eq!(next(&fi, OTHER, Some(&ours(0))), scan(Init::IfMissing, 0));
}

#[test]
fn a_holdoff_pauses_scans_and_reinits_until_lifted() {
    let requested = with_requests(fi(), &requests_for(CONF, &[NODE]));
    for value in ["", NODE, "node-0,node-1"] {
        let held = annotated(requested.clone(), names::HOLDOFF_ANNOTATION, value);
        // Nothing is read while paused, and a pending re-init waits too.
        assert_eq!(next(&held, NODE, None), Step::Pause, "{value:?}");
        assert_eq!(next(&held, NODE, Some(&ours(0))), Step::Pause);
    }
    let other_held = annotated(requested.clone(), names::HOLDOFF_ANNOTATION, OTHER);
    assert_eq!(next(&other_held, NODE, None), Step::Read);
    // The wait between scans ends for a pause of this node (which then names what the update
    // writes), not another's.
    let plain = fi();
    assert!(!wakes_early(&plain, NODE, 0, 0));
    assert!(wakes_early(
        &annotated(plain.clone(), names::HOLDOFF_ANNOTATION, NODE),
        NODE,
        0,
        0
    ));
    assert!(!wakes_early(
        &annotated(plain, names::HOLDOFF_ANNOTATION, OTHER),
        NODE,
        0,
        0
    ));
    // Lifted: the pending re-init runs.
    assert_eq!(next(&requested, NODE, None), Step::Read);
    assert!(matches!(
        next(&requested, NODE, Some(&ours(0))),
        Step::Scan(Scan {
            init: Init::Reinit { id: 1, .. },
            ..
        })
    ));
}

#[test]
fn a_scan_that_a_pause_overlapped_is_discarded_unless_it_took_a_baseline() {
    let held = annotated(fi(), names::HOLDOFF_ANNOTATION, NODE);
    assert!(!keeps_result(Some(&held), NODE, false));
    assert!(keeps_result(Some(&held), NODE, true));
    assert!(keeps_result(Some(&held), OTHER, false));
    assert!(keeps_result(Some(&fi()), NODE, false));
    assert!(keeps_result(None, NODE, false));
}

#[test]
fn files_of_a_deleted_owner_are_taken_over_with_a_reinit_keeping_every_backup() {
    let gone = Read {
        ownership: Ownership::Gone,
        ..ours(0)
    };
    assert_eq!(
        next(&fi(), NODE, Some(&gone)),
        scan(
            Init::Reinit {
                id: 0,
                take_over: true,
                keep_every_backup: true
            },
            0
        )
    );
    // With a request of ours pending, the take-over completes it too.
    let fi = with_requests(fi(), &requests_for(CONF, &[NODE]));
    assert_eq!(
        next(&fi, NODE, Some(&gone)),
        scan(
            Init::Reinit {
                id: 1,
                take_over: true,
                keep_every_backup: true
            },
            0
        )
    );
}

#[test]
fn files_another_file_integrity_holds_give_an_errored_result_and_no_scan() {
    let message = "the daemon files in /etc/kubernetes belong to FileIntegrity ns/other";
    let held = Read {
        ownership: Ownership::Held(message.into()),
        ..ours(0)
    };
    let fi = with_requests(fi(), &requests_for(CONF, &[NODE]));
    let step = next(&fi, NODE, Some(&held));
    assert_eq!(step, Step::Refuse(message.into()));
    let result = refused(&fi, NODE, message.into(), None);
    assert_eq!(result.condition.as_str(), "Errored");
    assert_eq!(
        (result.owner.as_str(), result.node.as_str()),
        ("worker-fileintegrity", NODE)
    );
    assert!(matches!(
        &result.condition,
        fio_api::ScanCondition::Errored { message: m, .. } if m == message
    ));
    assert!(!result.initialized && result.database.is_none());
}

#[test]
fn an_acceptance_runs_once_after_any_reinit() {
    let path = |p: &str| AcceptPath {
        path: p.into(),
        change: "f".repeat(64),
        by: "rule kubelet-ca".into(),
    };
    let mut accept = AcceptRequests::default();
    let id = accept.request(NODE, vec![path("/etc/fio-test/ca.crt")], 0);
    let asked = annotated(
        fi(),
        names::ACCEPT_REQUESTS_ANNOTATION,
        &accept.to_annotation(),
    );
    let moved = Init::Accept {
        id,
        paths: vec![path("/etc/fio-test/ca.crt")],
    };
    assert_eq!(next(&asked, NODE, Some(&ours(0))), scan(moved, 0));
    assert!(wakes_early(&asked, NODE, 0, 0));
    // Completed: only scans, no wake; another node has nothing to accept.
    let done = Read {
        accepted: id,
        ..ours(0)
    };
    assert_eq!(next(&asked, NODE, Some(&done)), scan(Init::IfMissing, 0));
    assert!(!wakes_early(&asked, NODE, 0, id));
    assert_eq!(
        next(&asked, OTHER, Some(&ours(0))),
        scan(Init::IfMissing, 0)
    );

    // A re-init requested as well goes first: the acceptance waits for the next cycle.
    let both = with_requests(asked.clone(), &requests_for(CONF, &[NODE]));
    assert!(matches!(
        next(&both, NODE, Some(&ours(0))),
        Step::Scan(Scan {
            init: Init::Reinit { id: 1, .. },
            ..
        })
    ));
    // A record that does not parse asks nothing.
    let broken = annotated(fi(), names::ACCEPT_REQUESTS_ANNOTATION, "{");
    assert_eq!(
        next(&broken, NODE, Some(&ours(0))),
        scan(Init::IfMissing, 0)
    );
}
