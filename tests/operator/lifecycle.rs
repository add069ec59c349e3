//! Install and the operator's lifecycle: the deploy manifests, the harness self-test, the
//! DaemonSet's shape, node statuses, phase and events, large results, deletions.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read as _;
use std::path::Path;

use crate::cluster::{self, secs, Identity, TestNs, NODE_SELECTOR_LABEL, TEST_IMAGE};
use crate::support::{
    active_scenario, assert_backups, condition, container_args, ds_name, failed_cm,
    node_status_name, result_cm, FI, INTERVAL,
};
use fio_api::{
    names, FileIntegrity, FileIntegrityNodeCondition, FileIntegrityNodeStatus,
    FileIntegrityStatusPhase as Phase,
};
use fio_operator::controller::daemonset::DAEMON_CAPABILITIES;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

// ---- harness self-test (passes without the operator) --------------------------------------------

fn forbidden<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) {
    match r {
        Err(kube::Error::Api(s)) if s.is_forbidden() => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

fn allowed<T>(what: &str, r: Result<T, kube::Error>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        // authorized, but the object does not exist
        Err(kube::Error::Api(s)) if s.is_not_found() => None,
        Err(e) => panic!("{what}: expected to be allowed, got {e}"),
    }
}

/// `kubectl apply -k deploy/` is accepted by the real apiserver: every manifest (CRDs,
/// namespace, RBAC, the operator's Deployment) passes a server-side apply dry run, with the
/// namespace present as it would be on a second apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_kustomization_applies_with_server_side_dry_run() {
    let env = cluster::env();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
        Api::all(cluster::admin_client().await);
    let ns = names::DEFAULT_NAMESPACE;
    let created = namespaces
        .get_opt(ns)
        .await
        .expect("reading the operator namespace")
        .is_none();
    if created {
        let obj = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &obj)
            .await
            .expect("creating the operator namespace");
    }
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let out = std::process::Command::new(env.bin.join("kubectl"))
        .arg("--kubeconfig")
        .arg(&env.admin_kubeconfig)
        .args([
            "apply",
            "--server-side",
            "--dry-run=server",
            "-o",
            "name",
            "-k",
        ])
        .arg(&deploy)
        .output()
        .expect("running kubectl");
    if created {
        let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl apply -k deploy/ --dry-run=server failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for object in [
        "customresourcedefinition.apiextensions.k8s.io/fileintegrities.fileintegrity.openshift.io",
        "customresourcedefinition.apiextensions.k8s.io/fileintegritynodestatuses.fileintegrity.openshift.io",
        "namespace/openshift-file-integrity",
        "role.rbac.authorization.k8s.io/file-integrity-operator",
        "role.rbac.authorization.k8s.io/file-integrity-daemon",
        "clusterrole.rbac.authorization.k8s.io/file-integrity-operator",
        "deployment.apps/file-integrity-operator",
    ] {
        assert!(stdout.lines().any(|l| l == object), "{object} not applied:\n{stdout}");
    }
}

