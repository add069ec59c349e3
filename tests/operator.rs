//! End to end against a real control plane (kube-apiserver, etcd, controller-manager, scheduler,
//! kwok; `scripts/testenv.sh`): `fio-operator run` and one `fio-operator daemon --owner ...` per
//! simulated node run as local processes with the tokens of their service accounts, over small
//! node roots (see `tests/cluster/mod.rs`). Issue 3, section 5; names and the re-init protocol as
//! in NOTES.md ("Operator (issue 3)").
//!
//! The scan interval is gracePeriod 10 (the minimum) everywhere, so a node reports every ~10 s.
//! `FIO_TEST_KEEP=1` keeps namespaces, nodes, node roots and logs; on a failure the tails of the
//! operator's and daemons' logs and the namespace's objects are printed.

mod cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster::{secs, Daemon, Identity, Operator, TestNs, NODE_SELECTOR_LABEL, TEST_IMAGE};
use fio_api::holdoff::{MC_CURRENT_CONFIG, MC_DESIRED_CONFIG, MC_STATE};
use fio_api::{
    names, FileIntegrity, FileIntegrityNodeCondition, FileIntegrityNodeStatus,
    FileIntegrityStatusPhase as Phase,
};
use fio_operator::controller::daemonset::DAEMON_CAPABILITIES;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use serde_json::{json, Value};

/// The FileIntegrity of every scenario (the upstream documentation's example name).
const FI: &str = "example-fileintegrity";
/// gracePeriod of the scenarios, and the daemons' `--interval`.
const INTERVAL: u64 = 10;

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
    allowed(
        "daemon creates a result ConfigMap",
        d_cm.create(&PostParams::default(), &cm).await,
    );
    allowed(
        "daemon gets its FileIntegrity",
        Api::<FileIntegrity>::namespaced(daemon.clone(), ns)
            .get("no-such-fi")
            .await,
    );
    allowed(
        "daemon gets a ConfigMap (its AIDE config)",
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
    allowed(
        "daemon gets a node status (the anchored baseline)",
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

// ---- scenario helpers ---------------------------------------------------------------------------

/// One FileIntegrity `FI` over the test's nodes with the operator and a daemon per node running.
/// Drop order: daemons, operator, then the namespace.
struct Scenario {
    daemons: BTreeMap<String, Daemon>,
    op: Operator,
    roots: BTreeMap<String, PathBuf>,
    t: TestNs,
}

/// A namespace with `nodes` nodes and a FileIntegrity (after `customize`) that reached Active
/// with every node Succeeded.
async fn active_scenario(
    label: &str,
    nodes: usize,
    customize: impl FnOnce(&mut FileIntegrity),
) -> Scenario {
    let t = TestNs::new(label, nodes).await;
    let mut fi = t.file_integrity(FI);
    customize(&mut fi);
    start_scenario(t, fi).await
}

/// Starts the operator, creates `fi`, starts a daemon on each node once the DaemonSet has a
/// Running pod there (as a kubelet would), waits for Active and every node Succeeded.
async fn start_scenario(t: TestNs, fi: FileIntegrity) -> Scenario {
    let roots: BTreeMap<_, _> = t
        .nodes
        .iter()
        .map(|n| (n.clone(), t.node_root(n)))
        .collect();
    let op = Operator::start(&t);
    t.create_fi(&fi).await;
    t.wait_daemonset_rolled_out(&ds_name(), secs(60)).await;
    let daemons = roots
        .iter()
        .map(|(n, root)| (n.clone(), Daemon::start(&t, FI, n, root, INTERVAL)))
        .collect();
    let s = Scenario {
        daemons,
        op,
        roots,
        t,
    };
    s.wait_all_succeeded_after("the first scans", None, secs(90))
        .await;
    s.t.wait_phase(FI, Phase::Active, secs(60)).await;
    s
}

fn ds_name() -> String {
    format!("{}-{FI}", names::DAEMONSET_PREFIX)
}

fn result_cm(node: &str) -> String {
    format!("{}-{FI}-{node}", names::DAEMONSET_PREFIX)
}

fn failed_cm(node: &str) -> String {
    format!(
        "{}{}",
        result_cm(node),
        names::FAILED_RESULT_CONFIGMAP_SUFFIX
    )
}

fn node_status_name(node: &str) -> String {
    format!("{FI}-{node}")
}

/// Seconds resolution, as lastProbeTime: true when `probe` is in a later second than `t`, i.e.
/// the scan certainly started after `t`.
fn after(probe: &FileIntegrityNodeStatus, t: Option<Timestamp>) -> bool {
    t.is_none_or(|t| probe.spec.last_result.last_probe_time.0.as_second() > t.as_second())
}

fn condition(s: &FileIntegrityNodeStatus) -> FileIntegrityNodeCondition {
    s.spec.last_result.condition
}

fn reinit_id(s: &FileIntegrityNodeStatus) -> i64 {
    s.spec.reinit_id.unwrap_or(0)
}

/// `<root>/etc/kubernetes`: (database backups, log backups), names checked against the seed's
/// `.backup-YYYYMMDDTHH_MM_SS`.
fn backups(root: &Path) -> (Vec<String>, Vec<String>) {
    let dir = root.join("etc/kubernetes");
    let mut db = Vec::new();
    let mut log = Vec::new();
    for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let name = e
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        for (prefix, list) in [
            ("aide.db.gz.backup-", &mut db),
            ("aide.log.backup-", &mut log),
        ] {
            if let Some(stamp) = name.strip_prefix(prefix) {
                assert!(
                    is_backup_stamp(stamp),
                    "{}/{name}: suffix is not YYYYMMDDTHH_MM_SS",
                    dir.display()
                );
                list.push(name.clone());
            }
        }
    }
    db.sort();
    log.sort();
    (db, log)
}

fn is_backup_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 17
        && b.iter().enumerate().all(|(i, c)| match i {
            8 => *c == b'T',
            11 | 14 => *c == b'_',
            _ => c.is_ascii_digit(),
        })
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The seed's picture after `n` re-inits: `n` database and `n` log backups with matching
/// timestamps, database 0600, log 0644.
fn assert_backups(root: &Path, n: usize) {
    let (db, log) = backups(root);
    assert_eq!(db.len(), n, "{}: database backups {db:?}", root.display());
    assert_eq!(log.len(), n, "{}: log backups {log:?}", root.display());
    for (d, l) in db.iter().zip(&log) {
        assert_eq!(
            d.strip_prefix("aide.db.gz."),
            l.strip_prefix("aide.log."),
            "{}: database and log backups of one re-init share the timestamp",
            root.display()
        );
    }
    let dir = root.join("etc/kubernetes");
    assert_eq!(mode(&dir.join("aide.db.gz")), 0o600);
    assert_eq!(mode(&dir.join("aide.log")), 0o644);
    for d in &db {
        assert_eq!(mode(&dir.join(d)), 0o600, "{d}");
    }
}

/// The operator's re-init requests annotation (NOTES.md): `(seq, nodes)`.
fn reinit_requests(fi: &FileIntegrity) -> (i64, BTreeMap<String, i64>) {
    let Some(raw) = fi
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::REINIT_REQUESTS_ANNOTATION))
    else {
        return (0, BTreeMap::new());
    };
    let v: Value = serde_json::from_str(raw).unwrap_or_else(|e| {
        panic!(
            "{}: not JSON ({e}): {raw}",
            names::REINIT_REQUESTS_ANNOTATION
        )
    });
    let nodes = v["nodes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(-1)))
                .collect()
        })
        .unwrap_or_default();
    (v["seq"].as_i64().unwrap_or(0), nodes)
}

