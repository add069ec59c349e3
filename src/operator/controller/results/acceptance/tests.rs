use super::*;
use fio_api::expected::{ExpectedChange, ExpectedWriter};
use fio_api::{
    AttributeChange, ChangeKind, FileChange, FileIntegritySpec, FoundBy, Writer, WriterState,
};

fn t(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
}

fn fi_with_rule() -> FileIntegrity {
    let mut fi = FileIntegrity::new("fi", FileIntegritySpec::default());
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
    fi
}

fn change(path: &str, unit: &str) -> FileChange {
    FileChange {
        path: path.into(),
        kind: ChangeKind::Changed,
        attributes: vec!["sha512".into()],
        details: vec![AttributeChange {
            attribute: "sha512".into(),
            old: "aa".into(),
            new: "bb".into(),
        }],
        since: None,
        found_by: Some(FoundBy::Realtime),
        writers: vec![Writer {
            state: WriterState::Attributed,
            pid: Some(7),
            unit: unit.into(),
            ..Writer::default()
        }],
    }
}

fn failed(changes: Vec<FileChange>) -> FileIntegrityScanResult {
    let mut r = FileIntegrityScanResult::new(t(100), Condition::Failed);
    r.files_changed = changes.len() as i64;
    r.changes = changes;
    r
}

#[test]
fn a_rotation_by_the_allowed_unit_is_requested_and_reads_succeeded() {
    let fi = fi_with_rule();
    let r = failed(vec![change("/etc/fio-test/ca.crt", "kubelet.service")]);
    let a = expected(&fi, "n1", 0, &r, &Pods::new(), &t(100)).expect("expected");
    assert!(a.all);
    let requests = a.requests.expect("a new request");
    let q = requests.for_node("n1").expect("for n1");
    assert_eq!(q.id, 1);
    assert_eq!(q.paths[0].path, "/etc/fio-test/ca.crt");
    assert_eq!(q.paths[0].by, "rule kubelet-ca");
    assert_eq!(q.paths[0].change, fingerprint(&r.changes[0]));
    assert_eq!(a.records[0].request, 1);
    assert_eq!(a.records[0].writers[0].unit, "kubelet.service");

    // The same result again (the node reports before acting): the same request, no write.
    let mut fi2 = fi.clone();
    kube::ResourceExt::annotations_mut(&mut fi2).insert(
        fio_api::names::ACCEPT_REQUESTS_ANNOTATION.into(),
        requests.to_annotation(),
    );
    let again = expected(&fi2, "n1", 0, &r, &Pods::new(), &t(101)).unwrap();
    assert_eq!(again.requests, None);
    assert_eq!(again.records[0].request, 1);
}

#[test]
fn another_change_beside_it_keeps_the_node_failed() {
    let fi = fi_with_rule();
    let r = failed(vec![
        change("/etc/fio-test/ca.crt", "kubelet.service"),
        change("/etc/passwd", "kubelet.service"),
    ]);
    let a = expected(&fi, "n1", 0, &r, &Pods::new(), &t(100)).unwrap();
    assert!(!a.all, "/etc/passwd is no rule's");
    assert_eq!(a.records.len(), 1);
    // The same write by another unit: nothing expected.
    let r = failed(vec![change("/etc/fio-test/ca.crt", "sshd.service")]);
    assert_eq!(expected(&fi, "n1", 0, &r, &Pods::new(), &t(100)), None);
    // Counted changes beyond the listed ones: not all.
    let mut r = failed(vec![change("/etc/fio-test/ca.crt", "kubelet.service")]);
    r.files_added = 1;
    assert!(
        !expected(&fi, "n1", 0, &r, &Pods::new(), &t(100))
            .unwrap()
            .all
    );
    // No rules, or rules that do not compile: nothing.
    let mut bad = fi_with_rule();
    bad.spec.expected_changes[0].writers[0].kind = "daemon".into();
    let r = failed(vec![change("/etc/fio-test/ca.crt", "kubelet.service")]);
    assert_eq!(expected(&bad, "n1", 0, &r, &Pods::new(), &t(100)), None);
}