/// The namespace, deploy/rbac, the token identities and kwok nodes work: a DaemonSet created as
/// the operator's service account gets a Running pod on each of the test's nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_namespace_rbac_identities_and_kwok_nodes() {
    let t = TestNs::new("harness", 3).await;
    let ns = t.ns.as_str();

    // Nodes: kwok-managed, labelled for this test only.
    let nodes: Api<Node> = Api::all(t.client.clone());
    for n in &t.nodes {
        let node = nodes.get(n).await.expect("get test node");
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("kubernetes.io/hostname"), Some(n));
        assert_eq!(
            labels.get(NODE_SELECTOR_LABEL).map(String::as_str),
            Some(ns)
        );
        let ann = node.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            ann.get("kwok.x-k8s.io/node").map(String::as_str),
            Some("fake")
        );
    }

    // Identities: the API server sees the service accounts, not the admin.
    let op = t.client_as(Identity::Operator).await;
    let daemon = t.client_as(Identity::Daemon).await;
    assert_eq!(TestNs::whoami(&op).await, Identity::Operator.username(ns));
    assert_eq!(TestNs::whoami(&daemon).await, Identity::Daemon.username(ns));

    // The daemon: reports through ConfigMaps it creates, reads its FileIntegrity, nothing else.
    let d_cm: Api<ConfigMap> = Api::namespaced(daemon.clone(), ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "aide-harness-probe"}, "data": {"integritylog": ""}
    }))
    .expect("ConfigMap");
    // RBAC lets the daemon create ConfigMaps; the admission policy (which runs after
    // authorization) then refuses a token bound to no pod on a node, as this test's is.
    match d_cm.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(e)) => assert!(
            e.code == 403
                && e.message.contains(&format!(
                    "ValidatingAdmissionPolicy '{}'",
                    names::DAEMON_ADMISSION_POLICY
                ))
                && e.message.contains("not bound to a pod on a node"),
            "daemon creates a result ConfigMap: not the admission policy's refusal: {}",
            e.message
        ),
        other => panic!("daemon creates a ConfigMap with an unbound token: {other:?}"),
    }
    allowed(
        "daemon gets its FileIntegrity",
        Api::<FileIntegrity>::namespaced(daemon.clone(), ns)
            .get("no-such-fi")
            .await,
    );
    // Its AIDE config only through the Role `aide-<fi>` the operator makes per FileIntegrity.
    forbidden(
        "daemon gets a ConfigMap no FileIntegrity's Role grants",
        d_cm.get("aide-harness-probe").await,
    );
    allowed(
        "daemon lists its FileIntegrity (a watch starts with a list)",
        Api::<FileIntegrity>::namespaced(daemon.clone(), ns)
            .list(&ListParams::default().fields("metadata.name=no-such-fi"))
            .await,
    );
    forbidden(
        "daemon lists ConfigMaps",
        d_cm.list(&ListParams::default()).await,
    );
    forbidden(
        "daemon lists secrets",
        Api::<Secret>::namespaced(daemon.clone(), ns)
            .list(&ListParams::default())
            .await,
    );
    forbidden(
        "daemon deletes a ConfigMap",
        d_cm.delete("aide-harness-probe", &DeleteParams::default())
            .await,
    );
    let status: FileIntegrityNodeStatus = serde_json::from_value(json!({
        "apiVersion": names::API_VERSION, "kind": names::NODE_STATUS_KIND,
        "metadata": {"name": "fi-node"},
        "nodeName": "node", "results": [],
        "lastResult": {"condition": "Succeeded", "lastProbeTime": "2024-01-01T00:00:00Z"}
    }))
    .expect("node status");
    forbidden(
        "daemon gets a node status (the operator judges the anchor)",
        Api::<FileIntegrityNodeStatus>::namespaced(daemon.clone(), ns)
            .get("fi-node")
            .await,
    );
    forbidden(
        "daemon lists node statuses",
        Api::<FileIntegrityNodeStatus>::namespaced(daemon.clone(), ns)
            .list(&ListParams::default())
            .await,
    );
    forbidden(
        "daemon creates a FileIntegrityNodeStatus",
        Api::<FileIntegrityNodeStatus>::namespaced(daemon.clone(), ns)
            .create(&PostParams::default(), &status)
            .await,
    );
    forbidden(
        "daemon patches a FileIntegrity",
        Api::<FileIntegrity>::namespaced(daemon.clone(), ns)
            .patch(
                "no-such-fi",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
            )
            .await,
    );
    forbidden(
        "daemon lists nodes",
        Api::<Node>::all(daemon.clone())
            .list(&ListParams::default())
            .await,
    );
    forbidden(
        "daemon creates a DaemonSet",
        Api::<DaemonSet>::namespaced(daemon.clone(), ns)
            .create(&PostParams::default(), &probe_daemonset(&t, "aide-denied"))
            .await,
    );

    // The operator: nodes cluster-wide (the per-test ClusterRoleBinding), node statuses and
    // DaemonSets in its namespace; no secrets listing, no FileIntegrity creation, nothing in
    // other namespaces.
    allowed(
        "operator lists nodes",
        Api::<Node>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );
    allowed(
        "operator lists node statuses",
        Api::<FileIntegrityNodeStatus>::namespaced(op.clone(), ns)
            .list(&ListParams::default())
            .await,
    );
    forbidden(
        "operator lists secrets",
        Api::<Secret>::namespaced(op.clone(), ns)
            .list(&ListParams::default())
            .await,
    );
    forbidden(
        "operator creates a FileIntegrity",
        Api::<FileIntegrity>::namespaced(op.clone(), ns)
            .create(&PostParams::default(), &t.file_integrity("denied"))
            .await,
    );
    forbidden(
        "operator creates a DaemonSet in another namespace",
        Api::<DaemonSet>::namespaced(op.clone(), "default")
            .create(&PostParams::default(), &probe_daemonset(&t, "aide-denied"))
            .await,
    );
    Api::<DaemonSet>::namespaced(op.clone(), ns)
        .create(&PostParams::default(), &probe_daemonset(&t, "aide-harness"))
        .await
        .expect("the operator's identity creates a DaemonSet in its namespace");

    // Controller-manager, scheduler and kwok: one Running pod per test node, and no other node.
    let (_, pods) = t.wait_daemonset_rolled_out("aide-harness", secs(90)).await;
    assert_eq!(
        pods.keys().cloned().collect::<BTreeSet<_>>(),
        t.nodes.iter().cloned().collect::<BTreeSet<_>>()
    );
    for pod in pods.values() {
        assert!(pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_ref())
            .is_some());
    }
}

