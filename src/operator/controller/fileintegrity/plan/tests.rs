//! The FileIntegrity controller's plan, fed with objects (no cluster).

use super::*;
use crate::controller::fileintegrity::machine_config::NodeUpdate;
use crate::controller::fileintegrity::updates::NodeInfo;
use fio_api::{FileIntegrityNodeStatusFields, FileIntegrityScanResult};
use k8s_openapi::api::apps::v1::DaemonSetStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

static IN_FORCE: Admission = Admission {
    problem: None,
    restored: None,
};

fn ready_ds(desired: i32) -> DaemonSet {
    DaemonSet {
        status: Some(DaemonSetStatus {
            desired_number_scheduled: desired,
            number_available: Some(desired),
            updated_number_scheduled: Some(desired),
            ..DaemonSetStatus::default()
        }),
        ..DaemonSet::default()
    }
}

fn status(
    node: &str,
    condition: FileIntegrityNodeCondition,
    reinit: i64,
) -> FileIntegrityNodeStatus {
    let r = FileIntegrityScanResult {
        error_message: "AIDE error: 18 IO error".into(),
        ..FileIntegrityScanResult::new(Time(Timestamp::now()), condition)
    };
    FileIntegrityNodeStatus::new(
        &format!("fi-{node}"),
        FileIntegrityNodeStatusFields {
            node_name: node.into(),
            results: vec![r.clone()],
            last_result: r,
            reinit_id: Some(reinit),
            accept_id: None,
            accepted_changes: Vec::new(),
            baseline: None,
            result_version: None,
        },
    )
}

#[test]
fn phase_follows_config_daemonset_results_and_reinits() {
    use FileIntegrityNodeCondition::*;
    let nodes: BTreeSet<String> = ["n1", "n2"].map(String::from).into();
    let ok = vec![status("n1", Succeeded, 1), status("n2", Failed, 1)];
    let mut req = ReinitRequests::default();
    req.request(["n1", "n2"]);
    let ds = ready_ds(2);

    let p = |ds: Option<&DaemonSet>, err: Option<&str>, st: &[FileIntegrityNodeStatus], r| {
        phase(ds, err.map(String::from), &nodes, st, r)
    };
    assert_eq!(p(Some(&ds), None, &ok, &req), (Phase::Active, None));
    // The DaemonSet still counts the pod of a deleted third node: not waited for.
    assert_eq!(
        p(Some(&ready_ds(3)), None, &ok, &req),
        (Phase::Active, None)
    );
    assert_eq!(p(None, None, &ok, &req).0, Phase::Pending);
    let (ph, msg) = p(Some(&ds), Some("aide.conf:3: bad"), &ok, &req);
    assert_eq!(
        (ph, msg.as_deref()),
        (Phase::Error, Some("aide.conf:3: bad"))
    );
    let errored = vec![status("n1", Succeeded, 1), status("n2", Errored, 1)];
    let (ph, msg) = p(Some(&ds), None, &errored, &req);
    assert_eq!(ph, Phase::Error);
    assert!(msg.unwrap().starts_with("n2: AIDE error: 18"));
    // A status of a node no longer selected does not count.
    let stale = vec![
        status("n1", Succeeded, 1),
        status("n2", Succeeded, 1),
        status("gone", Errored, 0),
    ];
    assert_eq!(p(Some(&ds), None, &stale, &req).0, Phase::Active);

    let mut again = req.clone();
    again.request(["n2"]);
    let (ph, msg) = p(Some(&ds), None, &ok, &again);
    assert_eq!(
        (ph, msg.as_deref()),
        (Phase::Initializing, Some("re-initialising: n2"))
    );
    let (ph, msg) = p(Some(&ds), None, &ok[..1], &req);
    assert_eq!(ph, Phase::Initializing, "{msg:?}");
    assert_eq!(
        p(Some(&ready_ds(0)), None, &[], &ReinitRequests::default()).0,
        Phase::Initializing
    );
}

// ---- the whole plan, fed with objects ----

const NS: &str = "openshift-file-integrity";

