//! The per-test namespace [`TestNs`]: its RBAC, kwok nodes, service account identities and
//! kubeconfigs, node roots, the registry of its processes, and the clean-up (or the report of a
//! failed test) when it is dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fio_api::names;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::authentication::v1::BoundObjectReference;
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::control_plane::{deploy_docs, typed};
use super::process::ProcInner;
use super::{
    admin_client, block_on_side, client_from, env, keep, sample_node_root, secs, tail,
    NODE_SELECTOR_LABEL, TEST_IMAGE,
};

// ---- Per-test namespace -------------------------------------------------------------------------

/// A token of service account `sa` from the TokenRequest API, bound to `pod` when given (the
/// API server then puts the pod's node into the token's user info, as for a kubelet-projected
/// token).
async fn request_token(
    client: &Client,
    ns: &str,
    sa: &str,
    pod: Option<&Pod>,
) -> Result<String, String> {
    let bound_object_ref = pod.map(|p| BoundObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: p.metadata.name.clone(),
        uid: p.metadata.uid.clone(),
    });
    let tr = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(), // the apiserver's own
            expiration_seconds: Some(4 * 3600),
            bound_object_ref,
        },
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(sa, &PostParams::default(), &tr)
        .await
        .map_err(|e| e.to_string())?
        .status
        .map(|s| s.token)
        .ok_or_else(|| "no status".to_owned())
}

/// The kubelet's part for a daemon process: its pod, and a token bound to it.
#[derive(Clone)]
pub struct PodFollower {
    client: Client,
    ns: String,
}

impl PodFollower {
    /// The live pod of DaemonSet `ds` on `node`, if there is one now.
    pub async fn pod(&self, ds: &str, node: &str) -> Option<Pod> {
        let lp = ListParams::default()
            .labels(&format!("{}={ds}", names::APP_LABEL))
            .fields(&format!("spec.nodeName={node}"));
        let list = Api::<Pod>::namespaced(self.client.clone(), &self.ns)
            .list(&lp)
            .await
            .ok()?;
        list.items
            .into_iter()
            .find(|p| p.metadata.deletion_timestamp.is_none())
    }

    /// Write a daemon kubeconfig with a token bound to `pod`; false when the API refused.
    pub async fn write_kubeconfig(&self, path: &Path, pod: &Pod) -> bool {
        let sa = Identity::Daemon.service_account();
        match request_token(&self.client, &self.ns, sa, Some(pod)).await {
            Ok(token) => {
                write_token_kubeconfig(path, sa, &token, &self.ns);
                true
            }
            Err(e) => {
                eprintln!(
                    "[cluster harness] TokenRequest bound to {:?}: {e}",
                    pod.metadata.name
                );
                false
            }
        }
    }
}

/// A kubeconfig file (mode 0600, replaced atomically) with a bearer token for user `user`.
fn write_token_kubeconfig(path: &Path, user: &str, token: &str, ns: &str) {
    let env = env();
    let kc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fio-testenv", "cluster": {
            "server": env.server, "certificate-authority-data": env.ca_data}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {
            "cluster": "fio-testenv", "user": user, "namespace": ns}}],
        "current-context": user,
    });
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    f.write_all(serde_json::to_string_pretty(&kc).unwrap().as_bytes())
        .unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A service account of deploy/rbac that a process runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// `file-integrity-operator`.
    Operator,
    /// `file-integrity-daemon`.
    Daemon,
}

impl Identity {
    pub fn service_account(self) -> &'static str {
        match self {
            Identity::Operator => names::OPERATOR_SERVICE_ACCOUNT,
            Identity::Daemon => names::DAEMON_SERVICE_ACCOUNT,
        }
    }

    /// `system:serviceaccount:<ns>:<sa>`.
    pub fn username(self, ns: &str) -> String {
        format!("system:serviceaccount:{ns}:{}", self.service_account())
    }
}

fn semaphore() -> Arc<Semaphore> {
    static SEM: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SEM.get_or_init(|| {
        let n = std::env::var("FIO_TEST_CLUSTER_JOBS")
            .ok()
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(2);
        Arc::new(Semaphore::new(n))
    })
    .clone()
}