/// A DaemonSet like the operator's, for the harness self-test.
fn probe_daemonset(t: &TestNs, name: &str) -> DaemonSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": t.node_selector(),
                    "serviceAccountName": names::DAEMON_SERVICE_ACCOUNT,
                    "containers": [{
                        "name": "daemon", "image": TEST_IMAGE,
                        "command": ["fio-operator"], "args": ["daemon"],
                        "securityContext": {"runAsUser": 0, "capabilities": {"drop": ["ALL"], "add": DAEMON_CAPABILITIES}},
                        "volumeMounts": [{"name": "hostroot", "mountPath": "/hostroot"}]
                    }],
                    "volumes": [{"name": "hostroot", "hostPath": {"path": "/"}}]
                }
            }
        }
    }))
    .expect("DaemonSet")
}

// ---- scenarios (issue 3, section 5) -------------------------------------------------------------

/// A FileIntegrity over 3 nodes: config ConfigMap and DaemonSet as designed, every node
/// Succeeded, phase Active, the database and log on each node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_reach_succeeded_and_active() {
    let s = active_scenario("active", 3, |_| {}).await;
    let t = &s.t;
    let fi = s.fi().await;
    let uid = fi.metadata.uid.clone().expect("uid");

    // Config ConfigMap <fi>: the default config, labelled, owned by the FileIntegrity.
    let cm = t.get_configmap(FI).await.expect("config ConfigMap <fi>");
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    assert!(labels.contains_key(names::AIDE_CONFIG_LABEL), "{labels:?}");
    assert_eq!(labels.get(names::OWNER_LABEL).map(String::as_str), Some(FI));
    let conf = cm
        .data
        .as_ref()
        .and_then(|d| d.get(names::DEFAULT_CONFIG_DATA_KEY))
        .expect("aide.conf in the config ConfigMap");
    for rule in [
        "/hostroot/boot/",
        "/hostroot/root/",
        "/hostroot/usr/",
        "/hostroot/etc/",
        "!/hostroot/etc/kubernetes/aide.*",
        "@@define DBDIR /hostroot/etc/kubernetes",
    ] {
        assert!(conf.contains(rule), "default config lacks {rule}:\n{conf}");
    }
    let owners = cm.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owners
            .iter()
            .any(|o| o.uid == uid && o.kind == "FileIntegrity"),
        "config ConfigMap owned by the FileIntegrity: {owners:?}"
    );

    // DaemonSet aide-<fi>.
    let ds = t
        .api::<DaemonSet>()
        .get(&ds_name())
        .await
        .expect("DaemonSet aide-<fi>");
    let spec = ds.spec.clone().expect("DaemonSet spec");
    let app = BTreeMap::from([(names::APP_LABEL.to_owned(), ds_name())]);
    assert_eq!(spec.selector.match_labels.as_ref(), Some(&app));
    let tpl_labels = spec
        .template
        .metadata
        .clone()
        .unwrap_or_default()
        .labels
        .unwrap_or_default();
    assert_eq!(tpl_labels.get(names::APP_LABEL), Some(&ds_name()));
    let pod = spec.template.spec.clone().expect("pod spec");
    assert_eq!(pod.node_selector.as_ref(), Some(&t.node_selector()));
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(names::DAEMON_SERVICE_ACCOUNT)
    );
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some(TEST_IMAGE));
    // Not privileged (issue 4): exactly the capabilities hardening needs, as stored by the API
    // server (which refuses combinations such as allowPrivilegeEscalation=false with SYS_ADMIN).
    let sc = c
        .security_context
        .clone()
        .expect("container securityContext");
    assert_ne!(sc.privileged, Some(true));
    let caps = sc.capabilities.expect("capabilities");
    assert_eq!(caps.drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(
        caps.add,
        Some(DAEMON_CAPABILITIES.map(String::from).to_vec())
    );
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.seccomp_profile.map(|p| p.type_).as_deref(),
        Some("RuntimeDefault")
    );
    // Spelled as upstream's (users and upstream's e2e tests grep for these).
    let args = container_args(&ds);
    for a in [
        "daemon".to_owned(),
        format!("--owner={FI}"),
        format!("--namespace={}", t.ns),
        format!("--interval={INTERVAL}"),
        "--debug=false".to_owned(),
    ] {
        assert!(args.contains(&a), "DaemonSet args {args:?} lack {a}");
    }
    assert!(
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/hostroot"),
        "host root mounted at /hostroot: {:?}",
        c.volume_mounts
    );
    assert!(
        pod.volumes
            .iter()
            .flatten()
            .any(|v| v.host_path.as_ref().is_some_and(|h| h.path == "/")),
        "hostPath / volume: {:?}",
        pod.volumes
    );
    let env_node = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == names::ENV_NODE_NAME)
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.clone());
    assert_eq!(env_node.as_deref(), Some("spec.nodeName"));
    let owners = ds.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owners
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true)),
        "{owners:?}"
    );

    // Node statuses <fi>-<node>, owned, labelled.
    let statuses = t.node_statuses(FI).await.expect("node statuses");
    assert_eq!(
        statuses.keys().cloned().collect::<Vec<_>>(),
        t.nodes.clone()
    );
    for (node, st) in &statuses {
        assert_eq!(
            st.metadata.name.as_deref(),
            Some(node_status_name(node).as_str())
        );
        assert_eq!(condition(st), FileIntegrityNodeCondition::Succeeded);
        let owners = st.metadata.owner_references.clone().unwrap_or_default();
        assert!(owners.iter().any(|o| o.uid == uid), "{owners:?}");
    }

    // On the nodes: database 0600, log 0644, no backups.
    for root in s.roots.values() {
        assert_backups(root, 0);
    }
    // Daemon logs carry the seed's lines.
    for d in s.daemons.values() {
        let log = d.log();
        for line in [
            "Starting the AIDE runner daemon",
            "initializing AIDE db",
            "initialization finished",
            "running aide check",
        ] {
            assert!(
                log.contains(line),
                "{}: no {line:?}",
                d.log_path().display()
            );
        }
    }

    // Events as upstream: the phase and the node results.
    let events = t.api::<Event>();
    t.wait(
        "Events FileIntegrityStatus and NodeIntegrityStatus",
        secs(30),
        async || {
            let list = events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            // What `kubectl get events` shows: one Event per node in upstream's exact words
            // (what upstream's e2e helper and event-router rules match), and the phase reached
            // (not one Event per reason carrying its first note with a count).
            let notes: BTreeSet<(String, String)> = list
                .items
                .iter()
                .filter(|e| e.involved_object.name.as_deref() == Some(FI))
                .map(|e| {
                    let reason = e.reason.clone().unwrap_or_default();
                    (reason, e.message.clone().unwrap_or_default())
                })
                .collect();
            let mut want: Vec<(String, String)> = t
                .nodes
                .iter()
                .map(|n| {
                    (
                        names::EVENT_REASON_NODE_INTEGRITY_STATUS.to_owned(),
                        format!("no changes to node {n}"),
                    )
                })
                .collect();
            // Both phases the FileIntegrity went through, each its own Event (upstream's e2e
            // waits for "Initializing" too).
            for phase in ["Initializing", "Active"] {
                want.push((
                    names::EVENT_REASON_FILE_INTEGRITY_STATUS.to_owned(),
                    phase.to_owned(),
                ));
            }
            if want.iter().all(|w| notes.contains(w)) {
                Ok(())
            } else {
                Err(format!("events {notes:?}"))
            }
        },
    )
    .await;
}