fn fi_at(created: i64) -> FileIntegrity {
    let mut fi = FileIntegrity::new("worker-fileintegrity", Default::default());
    fi.metadata.namespace = Some(NS.into());
    fi.metadata.uid = Some("uid-1".into());
    fi.metadata.resource_version = Some("7".into());
    fi.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
    fi
}

fn two_nodes() -> Nodes {
    ["n1", "n2"]
        .into_iter()
        .map(|n| (n.to_owned(), NodeInfo::default()))
        .collect()
}

fn observe<'a>(
    fi: &'a FileIntegrity,
    nodes: &'a Nodes,
    statuses: &'a [FileIntegrityNodeStatus],
    ds: Option<&'a DaemonSet>,
    deployed: Option<&'a str>,
    wanted: Wanted,
) -> Observed<'a> {
    Observed {
        fi,
        namespace: NS,
        image: "example.invalid/fio:1",
        deployed,
        deployed_labelled: true,
        wanted,
        nodes,
        statuses,
        daemonset: ds,
        priority_class_found: None,
        pools: None,
        max_pause: Duration::from_secs(3600),
        trust_node_annotations: false,
        admission: &IN_FORCE,
        now: Timestamp::from_second(1_000).unwrap(),
    }
}

fn default_config() -> Wanted {
    Wanted::Text(aideconf::DEFAULT_CONFIG.to_owned())
}

#[test]
fn a_config_configmap_without_its_labels_is_written_again() {
    let (fi, nodes) = (fi_at(0), two_nodes());
    let deployed = Some(aideconf::DEFAULT_CONFIG);
    let o = observe(&fi, &nodes, &[], None, deployed, default_config());
    assert!(
        plan(&o).config_map.is_none(),
        "labelled and current: no write"
    );
    let o = Observed {
        deployed_labelled: false,
        ..o
    };
    let cm = plan(&o).config_map.expect("the ConfigMap written again");
    let labels = cm.metadata.labels.expect("labels");
    assert!(labels.contains_key(names::AIDE_CONFIG_LABEL));
    assert_eq!(labels[names::OWNER_LABEL], "worker-fileintegrity");
}

/// An upgrade from upstream: its DaemonSet is taken over at the resourceVersion read;
/// nothing is re-initialised, the configuration stays; the phase follows the roll-out.
#[test]
fn upstreams_daemonset_is_taken_over() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    let (fi, nodes) = (fi_at(0), two_nodes());
    let statuses = [
        status("n1", FileIntegrityNodeCondition::Succeeded, 0),
        status("n2", FileIntegrityNodeCondition::Succeeded, 0),
    ];
    let mut upstream = ready_ds(2);
    upstream.metadata.name = Some("aide-worker-fileintegrity".into());
    upstream.metadata.resource_version = Some("41".into());
    upstream.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some(names::UPSTREAM_FIELD_MANAGER.into()),
        operation: Some("Update".into()),
        ..ManagedFieldsEntry::default()
    }]);
    let deployed = Some(aideconf::DEFAULT_CONFIG);
    let o = observe(
        &fi,
        &nodes,
        &statuses,
        Some(&upstream),
        deployed,
        default_config(),
    );
    let p = plan(&o);
    assert_eq!(p.take_over_daemonset.as_deref(), Some("41"));
    let ours = p.daemonset.expect("ours, to take over with");
    assert!(ours
        .annotations()
        .contains_key(daemonset::SPEC_HASH_ANNOTATION));
    assert!(
        p.config_map.is_none(),
        "upstream's configuration is ours as it is"
    );
    assert!(p.requests.triggers.is_empty(), "nothing re-initialised");
    assert_eq!(
        p.status.and_then(|s| s.phase),
        Some(Phase::Initializing),
        "rolling out"
    );

    // Ours, applied and with our hash: nothing more to write.
    let mut taken = ours.clone();
    taken.status = upstream.status.clone();
    taken.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some(crate::controller::context::MANAGER.into()),
        operation: Some("Apply".into()),
        ..ManagedFieldsEntry::default()
    }]);
    let p = plan(&observe(
        &fi,
        &nodes,
        &statuses,
        Some(&taken),
        deployed,
        default_config(),
    ));
    assert_eq!(p.take_over_daemonset, None);
    assert!(p.daemonset.is_none());
}