fn has_annotation(fi: &FileIntegrity, key: &str) -> bool {
    fi.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

fn daemon_args(ds: &DaemonSet) -> Vec<String> {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default()
}

impl Scenario {
    fn node(&self, i: usize) -> &str {
        &self.t.nodes[i]
    }

    fn root(&self, node: &str) -> &Path {
        &self.roots[node]
    }

    fn daemon(&mut self, node: &str) -> &mut Daemon {
        self.daemons.get_mut(node).expect("a daemon per node")
    }

    /// Appends a line to `<root>/etc/resolv.conf` (upstream's e2e edit); returns when.
    fn change_resolv_conf(&self, node: &str) -> Timestamp {
        let p = self.root(node).join("etc/resolv.conf");
        let at = Timestamp::now();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        f.write_all(b"#foobar\n")
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        at
    }

    async fn fi(&self) -> FileIntegrity {
        self.t.get_fi(FI).await
    }

    /// Every node has a node status whose last result is Succeeded and later than `since`.
    async fn wait_all_succeeded_after(
        &self,
        what: &str,
        since: Option<Timestamp>,
        limit: Duration,
    ) -> BTreeMap<String, FileIntegrityNodeStatus> {
        let nodes = self.t.nodes.clone();
        self.t
            .wait_node_statuses(
                FI,
                &format!("every node Succeeded after {what}"),
                limit,
                |s| {
                    nodes.iter().all(|n| {
                        s.get(n).is_some_and(|st| {
                            condition(st) == FileIntegrityNodeCondition::Succeeded
                                && after(st, since)
                        })
                    })
                },
            )
            .await
    }

    /// For `limit`, each of `nodes` keeps exactly `want` database backups (no further re-init).
    async fn backups_stay(&self, what: &str, limit: Duration, nodes: &[String], want: usize) {
        self.t
            .holds_for(what, limit, async || {
                for n in nodes {
                    let (db, _) = backups(self.root(n));
                    if db.len() != want {
                        return Err(format!("{n}: {db:?}"));
                    }
                }
                Ok(())
            })
            .await;
    }

    /// `node` reports Failed with `changed` changed files.
    async fn wait_failed(&self, node: &str, changed: i64) -> FileIntegrityNodeStatus {
        let statuses = self
            .t
            .wait_node_statuses(
                FI,
                &format!("{node} Failed with filesChanged={changed}"),
                secs(60),
                |s| {
                    s.get(node).is_some_and(|st| {
                        condition(st) == FileIntegrityNodeCondition::Failed
                            && st.spec.last_result.files_changed == changed
                    })
                },
            )
            .await;
        statuses[node].clone()
    }

    /// Re-init requests handled (annotation removed) and every node in `nodes` confirmed the id
    /// the operator assigned to it, with a Succeeded result after `since`. Returns the requested
    /// ids.
    async fn wait_reinit_confirmed(
        &self,
        nodes: &[String],
        since: Timestamp,
        limit: Duration,
    ) -> BTreeMap<String, i64> {
        let api = self.t.api::<FileIntegrity>();
        let requested = self
            .t
            .wait(
                "the re-init annotation handled (removed, requests recorded)",
                secs(30),
                async || {
                    let fi = api.get(FI).await.map_err(|e| e.to_string())?;
                    let (_, req) = reinit_requests(&fi);
                    if !has_annotation(&fi, names::REINIT_ANNOTATION)
                        && nodes.iter().all(|n| req.contains_key(n))
                    {
                        Ok(req)
                    } else {
                        Err(format!("annotations {:?}", fi.metadata.annotations))
                    }
                },
            )
            .await;
        self.t
            .wait_node_statuses(
                FI,
                &format!("{nodes:?} confirmed re-init ids {requested:?}, Succeeded"),
                limit,
                |s| {
                    nodes.iter().all(|n| {
                        s.get(n).is_some_and(|st| {
                            reinit_id(st) == requested[n]
                                && condition(st) == FileIntegrityNodeCondition::Succeeded
                                && after(st, Some(since))
                        })
                    })
                },
            )
            .await;
        requested
    }
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
    let args = daemon_args(&ds);
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
            // What `kubectl get events` shows: each node's own note, and the phase reached
            // (not one Event per reason carrying its first note with a count).
            let notes: BTreeSet<(String, String)> = list
                .items
                .iter()
                .filter(|e| e.involved_object.name.as_deref() == Some(FI))
                .map(|e| {
                    (
                        e.reason.clone().unwrap_or_default(),
                        e.message.clone().unwrap_or_default(),
                    )
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
            want.push((
                names::EVENT_REASON_FILE_INTEGRITY_STATUS.to_owned(),
                "Active".to_owned(),
            ));
            if want.iter().all(|w| notes.contains(w)) {
                Ok(())
            } else {
                Err(format!("events {notes:?}"))
            }
        },
    )
    .await;
}

/// A changed file on node-2: node-2 Failed (filesChanged 1) with a persistent ConfigMap naming
/// the file, the others stay Succeeded. Then re-init all: the annotation is removed, every node
/// re-initialises once with the seed's backups, all Succeeded again, the failure stays on record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_file_fails_one_node_then_reinit_all_recovers() {
    let mut s = active_scenario("fail", 3, |_| {}).await;
    let n2 = s.node(1).to_owned();
    let changed_at = s.change_resolv_conf(&n2);

    let st = s.wait_failed(&n2, 1).await;
    // Metrics (issue 5): the failure gauge, the transition, the scan figures the daemon reported;
    // after an operator restart the gauge is back at 1 at once (upstream reset it to 0).
    let gauge = "file_integrity_operator_node_failed";
    let text = s.op.wait_metric(gauge, &[("node", &n2)], 1.0).await;
    let m =
        |name: &str, labels: &[(&str, &str)]| fio_operator::metrics::sample(&text, name, labels);
    assert_eq!(m(gauge, &[("node", s.node(0))]), Some(0.0), "{text}");
    assert_eq!(
        m(
            "file_integrity_operator_node_status_total",
            &[("condition", "Failed"), ("node", &n2)]
        ),
        Some(1.0),
        "{text}"
    );
    let scan = [("fileintegrity", FI), ("node", n2.as_str())];
    let files = m("file_integrity_operator_scan_files", &scan);
    assert!(
        files.is_some_and(|n| n >= 4.0),
        "scan_files {files:?}\n{text}"
    );
    let took = m("file_integrity_operator_scan_duration_seconds", &scan);
    assert!(took.is_some_and(|d| d >= 0.0), "{text}");
    s.op.restart();
    s.op.wait_metric(gauge, &[("node", &n2)], 1.0).await;
    let t = &s.t;
    let r = &st.spec.last_result;
    assert_eq!((r.files_added, r.files_removed), (0, 0));
    assert_eq!(r.result_config_map_name, failed_cm(&n2));
    assert_eq!(r.result_config_map_namespace, t.ns);
    let failed = t
        .get_configmap(&failed_cm(&n2))
        .await
        .expect("persistent failure ConfigMap");
    let report = failed
        .data
        .as_ref()
        .and_then(|d| d.get(names::INTEGRITY_LOG_KEY))
        .expect("integritylog in the failure ConfigMap");
    // The daemon maps /hostroot to its --hostroot: accept either spelling of the path.
    assert!(
        report.contains("/etc/resolv.conf"),
        "report does not name resolv.conf:\n{report}"
    );
    let labels = failed.metadata.labels.clone().unwrap_or_default();
    assert!(labels.contains_key(names::RESULT_LOG_LABEL), "{labels:?}");
    assert!(!labels.contains_key(names::LOG_LABEL), "{labels:?}");
    assert!(
        failed
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default()
            .is_empty(),
        "the failure ConfigMap must not be owned (it survives the FileIntegrity)"
    );
    // The temporary result ConfigMap is deleted once processed.
    let cms = t.api::<ConfigMap>();
    t.wait(
        "the temporary result ConfigMap deleted",
        secs(30),
        async || match cms.get_opt(&result_cm(&n2)).await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err("still there".into()),
            Err(e) => Err(e.to_string()),
        },
    )
    .await;

    // The other nodes keep reporting Succeeded after the change; Failed does not change the phase.
    let others: Vec<String> = t.nodes.iter().filter(|n| **n != n2).cloned().collect();
    let statuses = t
        .wait_node_statuses(FI, "the other nodes scanned again", secs(40), |s| {
            others
                .iter()
                .all(|n| s.get(n).is_some_and(|st| after(st, Some(changed_at))))
        })
        .await;
    for n in &others {
        assert_eq!(
            condition(&statuses[n]),
            FileIntegrityNodeCondition::Succeeded
        );
        assert!(
            statuses[n]
                .spec
                .results
                .iter()
                .all(|r| r.condition == FileIntegrityNodeCondition::Succeeded),
            "{n}: {:?}",
            statuses[n].spec.results
        );
    }
    assert_eq!(
        s.fi().await.status.unwrap_or_default().phase,
        Some(Phase::Active)
    );

    // Re-init all.
    let reinit_at = Timestamp::now();
    t.annotate_fi(FI, names::REINIT_ANNOTATION, "").await;
    let requested = s.wait_reinit_confirmed(&t.nodes, reinit_at, secs(90)).await;
    let ids: BTreeSet<_> = requested.values().collect();
    assert_eq!(ids.len(), 1, "one request for all nodes: {requested:?}");
    t.wait_phase(FI, Phase::Active, secs(30)).await;
    s.op.wait_metric(gauge, &[("node", &n2)], 0.0).await;
    let text = s.op.metrics().await;
    assert_eq!(
        fio_operator::metrics::sample(
            &text,
            "file_integrity_operator_reinit_total",
            &[("by", "demand"), ("node", "")]
        ),
        Some(1.0),
        "one re-init on demand since the last restart\n{text}"
    );
    for root in s.roots.values() {
        assert_backups(root, 1);
    }
    // Earlier failures stay visible: node-2's results keep the Failed entry, its ConfigMap stays.
    let st = &t.node_statuses(FI).await.expect("node statuses")[&n2];
    assert!(
        st.spec
            .results
            .iter()
            .any(|r| r.condition == FileIntegrityNodeCondition::Failed),
        "{:?}",
        st.spec.results
    );
    assert!(t.get_configmap(&failed_cm(&n2)).await.is_some());
    // Exactly once: another two intervals bring no more backups.
    s.backups_stay("one backup per node", secs(2 * INTERVAL), &t.nodes, 1)
        .await;
}