/// 10,000 added files: the report is over 1 MiB, so the result is gzip+base64 with the
/// `compressed` annotation, and the counts are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_added_files_give_a_compressed_result() {
    let s = active_scenario("compress", 1, |_| {}).await;
    let t = &s.t;
    let n1 = s.node(0).to_owned();
    let etc = s.root(&n1).join("etc");
    let pad = "X".repeat(200);
    for i in 0..10_000 {
        let p = etc.join(format!("addedbytest{i}.{pad}"));
        fs::write(&p, b"").unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    let statuses = t
        .wait_node_statuses(FI, "node-1 Failed with 10000 added", secs(120), |s| {
            s.get(&n1).is_some_and(|st| {
                condition(st) == FileIntegrityNodeCondition::Failed
                    && st.spec.last_result.files_added == 10_000
            })
        })
        .await;
    let r = &statuses[&n1].spec.last_result;
    assert_eq!((r.files_changed, r.files_removed), (0, 0));
    let cm = t
        .get_configmap(&r.result_config_map_name)
        .await
        .expect("failure ConfigMap");
    let ann = cm.metadata.annotations.clone().unwrap_or_default();
    assert!(ann.contains_key(names::COMPRESSED_ANNOTATION), "{ann:?}");
    assert_eq!(
        ann.get(names::FILES_ADDED_ANNOTATION).map(String::as_str),
        Some("10000"),
        "{ann:?}"
    );
    let data = cm
        .data
        .as_ref()
        .and_then(|d| d.get(names::INTEGRITY_LOG_KEY))
        .expect("integritylog");
    assert!(
        data.len() < 1024 * 1024,
        "compressed log is {} bytes",
        data.len()
    );
    use base64::Engine as _;
    let gz = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .expect("integritylog is base64");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("integritylog is gzip'd text");
    assert!(text.len() > 1024 * 1024, "report of {} bytes", text.len());
    let named = text.lines().filter(|l| l.contains("addedbytest")).count();
    assert!(named >= 10_000, "report names {named} added files");
}