#[test]
fn a_new_fileintegrity_gets_its_config_requests_and_daemonset() {
    let (fi, nodes) = (fi_at(0), two_nodes());
    let p = plan(&observe(&fi, &nodes, &[], None, None, default_config()));
    let cm = p.config_map.expect("config ConfigMap");
    assert_eq!(cm.metadata.name.as_deref(), Some("worker-fileintegrity"));
    assert_eq!(
        cm.data.unwrap()[names::DEFAULT_CONFIG_DATA_KEY],
        aideconf::DEFAULT_CONFIG
    );
    let patch = p.requests.patch.expect("requests recorded");
    assert_eq!(patch["metadata"]["resourceVersion"], "7");
    let recorded = patch["metadata"]["annotations"][names::REINIT_REQUESTS_ANNOTATION]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(recorded.contains(&aideconf::config_hash(aideconf::DEFAULT_CONFIG)));
    let ds = p.daemonset.expect("DaemonSet");
    assert_eq!(
        ds.metadata.name.as_deref(),
        Some("aide-worker-fileintegrity")
    );
    assert!(ds
        .annotations()
        .contains_key(daemonset::SPEC_HASH_ANNOTATION));
    let st = p.status.expect("status");
    assert_eq!(
        (st.phase, st.message),
        (
            Some(Phase::Initializing),
            Some("the scan DaemonSet is rolling out".into())
        )
    );
    assert_eq!(
        st.reinit_requests.map(|r| r.to_annotation()),
        Some(recorded)
    );
    assert_eq!(p.events.last().unwrap().note, "Initializing");
}

#[test]
fn a_steady_fileintegrity_writes_nothing() {
    let (fi0, nodes) = (fi_at(0), two_nodes());
    let first = plan(&observe(&fi0, &nodes, &[], None, None, default_config()));
    // The cluster after the first plan was applied and both nodes reported.
    let mut fi = fi0.clone();
    let patch = first.requests.patch.unwrap();
    let rec = patch["metadata"]["annotations"][names::REINIT_REQUESTS_ANNOTATION].clone();
    fi.annotations_mut().insert(
        names::REINIT_REQUESTS_ANNOTATION.into(),
        rec.as_str().unwrap().into(),
    );
    fi.status = Some(FileIntegrityStatus {
        phase: Some(Phase::Active),
        message: None,
        reinit_requests: Some(serde_json::from_str(rec.as_str().unwrap()).unwrap()),
        node_pauses: BTreeMap::new(),
    });
    let mut ds = first.daemonset.unwrap();
    ds.status = ready_ds(2).status;
    let statuses = vec![
        status("n1", FileIntegrityNodeCondition::Succeeded, 0),
        status("n2", FileIntegrityNodeCondition::Succeeded, 0),
    ];
    let p = plan(&observe(
        &fi,
        &nodes,
        &statuses,
        Some(&ds),
        Some(aideconf::DEFAULT_CONFIG),
        default_config(),
    ));
    assert!(p.config_map.is_none() && p.requests.patch.is_none() && p.daemonset.is_none());
    assert!(p.stale_statuses.is_empty() && p.status.is_none() && p.events.is_empty());
    assert_eq!(p.requeue, RESYNC);
}

#[test]
fn reinit_of_unknown_nodes_is_ignored_visibly() {
    let (mut fi, nodes) = (fi_at(0), two_nodes());
    fi.annotations_mut()
        .insert(names::REINIT_ANNOTATION.into(), "n2,nosuch".into());
    let p = plan(&observe(&fi, &nodes, &[], None, None, default_config()));
    let ann = &p.requests.patch.unwrap()["metadata"]["annotations"];
    assert!(
        ann[names::REINIT_ANNOTATION].is_null(),
        "the user's annotation is removed"
    );
    let rec: ReinitRequests =
        serde_json::from_str(ann[names::REINIT_REQUESTS_ANNOTATION].as_str().unwrap()).unwrap();
    assert_eq!((rec.requested("n1"), rec.requested("n2")), (0, 1));
    assert_eq!(p.requests.triggers, vec![ReinitBy::Demand]);
    let ignored = p
        .events
        .iter()
        .find(|e| e.reason == "ReinitIgnored")
        .unwrap();
    assert!(
        ignored.warning && ignored.note.ends_with("ignored: nosuch"),
        "{ignored:?}"
    );
}