/// One test's namespace, nodes, identities, temporary directory and processes.
pub struct TestNs {
    /// The namespace (also the value of [`NODE_SELECTOR_LABEL`] on the test's nodes).
    pub ns: String,
    /// Admin client.
    pub client: Client,
    /// The test's nodes, `<ns>-node-1..N`.
    pub nodes: Vec<String>,
    /// Temporary directory: node roots, logs, kubeconfigs.
    pub dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    operator_kubeconfig: PathBuf,
    daemon_kubeconfig: PathBuf,
    cluster_role_bindings: Vec<String>,
    procs: Mutex<Vec<Arc<Mutex<ProcInner>>>>,
    _permit: OwnedSemaphorePermit,
}

impl TestNs {
    /// A fresh namespace `fio-<label>-<random>` with the RBAC of deploy/rbac and `nodes` Ready
    /// kwok nodes. Waits for a slot first (`FIO_TEST_CLUSTER_JOBS`).
    pub async fn new(label: &str, nodes: usize) -> TestNs {
        let env = env();
        let permit = semaphore()
            .acquire_owned()
            .await
            .expect("test slot semaphore closed");
        let client = admin_client().await;
        let ns = format!("fio-{label}-{}", random_suffix());
        assert!(
            ns.len() <= 50,
            "namespace name {ns} too long: shorten the label"
        );
        let base = super::target_tmp();
        fs::create_dir_all(&base).unwrap_or_else(|e| panic!("creating {}: {e}", base.display()));
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{ns}-"))
            .tempdir_in(&base)
            .expect("create the test's temporary directory");
        let dir = tmp.path().to_path_buf();
        let mut t = TestNs {
            ns: ns.clone(),
            client: client.clone(),
            nodes: (1..=nodes).map(|i| format!("{ns}-node-{i}")).collect(),
            dir: dir.clone(),
            tmp: Some(tmp),
            operator_kubeconfig: dir.join("operator.kubeconfig"),
            daemon_kubeconfig: dir.join("daemon.kubeconfig"),
            cluster_role_bindings: Vec::new(),
            procs: Mutex::new(Vec::new()),
            _permit: permit,
        };
        eprintln!(
            "[cluster harness] namespace {ns}, directory {} (control plane {})",
            dir.display(),
            env.dir.display()
        );
        t.create_namespace().await;
        t.create_rbac().await;
        t.set_operator_image(TEST_IMAGE).await;
        t.create_nodes().await;
        for id in [Identity::Operator, Identity::Daemon] {
            t.write_kubeconfig(id).await;
        }
        t.wait_nodes_ready().await;
        t
    }

    /// A namespaced API of the test's namespace (admin).
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn create_namespace(&self) {
        // The labels of deploy/namespace.yaml (Pod Security: privileged).
        let (file, doc) = deploy_docs("")
            .into_iter()
            .find(|(_, d)| d["kind"] == "Namespace")
            .expect("deploy/namespace.yaml holds a Namespace");
        let mut ns: Namespace = typed(&file, &doc);
        ns.metadata.name = Some(self.ns.clone());
        ns.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(NODE_SELECTOR_LABEL.into(), self.ns.clone());
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {}: {e}", self.ns));
    }

