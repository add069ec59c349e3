use super::*;
use crate::WriterPod;

fn unit(name: &str) -> ExpectedWriter {
    ExpectedWriter {
        kind: "unit".into(),
        name: name.into(),
        ..ExpectedWriter::default()
    }
}

fn rule(name: &str, paths: &[&str], writers: Vec<ExpectedWriter>) -> ExpectedChange {
    ExpectedChange {
        name: name.into(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        writers,
        attributes: Vec::new(),
    }
}

fn by_unit(u: &str) -> Writer {
    Writer {
        state: WriterState::Attributed,
        pid: Some(10),
        comm: "kubelet".into(),
        unit: u.into(),
        ..Writer::default()
    }
}

fn by_pod(ns: &str, name: &str) -> Writer {
    Writer {
        state: WriterState::Attributed,
        pid: Some(11),
        pod: Some(WriterPod {
            uid: format!("uid-{name}"),
            namespace: ns.into(),
            name: name.into(),
            container: "c".into(),
            container_id: String::new(),
        }),
        ..Writer::default()
    }
}

fn changed(path: &str, attributes: &[&str], writers: Vec<Writer>) -> FileChange {
    FileChange {
        path: path.into(),
        kind: ChangeKind::Changed,
        attributes: attributes.iter().map(|a| a.to_string()).collect(),
        details: Vec::new(),
        since: None,
        found_by: Some(FoundBy::Realtime),
        writers,
    }
}

/// The pods the operator found: `mcd-1` labelled as the machine-config daemon, `app-1` as app.
fn pods(p: &WriterPod) -> Option<BTreeMap<String, String>> {
    let label = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    match (p.namespace.as_str(), p.name.as_str(), p.uid.as_str()) {
        (MACHINE_CONFIG_DAEMON_NAMESPACE, "mcd-1", "uid-mcd-1") => Some(label(
            MACHINE_CONFIG_DAEMON_LABEL.0,
            MACHINE_CONFIG_DAEMON_LABEL.1,
        )),
        ("apps", "app-1", "uid-app-1") => Some(label("app", "sync")),
        _ => None,
    }
}

#[test]
fn a_rewrite_by_an_allowed_unit_is_expected_and_nothing_else_is() {
    let rules = Rules::compile(&[rule(
        "kubelet-ca",
        &["/etc/fio-test/*.crt"],
        vec![unit("kubelet.service")],
    )])
    .unwrap();
    let content = ["sha512", "modify_time", "change_time"];
    let ok = changed(
        "/etc/fio-test/ca.crt",
        &content,
        vec![by_unit("kubelet.service")],
    );
    assert_eq!(rules.expects(&ok, &pods), Some("kubelet-ca"));

    // Another writer, or one more besides the allowed one: not expected.
    let other = changed(
        "/etc/fio-test/ca.crt",
        &content,
        vec![by_unit("sshd.service")],
    );
    assert_eq!(rules.expects(&other, &pods), None);
    let both = changed(
        "/etc/fio-test/ca.crt",
        &content,
        vec![by_unit("kubelet.service"), by_pod("apps", "app-1")],
    );
    assert_eq!(rules.expects(&both, &pods), None);
    // A writer that exited or was not named is never expected.
    let mut exited = ok.clone();
    exited.writers[0].state = WriterState::Exited;
    assert_eq!(rules.expects(&exited, &pods), None);
    let mut unnamed = ok.clone();
    unnamed.writers.clear();
    assert_eq!(rules.expects(&unnamed, &pods), None);
    // Found by a scan (no writer known), added or removed: not expected.
    let mut scanned = ok.clone();
    scanned.found_by = Some(FoundBy::Scan);
    assert_eq!(rules.expects(&scanned, &pods), None);
    let mut added = ok.clone();
    added.kind = ChangeKind::Added;
    assert_eq!(rules.expects(&added, &pods), None);
    // Attributes outside the default (content and times): not expected.
    let perm = changed(
        "/etc/fio-test/ca.crt",
        &["sha512", "perm"],
        vec![by_unit("kubelet.service")],
    );
    assert_eq!(rules.expects(&perm, &pods), None);
    // `*` stays within one component; the pattern is anchored at both ends.
    for path in [
        "/etc/fio-test/sub/ca.crt",
        "/etc/fio-test/ca.crt.bak",
        "/x/etc/fio-test/ca.crt",
    ] {
        let c = changed(path, &content, vec![by_unit("kubelet.service")]);
        assert_eq!(rules.expects(&c, &pods), None, "{path}");
    }
}

#[test]
fn pods_match_by_namespace_and_labels_of_the_pod_read() {
    let sync = ExpectedWriter {
        kind: "pod".into(),
        namespace: "apps".into(),
        selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "sync".into())])),
            match_expressions: None,
        }),
        ..ExpectedWriter::default()
    };
    let mcd = ExpectedWriter {
        kind: "machineConfigDaemon".into(),
        ..ExpectedWriter::default()
    };
    let rules = Rules::compile(&[
        rule("sync", &["/etc/sync/**"], vec![sync]),
        rule("updates", &["/etc/**"], vec![mcd]),
    ])
    .unwrap();
    let c = |path: &str, w: Writer| changed(path, &["sha512"], vec![w]);
    assert_eq!(
        rules.expects(&c("/etc/sync/a/b.conf", by_pod("apps", "app-1")), &pods),
        Some("sync")
    );
    assert_eq!(
        rules.expects(
            &c(
                "/etc/sync/a",
                by_pod(MACHINE_CONFIG_DAEMON_NAMESPACE, "mcd-1")
            ),
            &pods
        ),
        Some("updates"),
        "the first rule that expects it"
    );
    // A pod the operator could not read (gone, or its uid differs): not expected.
    let mut gone = by_pod("apps", "app-1");
    if let Some(p) = &mut gone.pod {
        p.uid = "another".into();
    }
    assert_eq!(rules.expects(&c("/etc/sync/x", gone), &pods), None);
    // The same labels in another namespace: not expected.
    assert_eq!(
        rules.expects(&c("/etc/sync/x", by_pod("other", "app-1")), &pods),
        None
    );
    // A host unit is not a pod.
    assert_eq!(
        rules.expects(&c("/etc/sync/x", by_unit("kubelet.service")), &pods),
        None
    );
}