#[test]
fn an_invalid_config_is_not_rolled_out_and_names_its_line() {
    let (mut fi, nodes) = (fi_at(0), two_nodes());
    fi.spec.config.name = "mine".into();
    fi.spec.config.namespace = NS.into();
    let bad = Wanted::Text("/hostroot/etc UNDEFINED_GROUP\n".into());
    let p = plan(&observe(
        &fi,
        &nodes,
        &[],
        None,
        Some(aideconf::DEFAULT_CONFIG),
        bad,
    ));
    assert!(
        p.config_map.is_none(),
        "the deployed config stays: {:?}",
        p.status
    );
    let st = p.status.unwrap();
    assert_eq!(st.phase, Some(Phase::Error));
    let message = st.message.unwrap();
    assert!(
        message.starts_with(&format!(
            "invalid AIDE configuration in ConfigMap {NS}/mine key aide.conf: aide.conf:1:"
        )),
        "{message}"
    );
    assert_eq!(p.phase_changed, Some((Phase::Error, "InvalidConfig")));
}

/// `spec.platformRules` with writers not named would monitor the platform's files with
/// nothing to accept their rotations: the Error phase says what is missing.
#[test]
fn platform_rules_need_writers_named() {
    let (mut fi, nodes) = (fi_at(0), two_nodes());
    fi.spec.platform_rules = true;
    fi.spec.realtime = Some(fio_api::RealtimeSpec {
        enabled: Some(true),
        attribution: Some(false),
    });
    let p = plan(&observe(&fi, &nodes, &[], None, None, default_config()));
    let st = p.status.unwrap();
    assert_eq!(st.phase, Some(Phase::Error));
    assert_eq!(
        st.message.as_deref(),
        Some("platformRules: needs writers named (spec.realtime enabled, attribution on)")
    );
    fi.spec.realtime = None;
    let p = plan(&observe(&fi, &nodes, &[], None, None, default_config()));
    assert_ne!(p.status.and_then(|s| s.phase), Some(Phase::Error));
}

#[test]
fn a_bad_expected_change_rule_is_the_error_phase_naming_it() {
    let (mut fi, nodes) = (fi_at(0), two_nodes());
    fi.spec.expected_changes = vec![fio_api::expected::ExpectedChange {
        name: "kubelet-ca".into(),
        paths: vec!["/etc/fio-test/*.crt".into()],
        writers: vec![fio_api::expected::ExpectedWriter {
            kind: "daemon".into(),
            name: "kubelet.service".into(),
            ..Default::default()
        }],
        attributes: Vec::new(),
    }];
    let p = plan(&observe(&fi, &nodes, &[], None, None, default_config()));
    let st = p.status.unwrap();
    assert_eq!(st.phase, Some(Phase::Error));
    assert_eq!(
        st.message.as_deref(),
        Some(
            "invalid expected changes: expectedChanges[kubelet-ca].writers[0].kind: unknown \
             writer kind \"daemon\" (unit, pod or machineConfigDaemon)"
        )
    );
    assert_eq!(
        p.phase_changed,
        Some((Phase::Error, "InvalidExpectedChanges"))
    );
    assert!(p.daemonset.is_some(), "scans go on");

    // Fixed: no error.
    fi.spec.expected_changes[0].writers[0].kind = "unit".into();
    let p = plan(&observe(&fi, &nodes, &[], None, None, default_config()));
    assert_ne!(p.status.and_then(|s| s.phase), Some(Phase::Error));
}