/// `re-init=<node-2>` re-initialises node-2 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinit_of_one_node_leaves_the_others_alone() {
    let s = active_scenario("reinit1", 3, |_| {}).await;
    let t = &s.t;
    let n2 = s.node(1).to_owned();
    s.change_resolv_conf(&n2);
    s.wait_failed(&n2, 1).await;
    let before = t.node_statuses(FI).await.expect("node statuses");

    let at = Timestamp::now();
    t.annotate_fi(FI, names::REINIT_ANNOTATION, &n2).await;
    let requested = s
        .wait_reinit_confirmed(std::slice::from_ref(&n2), at, secs(60))
        .await;
    for n in t.nodes.iter().filter(|n| **n != n2) {
        assert!(
            requested.get(n).copied().unwrap_or(0) <= reinit_id(&before[n]),
            "{n} was not requested: {requested:?}"
        );
    }
    assert_backups(s.root(&n2), 1);
    t.holds_for(
        "only node-2 re-initialised, once",
        secs(2 * INTERVAL),
        async || {
            let now = t.node_statuses(FI).await?;
            for (n, root) in &s.roots {
                let want = usize::from(*n == n2);
                let (db, log) = backups(root);
                if db.len() != want || log.len() != want {
                    return Err(format!("{n}: {db:?} {log:?}"));
                }
                if *n != n2 && now.get(n).map(reinit_id) != before.get(n).map(reinit_id) {
                    return Err(format!(
                        "{n}: reinitId changed: {}",
                        cluster::summarize_node_statuses(&now)
                    ));
                }
            }
            Ok(())
        },
    )
    .await;
    t.wait_phase(FI, Phase::Active, secs(30)).await;
}