#[test]
fn attributes_named_replace_the_default() {
    let mut r = rule("times", &["/etc/t"], vec![unit("chronyd.service")]);
    r.attributes = vec!["modify_time".into(), "perm".into()];
    let rules = Rules::compile(&[r]).unwrap();
    let w = || vec![by_unit("chronyd.service")];
    assert_eq!(
        rules.expects(&changed("/etc/t", &["perm", "modify_time"], w()), &pods),
        Some("times")
    );
    assert_eq!(
        rules.expects(&changed("/etc/t", &["sha512"], w()), &pods),
        None
    );
}

#[test]
fn bad_rules_are_named_with_their_field() {
    let err = |spec: Vec<ExpectedChange>| Rules::compile(&spec).unwrap_err().to_string();
    let ok = || rule("r", &["/etc/x"], vec![unit("kubelet.service")]);

    let mut bad = ok();
    bad.paths = vec!["/etc/x".into(), "/etc/[z-a".into()];
    let e = err(vec![bad]);
    assert!(
        e.starts_with("expectedChanges[r].paths[1]: \"/etc/[z-a\""),
        "{e}"
    );

    let mut relative = ok();
    relative.paths = vec!["etc/x".into()];
    assert_eq!(
        err(vec![relative]),
        "expectedChanges[r].paths[0]: \"etc/x\" is not an absolute path"
    );

    let mut kind = ok();
    kind.writers.push(ExpectedWriter {
        kind: "service".into(),
        name: "crio.service".into(),
        ..ExpectedWriter::default()
    });
    assert_eq!(
        err(vec![kind]),
        "expectedChanges[r].writers[1].kind: unknown writer kind \"service\" (unit, pod or machineConfigDaemon)"
    );

    let mut not_unit = ok();
    not_unit.writers = vec![unit("kubelet")];
    assert!(err(vec![not_unit]).starts_with("expectedChanges[r].writers[0].name: "));

    let mut no_ns = ok();
    no_ns.writers = vec![ExpectedWriter {
        kind: "pod".into(),
        ..ExpectedWriter::default()
    }];
    assert_eq!(
        err(vec![no_ns]),
        "expectedChanges[r].writers[0].namespace: a pod writer needs its namespace"
    );

    let mut stray = ok();
    stray.writers[0].namespace = "x".into();
    assert_eq!(
        err(vec![stray]),
        "expectedChanges[r].writers[0].namespace: not a field of a \"unit\" writer"
    );

    let mut selector = ok();
    selector.writers = vec![ExpectedWriter {
        kind: "pod".into(),
        namespace: "apps".into(),
        selector: Some(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "a".into(),
                    operator: "Near".into(),
                    values: None,
                },
            ]),
        }),
        ..ExpectedWriter::default()
    }];
    assert!(err(vec![selector]).starts_with("expectedChanges[r].writers[0].selector: "));

    let mut attr = ok();
    attr.attributes = vec!["sha512".into(), "colour".into()];
    assert!(err(vec![attr])
        .starts_with("expectedChanges[r].attributes[1]: \"colour\" is not an attribute"));

    let mut unnamed = ok();
    unnamed.name = String::new();
    assert!(err(vec![ok(), unnamed]).starts_with("expectedChanges[1].name: "));
    assert_eq!(
        err(vec![ok(), ok()]),
        "expectedChanges[r].name: another rule has this name"
    );
    let mut empty = ok();
    empty.writers.clear();
    assert_eq!(
        err(vec![empty]),
        "expectedChanges[r].writers: 1 to 32 writers"
    );
}