#[test]
fn an_administrator_accepts_listed_paths_under_their_name() {
    use fio_api::accept::AcceptRequests;
    let (mut fi, nodes) = (fi_at(0), two_nodes());
    let mut failed = status("n2", FileIntegrityNodeCondition::Failed, 0);
    let change = |path: &str| fio_api::FileChange {
        path: path.into(),
        kind: fio_api::ChangeKind::Changed,
        attributes: vec!["sha512".into()],
        details: Vec::new(),
        since: None,
        found_by: None,
        writers: Vec::new(),
    };
    failed.spec.last_result.changes = vec![change("/etc/a"), change("/etc/b")];
    failed.spec.accept_id = Some(4);
    let statuses = [status("n1", FileIntegrityNodeCondition::Failed, 0), failed];
    let ann = fi.annotations_mut();
    ann.insert(
        names::ACCEPT_ANNOTATION.into(),
        r#"{"n2": ["/etc/a", "/etc/nosuch"], "n1": ["*"], "gone": ["/x"]}"#.into(),
    );
    ann.insert(names::ACCEPT_BY_ANNOTATION.into(), "alice".into());
    let p = plan(&observe(
        &fi,
        &nodes,
        &statuses,
        None,
        None,
        default_config(),
    ));
    let ann = &p.requests.patch.expect("a write")["metadata"]["annotations"];
    assert!(ann[names::ACCEPT_ANNOTATION].is_null() && ann[names::ACCEPT_BY_ANNOTATION].is_null());
    let asked: AcceptRequests =
        serde_json::from_str(ann[names::ACCEPT_REQUESTS_ANNOTATION].as_str().unwrap()).unwrap();
    let n2 = asked.for_node("n2").expect("n2 asked");
    assert_eq!(
        n2.paths
            .iter()
            .map(|p| (p.path.as_str(), p.by.as_str(), p.change.clone()))
            .collect::<Vec<_>>(),
        [(
            "/etc/a",
            "administrator alice",
            fio_api::accept::fingerprint(&change("/etc/a"))
        )],
        "only the path named, with the change listed"
    );
    assert!(
        asked.for_node("n1").is_none(),
        "n1 lists no change: nothing to ask"
    );
    let notes: Vec<&str> = p
        .events
        .iter()
        .filter(|e| e.reason == names::EVENT_REASON_ACCEPT_IGNORED)
        .map(|e| e.note.as_str())
        .collect();
    assert_eq!(
        notes,
        [
            "acceptance on worker-fileintegrity: node gone: not scanned by worker-fileintegrity",
            "acceptance on worker-fileintegrity: node n1: its status lists no change",
            "acceptance on worker-fileintegrity: node n2: /etc/nosuch is not a change its status \
             lists",
        ]
    );

    // Without the name of who asks (the admission policy not in force): nothing asked, said.
    fi.annotations_mut().remove(names::ACCEPT_BY_ANNOTATION);
    let p = plan(&observe(
        &fi,
        &nodes,
        &statuses,
        None,
        None,
        default_config(),
    ));
    let ann = &p.requests.patch.expect("the annotation removed")["metadata"]["annotations"];
    assert!(ann[names::ACCEPT_REQUESTS_ANNOTATION].is_null());
    assert!(p
        .events
        .iter()
        .any(|e| e.reason == names::EVENT_REASON_ACCEPT_IGNORED
            && e.note.contains("names no requesting user")));
}

#[test]
fn the_initial_delay_holds_the_daemonset_back_for_the_rest_of_it() {
    let (mut fi, nodes) = (fi_at(900), two_nodes());
    fi.spec.config.initial_delay = 200;
    let mut o = observe(&fi, &nodes, &[], None, None, default_config());
    o.now = Timestamp::from_second(1_000).unwrap();
    let p = plan(&o);
    assert!(p.daemonset.is_none());
    assert_eq!(p.requeue, Duration::from_secs(100));
    let st = p.status.unwrap();
    assert_eq!(
        (st.phase, st.message),
        (
            Some(Phase::Pending),
            Some("waiting for initialDelay".into())
        )
    );
    // A missing priority class is reported and left out of the pods.
    fi.spec.config.initial_delay = 0;
    fi.spec.priority_class_name = "nosuch".into();
    let mut o = observe(&fi, &nodes, &[], None, None, default_config());
    o.priority_class_found = Some(false);
    let p = plan(&o);
    let pod = p.daemonset.unwrap().spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.priority_class_name, None);
    assert!(p
        .events
        .iter()
        .any(|e| e.reason == names::EVENT_REASON_PRIORITY_CLASS));
}