/// A user config, as a user writes it for the host (paths without /hostroot).
const USER_CONFIG: &str = "\
@@define DBDIR /etc/kubernetes
@@define LOGDIR /etc/kubernetes
database_in=file:@@{DBDIR}/aide.db.gz
database_out=file:@@{DBDIR}/aide.db.gz.new
gzip_dbout=yes
report_url=file:@@{LOGDIR}/aide.log.new
report_url=stdout
CONTENT_EX = sha512+ftype+p+u+g+n+acl+selinux+xattrs
/etc/ CONTENT_EX
!/etc/kubernetes/aide.*
/usr/bin/ CONTENT_EX
";
/// Line of the invalid attribute in [`bad_user_config`].
const BAD_LINE: usize = 9;

fn bad_user_config() -> String {
    let mut lines: Vec<&str> = USER_CONFIG.lines().collect();
    lines.insert(
        BAD_LINE - 1,
        "NORMAL = p+i+n+u+g+s+m+c+acl+selinux+xattrs+sha513+md5+XXXXXX",
    );
    lines.join("\n") + "\n"
}

fn user_config_map(name: &str, text: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "data": {"aide.conf": text}
    }))
    .expect("ConfigMap")
}

/// Invalid user config: phase Error with the line, nothing rolled out; fixed: Active again, and
/// the config change re-initialises every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_user_config_is_an_error_until_fixed() {
    let t = TestNs::new("badconf", 3).await;
    let cms = t.api::<ConfigMap>();
    cms.create(
        &PostParams::default(),
        &user_config_map("user-aide-conf", USER_CONFIG),
    )
    .await
    .expect("create the user config");
    let mut fi = t.file_integrity(FI);
    fi.spec.config.name = "user-aide-conf".into();
    fi.spec.config.namespace = t.ns.clone();
    fi.spec.config.key = "aide.conf".into();
    let s = start_scenario(t, fi).await;
    let t = &s.t;

    let conf = |cm: Option<ConfigMap>| -> String {
        cm.and_then(|c| c.data)
            .and_then(|d| d.get(names::DEFAULT_CONFIG_DATA_KEY).cloned())
            .unwrap_or_default()
    };
    let good = conf(t.get_configmap(FI).await);
    assert!(good.contains("/hostroot/etc/ CONTENT_EX"), "{good}");
    assert!(good.contains("!/hostroot/etc/kubernetes/aide.*"), "{good}");
    assert!(good.contains("/hostroot/usr/bin/ CONTENT_EX"), "{good}");
    assert!(
        good.contains("@@define DBDIR /hostroot/etc/kubernetes"),
        "{good}"
    );
    assert!(!good.lines().any(|l| l.starts_with("/etc/")), "{good}");

    // Break it.
    cms.patch(
        "user-aide-conf",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"aide.conf": bad_user_config()}})),
    )
    .await
    .expect("patch the user config");
    let fi = t.wait_phase(FI, Phase::Error, secs(30)).await;
    let msg = fi.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        msg.contains(&format!(":{BAD_LINE}:")) || msg.contains(&format!("line {BAD_LINE}")),
        "status.message names line {BAD_LINE}: {msg:?}"
    );
    assert!(msg.contains("sha513"), "status.message: {msg:?}");
    s.op.wait_metric(
        "file_integrity_operator_error_total",
        &[("error", "InvalidConfig")],
        1.0,
    )
    .await;
    // Nothing rolled out: the last good config stays, no node re-initialises.
    t.holds_for("the last good config kept", secs(INTERVAL), async || {
        let now = conf(t.get_configmap(FI).await);
        if now != good {
            return Err(format!("config changed to:\n{now}"));
        }
        for (n, root) in &s.roots {
            if !backups(root).0.is_empty() {
                return Err(format!("{n} re-initialised"));
            }
        }
        Ok(())
    })
    .await;

    // Fix it (with a difference from the first version): Active, all nodes re-initialised.
    let fixed = format!("{USER_CONFIG}# fixed\n");
    let at = Timestamp::now();
    cms.patch(
        "user-aide-conf",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"aide.conf": fixed}})),
    )
    .await
    .expect("patch the user config");
    let fi = t.wait_phase(FI, Phase::Active, secs(60)).await;
    assert!(
        fi.status
            .and_then(|s| s.message)
            .is_none_or(|m| !m.contains("sha513")),
        "stale error message"
    );
    assert!(conf(t.get_configmap(FI).await).contains("# fixed"));
    s.wait_reinit_confirmed(&t.nodes, at, secs(90)).await;
    t.wait_phase(FI, Phase::Active, secs(30)).await;
    for root in s.roots.values() {
        assert_backups(root, 1);
    }
    let text = s.op.metrics().await;
    assert_eq!(
        fio_operator::metrics::sample(
            &text,
            "file_integrity_operator_reinit_total",
            &[("by", "config"), ("node", "")]
        ),
        Some(1.0),
        "{text}"
    );
}