/// A deleted node loses its node status and its result ConfigMap; deleting the FileIntegrity
/// removes the DaemonSet, the config, the node statuses and the results, but keeps the failure
/// ConfigMaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_clean_up_but_keep_failure_configmaps() {
    let mut s = active_scenario("delete", 3, |_| {}).await;
    let n2 = s.node(1).to_owned();
    let n3 = s.node(2).to_owned();
    s.change_resolv_conf(&n2);
    s.wait_failed(&n2, 1).await;

    // Node-3 goes away (its pod with it).
    s.daemon(&n3).stop();
    Api::<Node>::all(s.t.client.clone())
        .delete(&n3, &DeleteParams::default())
        .await
        .expect("delete node-3");
    let kept: Vec<String> = s.t.nodes[..2].to_vec();
    s.t.wait_node_statuses(FI, "node-3's status removed", secs(60), |st| {
        st.keys().cloned().collect::<Vec<_>>() == kept
    })
    .await;
    s.t.wait(
        "node-3's result ConfigMap removed",
        secs(30),
        async || match s.t.get_configmap(&result_cm(&n3)).await {
            None => Ok(()),
            Some(_) => Err("still there".to_owned()),
        },
    )
    .await;
    // Node-2's kept report stays (its results themselves are deleted once processed).
    assert!(s.t.get_configmap(&failed_cm(&n2)).await.is_some());
    s.t.wait_phase(FI, Phase::Active, secs(60)).await;

    // The FileIntegrity goes away.
    for d in s.daemons.values_mut() {
        d.allow_exit();
    }
    let t = &s.t;
    t.api::<FileIntegrity>()
        .delete(FI, &DeleteParams::default())
        .await
        .expect("delete the FileIntegrity");
    let ds = t.api::<DaemonSet>();
    t.wait(
        "DaemonSet, config and node statuses gone",
        secs(60),
        async || {
            let d = ds.get_opt(&ds_name()).await.map_err(|e| e.to_string())?;
            let st = t.node_statuses(FI).await?;
            let conf = t.get_configmap(FI).await;
            let result = t.get_configmap(&result_cm(&n2)).await;
            if d.is_none() && st.is_empty() && conf.is_none() && result.is_none() {
                Ok(())
            } else {
                Err(format!(
                    "DaemonSet {}, config {}, node-2's result {}, node statuses {:?}",
                    d.is_some(),
                    conf.is_some(),
                    result.is_some(),
                    st.keys().collect::<Vec<_>>()
                ))
            }
        },
    )
    .await;
    // Garbage collection has run; the failure ConfigMap survives it.
    tokio::time::sleep(secs(5)).await;
    let failed = t
        .get_configmap(&failed_cm(&n2))
        .await
        .expect("the failure ConfigMap survives the FileIntegrity");
    assert!(failed
        .data
        .as_ref()
        .and_then(|d| d.get(names::INTEGRITY_LOG_KEY))
        .is_some_and(|l| l.contains("/etc/resolv.conf")));
}