/// `kubectl replace` with an old manifest wipes the annotations; the status copy keeps the
/// record: no config re-init, the annotation is restored, and the next request gets an id
/// above every id handed out before (a node that completed id 3 re-initialises for 4).
#[test]
fn a_replaced_fileintegrity_keeps_its_reinit_record() {
    let (mut fi, nodes) = (fi_at(0), two_nodes());
    let mut before = ReinitRequests {
        config: aideconf::config_hash(aideconf::DEFAULT_CONFIG),
        ..Default::default()
    };
    for _ in 0..3 {
        before.request(["n1", "n2"]);
    }
    fi.status = Some(FileIntegrityStatus {
        phase: Some(Phase::Active),
        message: None,
        reinit_requests: Some(before.clone()),
        node_pauses: BTreeMap::new(),
    });
    let o = |fi: &FileIntegrity| -> Plan {
        plan(&observe(
            fi,
            &nodes,
            &[],
            None,
            Some(aideconf::DEFAULT_CONFIG),
            default_config(),
        ))
    };
    let p = o(&fi);
    let ann = &p.requests.patch.expect("the annotation restored")["metadata"]["annotations"];
    let restored: ReinitRequests =
        serde_json::from_str(ann[names::REINIT_REQUESTS_ANNOTATION].as_str().unwrap()).unwrap();
    assert_eq!(restored, before);
    assert!(p.requests.triggers.is_empty(), "{:?}", p.requests.triggers);

    fi.annotations_mut()
        .insert(names::REINIT_ANNOTATION.into(), "n2".into());
    let p = o(&fi);
    let ann = &p.requests.patch.unwrap()["metadata"]["annotations"];
    let after: ReinitRequests =
        serde_json::from_str(ann[names::REINIT_REQUESTS_ANNOTATION].as_str().unwrap()).unwrap();
    assert_eq!((after.requested("n1"), after.requested("n2")), (3, 4));
    assert_eq!(
        p.status.and_then(|s| s.reinit_requests),
        Some(after),
        "the status copy follows"
    );
}

#[test]
fn statuses_of_deleted_nodes_are_removed() {
    let (fi, mut nodes) = (fi_at(0), two_nodes());
    let statuses = vec![status("n1", FileIntegrityNodeCondition::Succeeded, 0)];
    nodes.remove("n1");
    let p = plan(&observe(
        &fi,
        &nodes,
        &statuses,
        None,
        None,
        default_config(),
    ));
    assert_eq!(p.stale_statuses, vec!["fi-n1".to_owned()]);
    // Its result ConfigMap goes too (the daemons may no longer update it), and its kept
    // history of accepted changes.
    assert_eq!(
        p.stale_results,
        vec![
            "aide-worker-fileintegrity-n1".to_owned(),
            "aide-worker-fileintegrity-n1-accepted".to_owned()
        ]
    );
    assert_eq!(p.selected, BTreeSet::from(["n2".to_owned()]));
}