/// A user ConfigMap that does not exist: the defaults stay, nothing re-initialises, Active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_user_configmap_keeps_the_defaults() {
    let s = active_scenario("missingcm", 3, |_| {}).await;
    let t = &s.t;
    let default = t
        .get_configmap(FI)
        .await
        .and_then(|c| c.data)
        .expect("config ConfigMap data");
    let (seq, _) = reinit_requests(&s.fi().await);
    t.merge_patch_fi(
        FI,
        json!({"spec": {"config": {"name": "fooconf", "namespace": t.ns, "key": "fookey"}}}),
    )
    .await;
    let fis = t.api::<FileIntegrity>();
    t.holds_for(
        "Active with the default config, no re-init",
        secs(2 * INTERVAL + 5),
        async || {
            let fi = fis.get(FI).await.map_err(|e| e.to_string())?;
            let phase = fi.status.clone().unwrap_or_default().phase;
            if phase != Some(Phase::Active) {
                return Err(format!("phase {phase:?} ({:?})", fi.status));
            }
            if reinit_requests(&fi).0 != seq {
                return Err(format!("re-init requested: {:?}", fi.metadata.annotations));
            }
            let data = t.get_configmap(FI).await.and_then(|c| c.data);
            if data.as_ref() != Some(&default) {
                return Err(format!("config changed: {data:?}"));
            }
            for (n, root) in &s.roots {
                if !backups(root).0.is_empty() {
                    return Err(format!("{n} re-initialised"));
                }
            }
            Ok(())
        },
    )
    .await;
}

/// Waits until the DaemonSet's args contain `arg`, it is rolled out, and none of `old` pods
/// is left (the pods were replaced). Returns the new pods by node.
async fn wait_rolled_with(t: &TestNs, arg: &str, old: &BTreeSet<String>) -> BTreeSet<String> {
    let api = t.api::<DaemonSet>();
    let ds = ds_name();
    t.wait(
        &format!("DaemonSet {ds} rolled out with {arg}, every pod replaced"),
        secs(90),
        async || {
            let d = api.get(&ds).await.map_err(|e| e.to_string())?;
            let args = daemon_args(&d);
            if !args.iter().any(|a| a == arg) {
                return Err(format!("args {args:?}"));
            }
            let st = d.status.clone().unwrap_or_default();
            let n = t.nodes.len() as i32;
            if st.observed_generation != d.metadata.generation
                || st.updated_number_scheduled != Some(n)
                || st.number_ready != n
            {
                return Err(format!("status {st:?}"));
            }
            let all = t
                .api::<Pod>()
                .list(&ListParams::default().labels(&format!("{}={ds}", names::APP_LABEL)))
                .await
                .map_err(|e| e.to_string())?;
            let uids: BTreeSet<String> = all
                .items
                .iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            let running = t.running_pods(&ds).await?;
            if uids.is_disjoint(old) && running.len() == t.nodes.len() {
                Ok(uids)
            } else {
                Err(format!(
                    "pods {uids:?} (old {old:?}), running on {:?}",
                    running.keys().collect::<Vec<_>>()
                ))
            }
        },
    )
    .await
}

/// gracePeriod and debug changes roll the DaemonSet (new args, every pod replaced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_and_debug_changes_roll_the_daemonset() {
    let s = active_scenario("roll", 3, |_| {}).await;
    let t = &s.t;
    let (ds, pods) = t.wait_daemonset_rolled_out(&ds_name(), secs(30)).await;
    let args = daemon_args(&ds);
    assert!(args.contains(&format!("--interval={INTERVAL}")), "{args:?}");
    assert!(args.contains(&"--debug=false".to_owned()), "{args:?}");
    let old: BTreeSet<String> = pods
        .values()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();

    t.merge_patch_fi(FI, json!({"spec": {"config": {"gracePeriod": 20}}}))
        .await;
    let old = wait_rolled_with(t, "--interval=20", &old).await;
    t.wait_phase(FI, Phase::Active, secs(60)).await;

    t.merge_patch_fi(FI, json!({"spec": {"debug": true}})).await;
    wait_rolled_with(t, "--debug=true", &old).await;
    let ds = t
        .api::<DaemonSet>()
        .get(&ds_name())
        .await
        .expect("DaemonSet");
    assert!(daemon_args(&ds).contains(&"--interval=20".to_owned()));
    t.wait_phase(FI, Phase::Active, secs(60)).await;
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