/// Every attribute name a change may list is one a rule may name (the lists here and the
/// scanner's names agree).
#[test]
fn the_attribute_names_are_the_scanners() {
    use fio_core::attr::ATTRS;
    let named: BTreeSet<&str> = CONTENT_AND_TIMES
        .iter()
        .chain(OTHER_ATTRIBUTES)
        .copied()
        .collect();
    let missing: Vec<&str> = ATTRS
        .iter()
        // (what a database stores is what can change)
        .filter(|a| a.config_name.is_some() && a.db_name.is_some())
        .map(|a| fio_core::report::values::json_name(a.attr))
        .filter(|j| !named.contains(j))
        .collect();
    assert!(missing.is_empty(), "{missing:?}");
    let stored: BTreeSet<&str> = ATTRS
        .iter()
        // (the file type is stored in the permissions, and compared on its own)
        .filter(|a| a.db_name.is_some() || a.attr == fio_core::attr::Attr::Ftype)
        .map(|a| fio_core::report::values::json_name(a.attr))
        .collect();
    let unknown: Vec<&&str> = named.iter().filter(|n| !stored.contains(**n)).collect();
    assert!(unknown.is_empty(), "{unknown:?}");
}

/// `spec.platformRules`: the platform's files are the machine-config daemon's to rewrite, and
/// the default configuration no longer excludes them (only them).
#[test]
fn platform_rules_replace_upstreams_excludes_of_the_daemons_files() {
    let rules = Rules::compile(&platform_rules()).expect("the platform rules compile");
    let mcd = by_pod(MACHINE_CONFIG_DAEMON_NAMESPACE, "mcd-1");
    for f in PLATFORM_FILES {
        let c = changed(f.path, &["sha512", "inode"], vec![mcd.clone()]);
        assert_eq!(rules.expects(&c, &pods), Some(f.rule), "{}", f.path);
        let by_shell = changed(f.path, &["sha512"], vec![by_unit("sshd.service")]);
        assert_eq!(rules.expects(&by_shell, &pods), None, "{}", f.path);
        let chmod = changed(f.path, &["perm"], vec![mcd.clone()]);
        assert_eq!(
            rules.expects(&chmod, &pods),
            None,
            "{}: permissions",
            f.path
        );
        assert!(
            crate::aideconf::DEFAULT_CONFIG
                .lines()
                .any(|l| l == f.excluded_by),
            "{} is not a line of the default configuration",
            f.excluded_by
        );
    }
    let monitored = crate::aideconf::default_config(true);
    crate::aideconf::validate(&monitored).expect("still a valid configuration");
    let removed: Vec<&str> = crate::aideconf::DEFAULT_CONFIG
        .lines()
        .filter(|l| !monitored.lines().any(|m| m == *l))
        .collect();
    let replaced: Vec<&str> = PLATFORM_FILES.iter().map(|f| f.excluded_by).collect();
    assert_eq!(removed, replaced);
    assert!(monitored.contains("!/hostroot/etc/machine-config-daemon/node-annotation.json*"));
    assert_eq!(
        crate::aideconf::default_config(false),
        crate::aideconf::DEFAULT_CONFIG
    );
}