/// Issue 22: a node relabelled out of the selection keeps no stale `Succeeded`: its status
/// is marked Errored "no longer selected" once (a Warning Event), and stays so.
#[test]
fn a_node_no_longer_selected_is_marked_once() {
    let mut fi = fi_at(0);
    fi.spec.node_selector = BTreeMap::from([("role".to_owned(), "worker".to_owned())]);
    let worker = NodeInfo {
        labels: BTreeMap::from([("role".to_owned(), "worker".to_owned())]),
        ..NodeInfo::default()
    };
    let nodes: Nodes = [
        ("n1".to_owned(), NodeInfo::default()),
        ("n2".to_owned(), worker),
    ]
    .into_iter()
    .collect();
    let statuses = vec![
        status("n1", FileIntegrityNodeCondition::Succeeded, 0),
        status("n2", FileIntegrityNodeCondition::Succeeded, 0),
    ];
    // (the statuses' results are from now)
    fn later(o: Observed<'_>) -> Observed<'_> {
        Observed {
            now: Timestamp::now(),
            ..o
        }
    }
    let p = plan(&later(observe(
        &fi,
        &nodes,
        &statuses,
        None,
        None,
        default_config(),
    )));
    assert_eq!(p.silent.len(), 1, "{:?}", p.silent);
    let last = &p.silent[0].spec.last_result;
    assert_eq!(p.silent[0].spec.node_name, "n1");
    assert_eq!(last.condition, FileIntegrityNodeCondition::Errored);
    assert!(
        last.error_message.starts_with("no longer selected"),
        "{}",
        last.error_message
    );
    assert!(p
        .events
        .iter()
        .any(|e| e.warning && e.note.contains("node n1") && e.note.contains("no longer selected")));
    // Once marked, nothing more; and the node's status is not deleted (the node exists).
    let marked = vec![p.silent[0].clone(), statuses[1].clone()];
    let again = plan(&later(observe(
        &fi,
        &nodes,
        &marked,
        None,
        None,
        default_config(),
    )));
    assert!(again.silent.is_empty() && again.stale_statuses.is_empty());
}

/// The end of a confirmed node update: no re-init, a window for the node's next check (issue
/// 28).
#[test]
fn a_confirmed_node_update_opens_a_window_not_a_reinit() {
    use super::super::machine_config::{MC_CURRENT_CONFIG, MC_DESIRED_CONFIG, MC_STATE};
    let mut fi = fi_at(0);
    fi.annotations_mut()
        .insert(names::HOLDOFF_ANNOTATION.into(), "n1".into());
    let mut status = FileIntegrityStatus::default();
    status.node_pauses.insert(
        "n1".into(),
        NodePause {
            since: Time(Timestamp::from_second(900).unwrap()),
            from_config: Some("r1".into()),
            pool_rolled_out: Some("r1".into()),
            overdue: false,
        },
    );
    fi.status = Some(status);
    let labels = BTreeMap::from([("role".to_owned(), "worker".to_owned())]);
    let done = BTreeMap::from([
        (MC_CURRENT_CONFIG.to_owned(), "r2".to_owned()),
        (MC_DESIRED_CONFIG.to_owned(), "r2".to_owned()),
        (MC_STATE.to_owned(), "Done".to_owned()),
    ]);
    let nodes: Nodes = [(
        "n1".to_owned(),
        NodeInfo {
            labels,
            update: NodeUpdate::of(&done),
            current_config: Some("r2".into()),
        },
    )]
    .into();
    let pools = [Pool::from_json(&json!({
        "metadata": {"name": "worker"},
        "spec": {"nodeSelector": {"matchLabels": {"role": "worker"}},
                 "configuration": {"name": "r2"}},
        "status": {"configuration": {"name": "r1"}}
    }))];
    let o = Observed {
        pools: Some(&pools),
        ..observe(&fi, &nodes, &[], None, None, default_config())
    };
    let p = plan(&o);
    assert_eq!(p.requests.resumed, ["n1"]);
    let patch = p.requests.patch.expect("the window recorded");
    let text = patch["metadata"]["annotations"][names::REINIT_REQUESTS_ANNOTATION]
        .as_str()
        .expect("the record")
        .to_owned();
    let r: ReinitRequests = serde_json::from_str(&text).expect("parses");
    assert_eq!(r.requested("n1"), 0, "no re-init: {text}");
    let text = patch["metadata"]["annotations"][names::ACCEPT_REQUESTS_ANNOTATION]
        .as_str()
        .expect("the acceptance record")
        .to_owned();
    let a: fio_api::accept::AcceptRequests = serde_json::from_str(&text).expect("parses");
    let w = &a.windows["n1"];
    assert_eq!(w.by, "node update r1 -> r2");
    assert_eq!(w.from, Time(Timestamp::from_second(900).unwrap()));
    assert!(w.to.0 >= w.from.0);
    assert!(!w.listed_all_before, "no status read: not known");
}