    /// The one image the operator's account may run DaemonSets with: the installer's Role
    /// `file-integrity-operator-image` (deploy/rbac/operator_image_role.yaml) naming `image`, as
    /// kustomize or an OLM bundle would; the admission policy on the operator's account admits
    /// no other.
    pub async fn set_operator_image(&self, image: &str) {
        let name = names::OPERATOR_IMAGE_ROLE;
        let role = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": self.ns},
            "rules": [{
                "apiGroups": [names::GROUP], "resources": [names::DAEMON_IMAGES],
                "resourceNames": [image], "verbs": ["use"]
            }]
        });
        self.api::<Role>()
            .patch(
                name,
                &PatchParams::apply("fio-test").force(),
                &Patch::Apply(&role),
            )
            .await
            .unwrap_or_else(|e| panic!("apply Role {name} in {}: {e}", self.ns));
    }

    /// deploy/rbac re-targeted: namespaced objects into the test namespace (and RoleBinding
    /// subjects with them), ClusterRoleBindings copied as `<name>-<ns>` to the test's accounts.
    async fn create_rbac(&mut self) {
        self.install_rbac(deploy_docs("rbac")).await;
    }

    /// RBAC documents of `deploy/` installed as [`TestNs::create_rbac`] does (ClusterRoles
    /// applied, the same for every test); deleted with the namespace.
    pub async fn install_rbac(&mut self, docs: Vec<(String, Value)>) {
        let pp = PostParams::default();
        for (file, doc) in docs {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let what = format!("{kind} {name} ({file}) in {}", self.ns);
            match kind.as_str() {
                "ServiceAccount" => {
                    let mut o: ServiceAccount = typed(&file, &doc);
                    o.metadata.namespace = Some(self.ns.clone());
                    self.api::<ServiceAccount>()
                        .create(&pp, &o)
                        .await
                        .unwrap_or_else(|e| panic!("create {what}: {e}"));
                }
                "Role" => {
                    let mut o: Role = typed(&file, &doc);
                    o.metadata.namespace = Some(self.ns.clone());
                    self.api::<Role>()
                        .create(&pp, &o)
                        .await
                        .unwrap_or_else(|e| panic!("create {what}: {e}"));
                }
                "RoleBinding" => {
                    let mut o: RoleBinding = typed(&file, &doc);
                    o.metadata.namespace = Some(self.ns.clone());
                    for s in o.subjects.iter_mut().flatten() {
                        if s.kind == "ServiceAccount" {
                            s.namespace = Some(self.ns.clone());
                        }
                    }
                    self.api::<RoleBinding>()
                        .create(&pp, &o)
                        .await
                        .unwrap_or_else(|e| panic!("create {what}: {e}"));
                }
                "ClusterRoleBinding" => {
                    let mut o: ClusterRoleBinding = typed(&file, &doc);
                    let copy = format!("{name}-{}", self.ns);
                    o.metadata.name = Some(copy.clone());
                    o.metadata
                        .labels
                        .get_or_insert_with(Default::default)
                        .insert(NODE_SELECTOR_LABEL.into(), self.ns.clone());
                    for s in o.subjects.iter_mut().flatten() {
                        if s.kind == "ServiceAccount" {
                            s.namespace = Some(self.ns.clone());
                        }
                    }
                    Api::<ClusterRoleBinding>::all(self.client.clone())
                        .create(&pp, &o)
                        .await
                        .unwrap_or_else(|e| panic!("create {what} as {copy}: {e}"));
                    self.cluster_role_bindings.push(copy);
                }
                // Cluster-wide and the same for every test: applied (idempotent).
                // kubectl's own field manager: `kubectl apply --server-side -k deploy/` (the
                // dry-run test) then co-owns it instead of conflicting.
                "ValidatingAdmissionPolicy" => {
                    let _: ValidatingAdmissionPolicy = typed(&file, &doc);
                    Api::<ValidatingAdmissionPolicy>::all(self.client.clone())
                        .patch(
                            &name,
                            &PatchParams::apply("kubectl").force(),
                            &Patch::Apply(&doc),
                        )
                        .await
                        .unwrap_or_else(|e| panic!("apply {what}: {e}"));
                }
                // Cluster-wide as the policy (its match conditions select the accounts of the
                // request's namespace): applied, the same for every test.
                "ValidatingAdmissionPolicyBinding" => {
                    let _: ValidatingAdmissionPolicyBinding = typed(&file, &doc);
                    Api::<ValidatingAdmissionPolicyBinding>::all(self.client.clone())
                        .patch(
                            &name,
                            &PatchParams::apply("kubectl").force(),
                            &Patch::Apply(&doc),
                        )
                        .await
                        .unwrap_or_else(|e| panic!("apply {what}: {e}"));
                }
                // Also applied once per run (apply_cluster_roles); idempotent.
                "ClusterRole" => {
                    let o: ClusterRole = typed(&file, &doc);
                    Api::<ClusterRole>::all(self.client.clone())
                        .patch(
                            &name,
                            &PatchParams::apply("kubectl").force(),
                            &Patch::Apply(&o),
                        )
                        .await
                        .unwrap_or_else(|e| panic!("apply {what}: {e}"));
                }
                "Secret" => {
                    let mut o: Secret = typed(&file, &doc);
                    o.metadata.namespace = Some(self.ns.clone());
                    self.api::<Secret>()
                        .create(&pp, &o)
                        .await
                        .unwrap_or_else(|e| panic!("create {what}: {e}"));
                }
                other => panic!("{file}: unexpected kind {other} in deploy/rbac"),
            }
        }
    }

    async fn create_nodes(&self) {
        for node in &self.nodes {
            self.create_node(node).await;
        }
    }

    /// One more kwok node `<ns>-node-<n+1>` (a scale-up), Ready; returns its name.
    pub async fn add_node(&mut self) -> String {
        let node = format!("{}-node-{}", self.ns, self.nodes.len() + 1);
        self.create_node(&node).await;
        self.nodes.push(node.clone());
        self.wait_nodes_ready().await;
        node
    }

    /// Sets the node's taints (JSON list of `{key, value?, effect}`).
    pub async fn taint_node(&self, node: &str, taints: Value) {
        Api::<Node>::all(self.client.clone())
            .patch(
                node,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"taints": taints}})),
            )
            .await
            .unwrap_or_else(|e| panic!("taint node {node}: {e}"));
    }

    async fn create_node(&self, node: &str) {
        let api: Api<Node> = Api::all(self.client.clone());
        {
            let n: Node = serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node,
                    "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
                    "labels": {
                        "kubernetes.io/hostname": node,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                        NODE_SELECTOR_LABEL: self.ns,
                    }
                },
                "spec": {},
                "status": {
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    "nodeInfo": {
                        "architecture": "amd64", "operatingSystem": "linux",
                        "kubeletVersion": "fake", "kubeProxyVersion": "fake", "bootID": "",
                        "containerRuntimeVersion": "", "kernelVersion": "", "machineID": "",
                        "osImage": "", "systemUUID": ""
                    },
                    "phase": "Running"
                }
            }))
            .expect("node manifest");
            api.create(&PostParams::default(), &n)
                .await
                .unwrap_or_else(|e| panic!("create kwok node {node}: {e}"));
        }
    }

    async fn wait_nodes_ready(&self) {
        let api: Api<Node> = Api::all(self.client.clone());
        let n = self.nodes.len();
        let lp = self.node_list_params();
        self.wait(&format!("{n} kwok node(s) Ready"), secs(60), async || {
            let nodes = api.list(&lp).await.map_err(|e| e.to_string())?;
            let ready: Vec<_> = nodes
                .items
                .iter()
                .filter(|n| node_ready(n))
                .filter_map(|n| n.metadata.name.clone())
                .collect();
            if ready.len() == n {
                Ok(())
            } else {
                Err(format!("ready: {ready:?}"))
            }
        })
        .await;
    }

    fn node_list_params(&self) -> ListParams {
        ListParams::default().labels(&format!("{NODE_SELECTOR_LABEL}={}", self.ns))
    }

    /// The nodeSelector that selects exactly this test's nodes.
    pub fn node_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(NODE_SELECTOR_LABEL.to_owned(), self.ns.clone())])
    }

    // ---- identities ----

    /// The kubeconfig file of a service account (bearer token from the TokenRequest API).
    pub fn kubeconfig(&self, id: Identity) -> &Path {
        match id {
            Identity::Operator => &self.operator_kubeconfig,
            Identity::Daemon => &self.daemon_kubeconfig,
        }
    }

    async fn write_kubeconfig(&self, id: Identity) {
        let token = self.token(id.service_account(), None).await;
        write_token_kubeconfig(self.kubeconfig(id), id.service_account(), &token, &self.ns);
    }

    /// A token of service account `sa` of the namespace (bound to `pod` when given).
    pub async fn token(&self, sa: &str, pod: Option<&Pod>) -> String {
        request_token(&self.client, &self.ns, sa, pod)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {}/{sa}: {e}", self.ns))
    }

    /// What a daemon's kubelet stand-in needs ([`PodFollower`]).
    pub fn follower(&self) -> PodFollower {
        PodFollower {
            client: self.client.clone(),
            ns: self.ns.clone(),
        }
    }

    /// The daemon pod of DaemonSet `ds` on `node`, once it exists (`None` after `timeout`).
    pub async fn daemon_pod(&self, ds: &str, node: &str, timeout: Duration) -> Option<Pod> {
        let f = self.follower();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(p) = f.pod(ds, node).await {
                return Some(p);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A kubeconfig at `path` for the daemon service account with a token bound to `pod`, as
    /// the kubelet gives the daemon container on its node.
    pub async fn write_pod_kubeconfig(&self, path: &Path, pod: &Pod) {
        assert!(
            self.follower().write_kubeconfig(path, pod).await,
            "TokenRequest bound to pod {:?} failed",
            pod.metadata.name
        );
    }

    /// A client authenticated as the service account.
    pub async fn client_as(&self, id: Identity) -> Client {
        client_from(self.kubeconfig(id)).await
    }

    /// Who the API server says `client` is (SelfSubjectReview).
    pub async fn whoami(client: &Client) -> String {
        let review: SelfSubjectReview = serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"
        }))
        .expect("SelfSubjectReview");
        Api::<SelfSubjectReview>::all(client.clone())
            .create(&PostParams::default(), &review)
            .await
            .expect("SelfSubjectReview")
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_default()
    }

    // ---- node roots ----

    /// A sample node root for `node` under the test directory (see [`sample_node_root`]).
    pub fn node_root(&self, node: &str) -> PathBuf {
        sample_node_root(&self.dir.join("roots"), node)
    }

    // ---- processes ----

    pub(super) fn register(&self, p: &Arc<Mutex<ProcInner>>) {
        self.procs
            .lock()
            .expect("process registry")
            .push(Arc::clone(p));
    }

    /// Panics (with its log) when a process expected to run has exited.
    pub fn check_processes(&self) {
        for p in self.procs.lock().expect("process registry").iter() {
            let mut p = p.lock().expect("process state");
            if !p.expect_running {
                continue;
            }
            if let Some(child) = p.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    p.expect_running = false;
                    panic!(
                        "{} exited unexpectedly ({status}); last lines of {}:\n{}",
                        p.name,
                        p.log.display(),
                        tail(&p.log, 60)
                    );
                }
            }
        }
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        // Kill whatever still runs (normally the Operator/Daemon guards did that already).
        let procs = std::mem::take(&mut *self.procs.lock().unwrap_or_else(|p| p.into_inner()));
        for p in &procs {
            p.lock().unwrap_or_else(|p| p.into_inner()).kill();
        }
        if panicking {
            let mut out = format!(
                "\n==== test failed: namespace {}, directory {} ====\n",
                self.ns,
                self.dir.display()
            );
            for p in &procs {
                let p = p.lock().unwrap_or_else(|p| p.into_inner());
                let _ = writeln!(
                    out,
                    "---- {} ({}), last lines ----\n{}",
                    p.name,
                    p.log.display(),
                    tail(&p.log, 40)
                );
            }
            let ns = self.ns.clone();
            let kubeconfig = env().admin_kubeconfig.clone();
            let dump = std::panic::catch_unwind(|| {
                block_on_side(async move {
                    let client = client_from(&kubeconfig).await;
                    TestNs::dump(client, &ns).await
                })
            })
            .unwrap_or_else(|_| "(could not read the namespace)".into());
            let _ = writeln!(out, "---- objects in {} ----\n{dump}", self.ns);
            eprintln!("{out}");
        }
        if keep() {
            if let Some(tmp) = self.tmp.take() {
                let _ = tmp.keep();
            }
            eprintln!(
                "[cluster harness] FIO_TEST_KEEP=1: kept namespace {}, its nodes, ClusterRoleBindings {:?} and {}",
                self.ns,
                self.cluster_role_bindings,
                self.dir.display()
            );
            return;
        }
        let ns = self.ns.clone();
        let crbs = self.cluster_role_bindings.clone();
        let lp = self.node_list_params();
        let kubeconfig = env().admin_kubeconfig.clone();
        let result = std::panic::catch_unwind(|| {
            block_on_side(async move {
                let client = client_from(&kubeconfig).await;
                let dp = DeleteParams::default();
                let mut errors = Vec::new();
                if let Err(e) = Api::<Namespace>::all(client.clone()).delete(&ns, &dp).await {
                    errors.push(format!("delete namespace {ns}: {e}"));
                }
                // Pods on kwok nodes are finalised by kwok, which stops managing them once their
                // node is gone (podgc would force-delete them only minutes later): delete them
                // at once, before the nodes.
                if let Err(e) = Api::<Pod>::namespaced(client.clone(), &ns)
                    .delete_collection(
                        &DeleteParams::default().grace_period(0),
                        &ListParams::default(),
                    )
                    .await
                {
                    errors.push(format!("delete pods in {ns}: {e}"));
                }
                if let Err(e) = Api::<Node>::all(client.clone())
                    .delete_collection(&dp, &lp)
                    .await
                {
                    errors.push(format!("delete nodes of {ns}: {e}"));
                }
                for crb in crbs {
                    if let Err(e) = Api::<ClusterRoleBinding>::all(client.clone())
                        .delete(&crb, &dp)
                        .await
                    {
                        errors.push(format!("delete ClusterRoleBinding {crb}: {e}"));
                    }
                }
                errors
            })
        });
        match result {
            Ok(errors) if errors.is_empty() => {}
            Ok(errors) => eprintln!("[cluster harness] clean-up: {}", errors.join("; ")),
            Err(_) => eprintln!("[cluster harness] clean-up of {} panicked", self.ns),
        }
    }
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn random_suffix() -> String {
    let mut b = [0u8; 4];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        b = (t ^ std::process::id()).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect::<String>()[..7].to_owned()
}