#[test]
fn the_completed_request_marks_what_moved_and_drops_the_rest() {
    let fi = fi_with_rule();
    let r = failed(vec![
        change("/etc/fio-test/a.crt", "kubelet.service"),
        change("/etc/fio-test/b.crt", "kubelet.service"),
    ]);
    let a = expected(&fi, "n1", 0, &r, &Pods::new(), &t(100)).unwrap();
    let pending = records(&[], a.records, None, None, &[], &t(100)).0;
    assert_eq!(pending.len(), 2);
    // The node moved a.crt only (b.crt was written again meanwhile).
    let done = Accepted {
        id: 1,
        paths: vec!["/etc/fio-test/a.crt".into()],
    };
    let after = records(&pending, Vec::new(), Some(&done), None, &[], &t(110)).0;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].path, "/etc/fio-test/a.crt");
    assert_eq!(after[0].accepted_at, Some(t(110)));
    // Bounded, newest first.
    let mut many = after.clone();
    for i in 0..30 {
        let mut r = after[0].clone();
        r.path = format!("/etc/fio-test/{i}.crt");
        many = records(&many, vec![r], None, None, &[], &t(120)).0;
    }
    assert_eq!(many.len(), MAX_ACCEPTED);
    assert_eq!(many[0].path, "/etc/fio-test/29.crt");
}

#[test]
fn a_pod_writer_is_expected_only_as_the_pod_the_operator_read() {
    let mut fi = fi_with_rule();
    fi.spec.expected_changes[0].writers = vec![ExpectedWriter {
        kind: "pod".into(),
        namespace: "certs".into(),
        selector: Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                match_labels: Some(BTreeMap::from([("app".into(), "rotator".into())])),
                match_expressions: None,
            },
        ),
        ..ExpectedWriter::default()
    }];
    let mut c = change("/etc/fio-test/ca.crt", "");
    c.writers[0].pod = Some(WriterPod {
        namespace: "certs".into(),
        name: "rotator-1".into(),
        uid: "u1".into(),
        ..WriterPod::default()
    });
    let r = failed(vec![c]);
    let labelled = |app: &str, uid: &str| {
        Pods::from([(
            ("certs".to_owned(), "rotator-1".to_owned()),
            (uid.to_owned(), BTreeMap::from([("app".into(), app.into())])),
        )])
    };
    let read = labelled("rotator", "u1");
    let a = expected(&fi, "n1", 0, &r, &read, &t(100)).expect("the pod read, labels matching");
    assert!(a.all);
    assert_eq!(a.records[0].by, "rule kubelet-ca");
    for (pods, why) in [
        (Pods::new(), "the pod not read (gone, or on another node)"),
        (labelled("rotator", "u2"), "another pod under that name"),
        (
            labelled("other", "u1"),
            "labels the selector does not match",
        ),
    ] {
        assert_eq!(expected(&fi, "n1", 0, &r, &pods, &t(100)), None, "{why}");
    }
}

#[test]
fn pods_are_read_only_for_rules_that_allow_pod_writers() {
    use fio_api::result::{ChangeSummary, Changes, FileCounts, Log};
    let mut c = change("/etc/fio-test/ca.crt", "");
    c.writers[0].pod = Some(WriterPod {
        namespace: "certs".into(),
        name: "rotator-1".into(),
        uid: "u1".into(),
        ..WriterPod::default()
    });
    let report = ScanReport {
        owner: "fi".into(),
        node: "n1".into(),
        condition: ScanCondition::Failed {
            counts: FileCounts {
                added: 0,
                changed: 2,
                removed: 0,
            },
            log: Log::Text("AIDE found differences".into()),
            changes: Some(Changes {
                summary: ChangeSummary {
                    total: 2,
                    sha256: "c".repeat(64),
                    listed: vec![c.clone(), c],
                },
                json: None,
            }),
        },
        reinit_id: Some(0),
        database: None,
        initialized: false,
        figures: None,
        superseded: 0,
        view: None,
        realtime: None,
        accepted: None,
    };
    let cm = report.to_config_map("ns", "fi-uid");
    assert!(
        writer_pods(&fi_with_rule(), "n1", &cm).is_empty(),
        "unit rules only"
    );
    let mut fi = fi_with_rule();
    fi.spec.expected_changes[0].writers[0] = ExpectedWriter {
        kind: "machineConfigDaemon".into(),
        ..ExpectedWriter::default()
    };
    assert_eq!(
        writer_pods(&fi, "n1", &cm),
        vec![("certs".to_owned(), "rotator-1".to_owned())],
        "named once"
    );
}