/// A deleted node loses its node status; deleting the FileIntegrity removes the DaemonSet, the
/// config and the node statuses, but keeps the failure ConfigMaps.
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
            if d.is_none() && st.is_empty() && conf.is_none() {
                Ok(())
            } else {
                Err(format!(
                    "DaemonSet {}, config {}, node statuses {:?}",
                    d.is_some(),
                    conf.is_some(),
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

/// The operator crashes while a re-init is under way: every node re-initialises exactly once
/// and none is forgotten; the phase stays Initializing until the last node confirmed; a
/// restarted daemon does not re-initialise again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_restart_mid_reinit_reinitialises_each_node_once() {
    let mut s = active_scenario("restart", 3, |_| {}).await;
    let (n1, n2, n3) = (
        s.node(0).to_owned(),
        s.node(1).to_owned(),
        s.node(2).to_owned(),
    );

    // 1. Node-3's daemon is down; the request is recorded; the operator crashes.
    s.daemon(&n3).stop();
    let at = Timestamp::now();
    s.t.annotate_fi(FI, names::REINIT_ANNOTATION, "").await;
    let fis = s.t.api::<FileIntegrity>();
    let first =
        s.t.wait("the re-init request recorded", secs(30), async || {
            let fi = fis.get(FI).await.map_err(|e| e.to_string())?;
            let (_, req) = reinit_requests(&fi);
            if !has_annotation(&fi, names::REINIT_ANNOTATION) && req.len() == 3 {
                Ok(req)
            } else {
                Err(format!("{:?}", fi.metadata.annotations))
            }
        })
        .await;
    s.op.kill();
    // The daemons act on the request without the operator.
    for n in [&n1, &n2] {
        let root = s.root(n).to_path_buf();
        s.t.wait(
            &format!("{n} re-initialised on disk"),
            secs(30),
            async || {
                let (db, _) = backups(&root);
                if db.len() == 1 {
                    Ok(())
                } else {
                    Err(format!("backups {db:?}"))
                }
            },
        )
        .await;
    }
    s.op.start_again();
    s.t.wait_node_statuses(FI, "node-1 and node-2 confirmed", secs(60), |st| {
        [&n1, &n2].iter().all(|n| {
            st.get(*n).is_some_and(|x| {
                reinit_id(x) == first[*n]
                    && condition(x) == FileIntegrityNodeCondition::Succeeded
                    && after(x, Some(at))
            })
        })
    })
    .await;
    let fi = s.t.wait_phase(FI, Phase::Initializing, secs(30)).await;
    let msg = fi.status.and_then(|st| st.message).unwrap_or_default();
    assert!(
        msg.contains(&n3),
        "status.message names the node still re-initialising: {msg:?}"
    );
    // A restarted daemon does not re-initialise again.
    s.daemon(&n1).kill();
    s.daemon(&n1).start_again();
    s.t.holds_for(
        "Initializing while node-3 has not confirmed; node-1 not re-initialised again",
        secs(INTERVAL + 5),
        async || {
            let fi = fis.get(FI).await.map_err(|e| e.to_string())?;
            let phase = fi.status.unwrap_or_default().phase;
            if phase != Some(Phase::Initializing) {
                return Err(format!("phase {phase:?}"));
            }
            let (db, _) = backups(&s.roots[&n1]);
            if db.len() != 1 {
                return Err(format!("node-1 backups {db:?}"));
            }
            Ok(())
        },
    )
    .await;
    // Node-3 comes back and catches up.
    s.daemon(&n3).start_again();
    s.wait_reinit_confirmed(&s.t.nodes, at, secs(60)).await;
    s.t.wait_phase(FI, Phase::Active, secs(30)).await;
    for root in s.roots.values() {
        assert_backups(root, 1);
    }

    // 2. The operator crashes right after the annotation (before or while handling it).
    let at = Timestamp::now();
    s.t.annotate_fi(FI, names::REINIT_ANNOTATION, "").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.op.restart();
    let second = s.wait_reinit_confirmed(&s.t.nodes, at, secs(90)).await;
    assert!(
        s.t.nodes.iter().all(|n| second[n] > first[n]),
        "second request {second:?} after {first:?}"
    );
    s.t.wait_phase(FI, Phase::Active, secs(30)).await;
    s.t.holds_for(
        "exactly two re-inits per node",
        secs(2 * INTERVAL),
        async || {
            for (n, root) in &s.roots {
                let (db, log) = backups(root);
                if db.len() != 2 || log.len() != 2 {
                    return Err(format!("{n}: {db:?} {log:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
}

/// Issue 4, section 2 (tamper-evident baseline): root on a node changes a file and rewrites
/// `aide.db.gz` to match, so a plain check would find nothing. The daemon compares the database
/// with the baseline anchored off the node at the last legitimate (re-)init and does not use it;
/// the operator checks the digest each result reports as well: the node goes Errored, not
/// Succeeded, and the phase Error; a requested re-init moves the anchor and the node is
/// Succeeded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_database_is_errored_until_reinit() {
    let s = active_scenario("baseline", 2, |_| {}).await;
    let t = &s.t;
    let (n1, n2) = (s.node(0).to_owned(), s.node(1).to_owned());
    let first = t.node_statuses(FI).await.expect("node statuses");
    let anchored = first[&n2]
        .spec
        .baseline
        .clone()
        .expect("a baseline is anchored with the first result");
    assert_eq!(anchored.sha256.len(), 64, "{anchored:?}");

    // The attack: change a file, then build a database of the changed tree with the node's own
    // configuration and put it in place.
    s.change_resolv_conf(&n2);
    let root = s.root(&n2);
    let config = t
        .get_configmap(FI)
        .await
        .and_then(|cm| cm.data)
        .and_then(|mut d| d.remove(names::DEFAULT_CONFIG_DATA_KEY))
        .expect("the rendered AIDE configuration");
    let attacker_conf = root
        .parent()
        .expect("node root parent")
        .join("attacker.conf");
    fs::write(
        &attacker_conf,
        fio_api::aideconf::map_hostroot(&config, root),
    )
    .expect("write the attacker's config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fio-scanner"))
        .arg("-c")
        .arg(&attacker_conf)
        .arg("--init")
        .output()
        .expect("run fio-scanner --init");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let db = root.join("etc/kubernetes");
    fs::rename(db.join("aide.db.gz.new"), db.join("aide.db.gz")).expect("replace the database");
    let since = Timestamp::now();

    let statuses = t
        .wait_node_statuses(
            FI,
            &format!("{n2} Errored: database does not match the baseline"),
            secs(60),
            |st| {
                st.get(&n2).is_some_and(|s| {
                    condition(s) == FileIntegrityNodeCondition::Errored
                        && after(s, Some(since))
                        && s.spec
                            .last_result
                            .error_message
                            .contains("does not match the baseline recorded at")
                })
            },
        )
        .await;
    assert_eq!(
        statuses[&n2].spec.baseline.as_ref(),
        Some(&anchored),
        "anchor moved"
    );
    let text = s.op.metrics().await;
    for (name, labels) in [
        (
            "file_integrity_operator_baseline_mismatch_total",
            vec![("node", n2.as_str())],
        ),
        (
            "file_integrity_operator_node_status_error_total",
            vec![("error", "BaselineMismatch"), ("node", n2.as_str())],
        ),
    ] {
        let v = fio_operator::metrics::sample(&text, name, &labels);
        assert!(v.is_some_and(|v| v >= 1.0), "{name}: {v:?}\n{text}");
    }
    // The daemon itself read the anchor and refused to check against the rewritten database.
    let log = s.daemons[&n2].log();
    assert!(
        log.contains(&format!(
            "database on node {n2} does not match the baseline"
        )),
        "daemon log of {n2}:\n{log}"
    );
    assert_eq!(
        condition(&statuses[&n1]),
        FileIntegrityNodeCondition::Succeeded
    );
    t.wait_phase(FI, Phase::Error, secs(30)).await;
    s.op.wait_metric(
        "file_integrity_operator_error_total",
        &[("error", "NodeErrored")],
        1.0,
    )
    .await;

    // A legitimate re-init of node-2 moves the anchor; Succeeded again, phase Active.
    let at = Timestamp::now();
    t.annotate_fi(FI, names::REINIT_ANNOTATION, &n2).await;
    s.wait_reinit_confirmed(std::slice::from_ref(&n2), at, secs(60))
        .await;
    let statuses = t
        .wait_node_statuses(
            FI,
            &format!("{n2} Succeeded after re-init"),
            secs(60),
            |st| {
                st.get(&n2).is_some_and(|s| {
                    condition(s) == FileIntegrityNodeCondition::Succeeded && after(s, Some(at))
                })
            },
        )
        .await;
    let moved = statuses[&n2].spec.baseline.clone().expect("baseline");
    assert_ne!(moved.sha256, anchored.sha256);
    t.wait_phase(FI, Phase::Active, secs(30)).await;
}

/// Issue 5, section 2: in a cluster with the Prometheus operator's API, the operator (as its
/// service account) creates upstream's alert and the ServiceMonitor in its namespace at start,
/// and serves the metrics the alert reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_objects_created_when_the_api_exists() {
    cluster::install_fixture_crds("monitoring-crds.yaml").await;
    let t = TestNs::new("monitoring", 0).await;
    let op = Operator::start(&t);
    let rule =
        wait_monitoring_object(&t, "PrometheusRule", "prometheusrules", "file-integrity").await;
    let r = &rule.data["spec"]["groups"][0]["rules"][0];
    assert_eq!(r["alert"], "NodeHasIntegrityFailure", "{rule:?}");
    assert_eq!(r["labels"]["namespace"], t.ns.as_str());
    let monitor = wait_monitoring_object(&t, "ServiceMonitor", "servicemonitors", "metrics").await;
    assert_eq!(
        monitor.data["spec"]["endpoints"][0]["tlsConfig"]["serverName"],
        format!("metrics.{}.svc", t.ns).as_str()
    );
    let managers: Vec<String> = rule
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .collect();
    assert!(managers.iter().any(|m| m == "fio-operator"), "{managers:?}");
    let text = op.metrics().await;
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

async fn wait_monitoring_object(t: &TestNs, kind: &str, plural: &str, name: &str) -> DynamicObject {
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), &t.ns, &ar);
    t.wait(&format!("{kind} {name}"), secs(60), async || {
        match api.get_opt(name).await {
            Ok(Some(o)) => Ok(o),
            Ok(None) => Err("not created".into()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

// ---- MachineConfig updates (issue 5, section 1) -------------------------------------------------

/// Sets the machine-config daemon's annotations on `node` as it does during an update.
async fn set_mc_state(t: &TestNs, node: &str, current: &str, desired: &str, state: &str) {
    Api::<Node>::all(t.client.clone())
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                MC_CURRENT_CONFIG: current, MC_DESIRED_CONFIG: desired, MC_STATE: state,
            }}})),
        )
        .await
        .unwrap_or_else(|e| panic!("annotating node {node}: {e}"));
}

/// The FileIntegrity's holdoff annotation (`None`: absent).
async fn holdoff(t: &TestNs) -> Option<String> {
    t.get_fi(FI)
        .await
        .metadata
        .annotations
        .and_then(|a| a.get(names::HOLDOFF_ANNOTATION).cloned())
}

async fn wait_holdoff(t: &TestNs, want: Option<&str>) {
    t.wait(
        &format!("holdoff annotation {want:?}"),
        secs(30),
        async || {
            let h = holdoff(t).await;
            if h.as_deref() == want {
                Ok(())
            } else {
                Err(format!("{h:?}"))
            }
        },
    )
    .await;
}

/// Node-1 is updated while node-2 is not; both see a file change. Node-1 is paused (no scan
/// during the update), re-initialised exactly once after it, and Succeeded; node-2 goes Failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_config_update_pauses_the_node_and_reinitialises_it_once() {
    let s = active_scenario("mcupdate", 2, |_| {}).await;
    let t = &s.t;
    let (n1, n2) = (s.node(0).to_owned(), s.node(1).to_owned());
    // Both nodes managed by the machine-config daemon and up to date: nothing happens.
    for n in [&n1, &n2] {
        set_mc_state(t, n, "rendered-1", "rendered-1", "Done").await;
    }
    t.holds_for(
        "no pause for up-to-date nodes",
        secs(3),
        async || match holdoff(t).await {
            None => Ok(()),
            h => Err(format!("holdoff {h:?}")),
        },
    )
    .await;

    set_mc_state(t, &n1, "rendered-1", "rendered-2", "Working").await;
    wait_holdoff(t, Some(n1.as_str())).await;
    let paused_at = Timestamp::now();
    // The update's own change on node-1, and an unexpected change on node-2.
    s.change_resolv_conf(&n1);
    s.change_resolv_conf(&n2);
    s.wait_failed(&n2, 1).await;
    // Another full interval: node-1 still reports nothing new.
    tokio::time::sleep(secs(INTERVAL + 2)).await;
    let st = &t.node_statuses(FI).await.expect("node statuses")[&n1];
    assert_eq!(condition(st), FileIntegrityNodeCondition::Succeeded);
    let last = st.spec.last_result.last_probe_time.0;
    assert!(
        last <= paused_at + Duration::from_secs(2),
        "{n1} was scanned during its update: result at {last}, paused at {paused_at}"
    );
    assert!(
        s.daemons[&n1].log().contains("holding off scans on node"),
        "{}",
        s.daemons[&n1].log()
    );
    assert_eq!(
        s.fi().await.status.unwrap_or_default().phase,
        Some(Phase::Active)
    );

    let done_at = Timestamp::now();
    set_mc_state(t, &n1, "rendered-2", "rendered-2", "Done").await;
    s.wait_reinit_confirmed(std::slice::from_ref(&n1), done_at, secs(60))
        .await;
    wait_holdoff(t, None).await;
    assert_backups(s.root(&n1), 1);
    assert_backups(s.root(&n2), 0);
    let statuses = t.node_statuses(FI).await.expect("node statuses");
    assert_eq!(
        condition(&statuses[&n2]),
        FileIntegrityNodeCondition::Failed
    );
    // More Node events (kwok heartbeats, a repeated Done) bring no second re-init.
    set_mc_state(t, &n1, "rendered-2", "rendered-2", "Done").await;
    s.backups_stay(
        "one re-init of node-1",
        secs(2 * INTERVAL),
        std::slice::from_ref(&n1),
        1,
    )
    .await;
    let text = s.op.metrics().await;
    for (name, labels) in [
        (
            "file_integrity_operator_pause_total",
            vec![("node", n1.as_str())],
        ),
        (
            "file_integrity_operator_unpause_total",
            vec![("node", n1.as_str())],
        ),
        (
            "file_integrity_operator_reinit_total",
            vec![("by", "node"), ("node", n1.as_str())],
        ),
    ] {
        assert_eq!(
            fio_operator::metrics::sample(&text, name, &labels),
            Some(1.0),
            "{name}{labels:?}\n{text}"
        );
    }
}

/// A rolling update over three nodes, one at a time: node-1 with an operator crash between
/// Working and Done, node-2 ending Degraded, node-3 plainly. Each node is re-initialised exactly
/// once, only after its own update, and only the node being updated is paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_machine_config_update_with_degraded_node_and_operator_restart() {
    let mut s = active_scenario("mcroll", 3, |_| {}).await;
    let nodes = s.t.nodes.clone();
    for n in &nodes {
        set_mc_state(&s.t, n, "rendered-1", "rendered-1", "Done").await;
    }
    for (i, n) in nodes.iter().enumerate() {
        set_mc_state(&s.t, n, "rendered-1", "rendered-2", "Working").await;
        wait_holdoff(&s.t, Some(n.as_str())).await;
        s.change_resolv_conf(n);
        if i == 0 {
            // A crash mid-update: the pause survives, the re-init happens once.
            s.op.kill();
            tokio::time::sleep(secs(1)).await;
            s.op.start_again();
        }
        let end_at = Timestamp::now();
        if i == 1 {
            set_mc_state(&s.t, n, "rendered-1", "rendered-2", "Degraded").await;
        } else {
            set_mc_state(&s.t, n, "rendered-2", "rendered-2", "Done").await;
        }
        s.wait_reinit_confirmed(std::slice::from_ref(n), end_at, secs(60))
            .await;
        wait_holdoff(&s.t, None).await;
        for (j, other) in nodes.iter().enumerate() {
            assert_backups(s.root(other), usize::from(j <= i));
        }
    }
    s.wait_all_succeeded_after("the rolling update", None, secs(60))
        .await;
    s.backups_stay("one re-init per node", secs(INTERVAL + 2), &nodes, 1)
        .await;
}

/// `re-init-on-failed` re-initialises the Failed nodes only (upstream OCPBUGS-18933).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinit_on_failed_reinitialises_only_failed_nodes() {
    let s = active_scenario("onfailed", 3, |_| {}).await;
    let t = &s.t;
    let n2 = s.node(1).to_owned();
    s.change_resolv_conf(&n2);
    s.wait_failed(&n2, 1).await;
    let at = Timestamp::now();
    t.annotate_fi(FI, names::REINIT_ON_FAILED_ANNOTATION, "")
        .await;
    s.wait_reinit_confirmed(std::slice::from_ref(&n2), at, secs(60))
        .await;
    let fi = s.fi().await;
    assert!(!has_annotation(&fi, names::REINIT_ON_FAILED_ANNOTATION));
    let (_, requested) = reinit_requests(&fi);
    assert_eq!(
        requested.keys().cloned().collect::<Vec<_>>(),
        vec![n2.clone()],
        "only the Failed node is requested"
    );
    for n in &t.nodes {
        assert_backups(s.root(n), usize::from(*n == n2));
    }
}