#[test]
fn an_administrators_paths_are_recorded_when_the_node_moved_them() {
    let listed = vec![
        change("/etc/a", "sshd.service"),
        change("/etc/b", "sshd.service"),
    ];
    let asked = AcceptRequest {
        id: 5,
        paths: vec![AcceptPath {
            path: "/etc/a".into(),
            change: fingerprint(&listed[0]),
            by: "administrator alice".into(),
        }],
    };
    let done = Accepted {
        id: 5,
        paths: vec!["/etc/a".into()],
    };
    let r = records(&[], Vec::new(), Some(&done), Some(&asked), &listed, &t(200)).0;
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].path.as_str(), r[0].by.as_str(), r[0].request),
        ("/etc/a", "administrator alice", 5)
    );
    assert_eq!(r[0].accepted_at, Some(t(200)));
    assert_eq!(r[0].writers, listed[0].writers, "as the status listed it");
    // A path the node says it moved that nobody asked for, or a completion of another
    // request: no record.
    let unasked = Accepted {
        id: 5,
        paths: vec!["/etc/b".into()],
    };
    assert!(records(
        &[],
        Vec::new(),
        Some(&unasked),
        Some(&asked),
        &listed,
        &t(200)
    )
    .0
    .is_empty());
    let other = Accepted {
        id: 4,
        paths: vec!["/etc/a".into()],
    };
    assert!(records(
        &[],
        Vec::new(),
        Some(&other),
        Some(&asked),
        &listed,
        &t(200)
    )
    .0
    .is_empty());
}

#[test]
fn a_node_status_shows_the_newest_records_that_fit() {
    let fi = fi_with_rule();
    let r = failed(vec![change("/etc/fio-test/ca.crt", "kubelet.service")]);
    let one = expected(&fi, "n1", 0, &r, &Pods::new(), &t(100))
        .unwrap()
        .records
        .remove(0);
    let many: Vec<AcceptedChange> = (0..MAX_ACCEPTED as i64)
        .map(|i| AcceptedChange {
            request: i,
            ..one.clone()
        })
        .collect();
    let shown = shown(many.clone());
    let bytes = serde_json::to_vec(&shown).unwrap().len();
    assert!(bytes <= ACCEPTED_BUDGET, "{bytes} bytes");
    assert!(
        shown.len() > 1 && shown.len() < many.len(),
        "{}",
        shown.len()
    );
    assert_eq!(shown[..], many[..shown.len()], "the newest first");
}

/// A confirmed node update (window 50..=60): its first check after it (t(100)) gets the
/// machine-config daemon's changes and unnamed ones accepted as `node update r1 -> r2`, not
/// another writer's, nor a change listed before the update; the window then closes.
#[test]
fn a_node_updates_window_accepts_its_own_changes_once() {
    use fio_api::accept::UpdateWindow;
    use fio_api::expected::{MACHINE_CONFIG_DAEMON_LABEL, MACHINE_CONFIG_DAEMON_NAMESPACE};
    let window = |listed_all_before| UpdateWindow {
        from: t(50),
        to: t(60),
        by: "node update r1 -> r2".into(),
        listed_all_before,
    };
    let fi_with = |w: UpdateWindow| {
        let mut fi = FileIntegrity::new("fi", FileIntegritySpec::default());
        let mut r = AcceptRequests::default();
        r.windows.insert("n1".into(), w);
        kube::ResourceExt::annotations_mut(&mut fi).insert(
            fio_api::names::ACCEPT_REQUESTS_ANNOTATION.into(),
            r.to_annotation(),
        );
        fi
    };
    let since = |mut c: FileChange, at: i64| {
        c.since = Some(t(at));
        c
    };
    let by_mcd = {
        let mut c = change("/etc/mco/a.conf", "");
        c.writers[0].pod = Some(WriterPod {
            namespace: MACHINE_CONFIG_DAEMON_NAMESPACE.into(),
            name: "machine-config-daemon-x".into(),
            uid: "m1".into(),
            ..WriterPod::default()
        });
        since(c, 100)
    };
    let unnamed = {
        let mut c = change("/etc/mco/b.conf", "");
        c.writers.clear();
        c.found_by = Some(FoundBy::Scan);
        c.kind = ChangeKind::Added;
        since(c, 100)
    };
    let by_shell = since(change("/etc/mco/c.conf", "sshd.service"), 100);
    let before = {
        let mut c = change("/etc/old", "");
        c.writers.clear();
        since(c, 10)
    };
    let (k, v) = MACHINE_CONFIG_DAEMON_LABEL;
    let pods = Pods::from([(
        (
            MACHINE_CONFIG_DAEMON_NAMESPACE.to_owned(),
            "machine-config-daemon-x".to_owned(),
        ),
        ("m1".to_owned(), BTreeMap::from([(k.into(), v.into())])),
    )]);
    let r = failed(vec![by_mcd.clone(), unnamed.clone()]);
    let fi = fi_with(window(true));
    let a = expected(&fi, "n1", 0, &r, &pods, &t(100)).expect("accepted");
    assert!(a.all, "every change the update's");
    let by: Vec<_> = a.records.iter().map(|r| r.by.as_str()).collect();
    assert_eq!(
        by,
        [
            "node update r1 -> r2",
            "node update r1 -> r2 (writer not named)"
        ]
    );
    let requests = a.requests.expect("written");
    assert!(requests.windows.is_empty(), "closed by this check");
    assert_eq!(requests.for_node("n1").map(|q| q.paths.len()), Some(2));

    // Another named writer, or a change listed before the update: the node stays Failed.
    let r = failed(vec![
        by_mcd.clone(),
        unnamed.clone(),
        by_shell.clone(),
        before.clone(),
    ]);
    let a = expected(&fi, "n1", 0, &r, &pods, &t(100)).unwrap();
    assert!(!a.all);
    let paths: Vec<_> = a.records.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/etc/mco/a.conf", "/etc/mco/b.conf"]);
    // The machine-config daemon's name without its pod read (another node's, or made up).
    let a = expected(&fi, "n1", 0, &r, &Pods::new(), &t(100)).unwrap();
    let paths: Vec<_> = a.records.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/etc/mco/b.conf"]);
    // The node's check before the update did not list everything: only the daemon's.
    let a = expected(&fi_with(window(false)), "n1", 0, &r, &pods, &t(100)).unwrap();
    let paths: Vec<_> = a.records.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/etc/mco/a.conf"]);
    // A result from before the window's end judges nothing and keeps it open.
    assert_eq!(expected(&fi, "n1", 0, &r, &pods, &t(59)), None);
    // The first check more than an hour after the confirmation closes it, accepting nothing.
    let late = t(60 + WINDOW_LIFE.as_secs() as i64 + 1);
    let a = expected(&fi, "n1", 0, &r, &pods, &late).expect("closes");
    assert!(a.records.is_empty(), "{:?}", a.records);
    assert!(a.requests.expect("written").windows.is_empty());
    // A Succeeded check closes it; with the window closed the same changes fail the node.
    let ok = FileIntegrityScanResult::new(t(100), Condition::Succeeded);
    let a = expected(&fi, "n1", 0, &ok, &pods, &t(100)).expect("closes");
    assert!(a.records.is_empty() && !a.all);
    assert!(a.requests.expect("written").windows.is_empty());
    let closed = FileIntegrity::new("fi", FileIntegritySpec::default());
    let r = failed(vec![by_mcd, unnamed]);
    assert_eq!(expected(&closed, "n1", 0, &r, &pods, &t(400)), None);
}

/// The kept history: the records moved now first, a record once however often it is written,
/// the oldest dropped past the budget; an unreadable history is started anew, and said.
#[test]
fn the_kept_history_keeps_each_record_once_newest_first_within_its_budget() {
    let fi = fi_with_rule();
    let r = failed(vec![change("/etc/fio-test/ca.crt", "kubelet.service")]);
    let rec = |id: i64| {
        let mut x = expected(&fi, "n1", 0, &r, &Pods::new(), &t(100))
            .unwrap()
            .records[0]
            .clone();
        x.request = id;
        x.accepted_at = Some(t(100 + id));
        x
    };
    let (one, ok) = history(None, &[rec(1)]);
    assert!(ok);
    let (two, _) = history(Some(&one), &[rec(2)]);
    let (again, _) = history(Some(&two), &[rec(2)]);
    assert_eq!(two, again, "written twice, kept once");
    let kept: Vec<AcceptedChange> = serde_json::from_str(&two).unwrap();
    assert_eq!(kept.iter().map(|r| r.request).collect::<Vec<_>>(), [2, 1]);
    let mut text = two;
    for id in 3..900 {
        text = history(Some(&text), &[rec(id)]).0;
    }
    assert!(text.len() <= HISTORY_BUDGET, "{}", text.len());
    let kept: Vec<AcceptedChange> = serde_json::from_str(&text).unwrap();
    assert_eq!(kept[0].request, 899);
    assert!(
        kept.len() > 300 && kept.last().unwrap().request > 2,
        "{}",
        kept.len()
    );
    let (fresh, ok) = history(Some("not json"), &[rec(7)]);
    assert!(!ok);
    assert_eq!(
        serde_json::from_str::<Vec<AcceptedChange>>(&fresh)
            .unwrap()
            .len(),
        1
    );
}
