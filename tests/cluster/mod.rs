//! Harness for the end-to-end tests against a real control plane (`tests/operator.rs`).
//!
//! * [`env`]: the control plane, once per test binary. The one described by
//!   `$FIO_TESTENV_DIR/env` (default `/tmp/fio-testenv`, written by `scripts/testenv.sh up`) is
//!   used when `scripts/testenv.sh status` says that every component runs and `/readyz` answers.
//!   Otherwise the harness runs `scripts/testenv.sh build` (cached; only when `testenv.sh bin`
//!   says it is not built) and `up`, and runs `down` when the test binary exits, unless
//!   `FIO_TEST_KEEP=1`. The CRDs of `deploy/crds` and the ClusterRoles of `deploy/rbac` are
//!   server-side applied once (CRDs waited for until Established).
//! * [`TestNs`]: per test, a unique namespace with the ServiceAccounts, Roles and RoleBindings of
//!   `deploy/rbac` re-targeted to it, a ClusterRoleBinding `<name>-<ns>` for each ClusterRoleBinding
//!   of `deploy/rbac` (the operator's), kwok nodes `<ns>-node-1..N` labelled
//!   [`NODE_SELECTOR_LABEL`]`=<ns>` (the FileIntegrity's nodeSelector, so that tests never see each
//!   other's nodes), token kubeconfigs of both service accounts ([`Identity`]), a temporary
//!   directory for node roots and logs. Everything is deleted when it is dropped, unless
//!   `FIO_TEST_KEEP=1`. When the test panics, the tails of all process logs and a summary of the
//!   namespace's objects are printed.
//! * [`Operator`] and [`Daemon`]: `fio-operator run` and `fio-operator daemon --owner ...` as local
//!   processes that authenticate as their service accounts (so a missing or excess permission in
//!   `deploy/rbac` shows), killed when dropped. A process that exits while it is expected to run
//!   fails the next [`TestNs::wait`] with its log.
//! * [`sample_node_root`]: a small host tree for one simulated node.
//!
//! Environment: `FIO_TESTENV_DIR` (control plane directory), `FIO_TEST_KEEP=1` (keep namespaces,
//! nodes, temporary directories and a control plane the harness started),
//! `FIO_TEST_CLUSTER_JOBS` (tests holding a namespace at the same time, default 2),
//! `FIO_TEST_TIMEOUT_FACTOR` (multiplies every wait, default 1), `FIO_TEST_DAEMON_LOG` (`FIO_LOG`
//! of the daemons), `FIO_TEST_OPERATOR_LOG` (`FIO_LOG` of the operator, default debug).

#![allow(dead_code)] // each test binary uses a part of the harness

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fio_api::{names, FileIntegrity, FileIntegrityNodeStatus, FileIntegrityStatusPhase};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Image the operator is told to run the daemon with (`RELATED_IMAGE_OPERATOR`). kwok never
/// pulls it.
pub const TEST_IMAGE: &str = "quay.io/file-integrity-operator/file-integrity-operator:test";
/// Label on every node of a test (value: the test's namespace); the FileIntegrity objects of a
/// test select their nodes with it.
pub const NODE_SELECTOR_LABEL: &str = "fio-test";
/// Field manager of the harness's server-side applies.
const FIELD_MANAGER: &str = "fio-tests";
/// How often waits poll.
const POLL: Duration = Duration::from_millis(250);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn keep() -> bool {
    std::env::var("FIO_TEST_KEEP").is_ok_and(|v| v == "1")
}

/// `secs` seconds, times `FIO_TEST_TIMEOUT_FACTOR` (default 1).
pub fn secs(secs: u64) -> Duration {
    let factor = std::env::var("FIO_TEST_TIMEOUT_FACTOR")
        .ok()
        .and_then(|f| f.parse::<f64>().ok())
        .filter(|f| *f > 0.0)
        .unwrap_or(1.0);
    Duration::from_secs_f64(secs as f64 * factor)
}

/// Runs `fut` to completion on a fresh current-thread runtime in another thread, from sync code
/// or from inside another runtime (where `block_on` would panic). Used for the one-time setup and
/// for the clean-up in `Drop`; the kube `Client`s used there are created inside `fut`, because a
/// client belongs to the runtime it was created on.
pub fn block_on_side<F>(fut: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a tokio runtime for the harness")
                .block_on(fut)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

// ---- The control plane --------------------------------------------------------------------------

/// The running control plane.
#[derive(Debug)]
pub struct Env {
    /// `$FIO_TESTENV_DIR`.
    pub dir: PathBuf,
    /// The admin kubeconfig (client certificate in `system:masters`).
    pub admin_kubeconfig: PathBuf,
    /// The testenv bin directory (kubectl, kube-apiserver, ...).
    pub bin: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// Base64 PEM of the cluster CA, as in the admin kubeconfig.
    pub ca_data: String,
    /// Whether this test binary started it (and stops it at exit).
    pub started_here: bool,
}

static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
static STARTED_DIR: OnceLock<PathBuf> = OnceLock::new();

/// The control plane, started and prepared on first use (see the module documentation).
pub fn env() -> &'static Env {
    match ENV.get_or_init(init_env) {
        Ok(env) => env,
        Err(e) => panic!("control plane not available: {e}"),
    }
}

fn testenv_dir() -> PathBuf {
    std::env::var_os("FIO_TESTENV_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/fio-testenv"))
}

fn testenv(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(repo().join("scripts/testenv.sh"));
    cmd.args(args)
        .env("FIO_TESTENV_DIR", dir)
        .stdin(Stdio::null());
    cmd
}

/// Runs `scripts/testenv.sh ARGS`, its output going to the terminal (builds take minutes).
fn testenv_loud(dir: &Path, args: &[&str]) -> Result<(), String> {
    let status = testenv(dir, args)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run scripts/testenv.sh: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "scripts/testenv.sh {} failed: {status}",
            args.join(" ")
        ))
    }
}

fn testenv_quiet(dir: &Path, args: &[&str]) -> bool {
    testenv(dir, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

extern "C" fn stop_control_plane() {
    if let Some(dir) = STARTED_DIR.get() {
        eprintln!(
            "[cluster harness] stopping the control plane it started ({})",
            dir.display()
        );
        let _ = testenv_loud(dir, &["down"]);
    }
}

fn init_env() -> Result<Env, String> {
    let dir = testenv_dir();
    let mut started_here = false;
    if !testenv_quiet(&dir, &["status"]) {
        if !testenv_quiet(&dir, &["bin"]) {
            eprintln!("[cluster harness] building the control plane (scripts/testenv.sh build; cached after the first time)");
            testenv_loud(&dir, &["build"])?;
        }
        eprintln!(
            "[cluster harness] starting the control plane in {}",
            dir.display()
        );
        testenv_loud(&dir, &["up"])?;
        started_here = true;
        if keep() {
            eprintln!(
                "[cluster harness] FIO_TEST_KEEP=1: the control plane keeps running (scripts/testenv.sh down)"
            );
        } else {
            let _ = STARTED_DIR.set(dir.clone());
            // SAFETY: registers a plain extern "C" function without captured state.
            if unsafe { libc::atexit(stop_control_plane) } != 0 {
                return Err("atexit failed".into());
            }
        }
    }
    let env_file = dir.join("env");
    let text = fs::read_to_string(&env_file).map_err(|e| {
        format!(
            "{}: {e} (scripts/testenv.sh up writes it)",
            env_file.display()
        )
    })?;
    let vars: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .collect();
    let var = |k: &str| {
        vars.get(k)
            .map(|v| v.trim_matches('"').to_owned())
            .ok_or_else(|| format!("{}: no {k}", env_file.display()))
    };
    let admin_kubeconfig = PathBuf::from(var("KUBECONFIG")?);
    let bin = PathBuf::from(var("FIO_TESTENV_BIN")?);
    let kc = Kubeconfig::read_from(&admin_kubeconfig)
        .map_err(|e| format!("{}: {e}", admin_kubeconfig.display()))?;
    let cluster = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| format!("{}: no cluster", admin_kubeconfig.display()))?;
    let server = cluster
        .server
        .clone()
        .ok_or_else(|| format!("{}: no server", admin_kubeconfig.display()))?;
    let ca_data = cluster.certificate_authority_data.clone().ok_or_else(|| {
        format!(
            "{}: no certificate-authority-data",
            admin_kubeconfig.display()
        )
    })?;
    let env = Env {
        dir,
        admin_kubeconfig,
        bin,
        server,
        ca_data,
        started_here,
    };
    block_on_side(async {
        let client = client_from(&env.admin_kubeconfig).await;
        apply_crds(&client).await;
        apply_cluster_roles(&client).await;
    });
    Ok(env)
}

/// A client from a kubeconfig file (admin or a service account's).
pub async fn client_from(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", kubeconfig.display()));
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("load kubeconfig {}: {e}", kubeconfig.display()));
    Client::try_from(config).unwrap_or_else(|e| panic!("client from {}: {e}", kubeconfig.display()))
}

/// The admin client (for the test's own calls: create FileIntegrity objects, read state).
pub async fn admin_client() -> Client {
    client_from(&env().admin_kubeconfig).await
}

/// The documents of every YAML file in `deploy/<sub>`, sorted by file name.
fn deploy_docs(sub: &str) -> Vec<(String, Value)> {
    let dir = repo().join("deploy").join(sub);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("read deploy dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", f.display()));
        let name = f.strip_prefix(repo()).unwrap_or(&f).display().to_string();
        out.extend(
            docs.into_iter()
                .filter(|d| !d.is_null())
                .map(|d| (name.clone(), d)),
        );
    }
    out
}

fn typed<T: serde::de::DeserializeOwned>(file: &str, doc: &Value) -> T {
    serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{file}: {} {}: {e}", doc["kind"], doc["metadata"]["name"]))
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply_crds(client: &Client) {
    apply_crd_docs(client, deploy_docs("crds")).await;
}

/// Install the CustomResourceDefinitions of `tests/fixtures/<file>` (APIs of other projects that
/// the operator uses when a cluster has them) and wait until they are Established.
pub async fn install_fixture_crds(file: &str) {
    let path = repo().join("tests/fixtures").join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()));
    let docs = docs
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|d| (file.to_owned(), d))
        .collect();
    apply_crd_docs(&admin_client().await, docs).await;
}

async fn apply_crd_docs(client: &Client, docs: Vec<(String, Value)>) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for (file, doc) in docs {
        let crd: CustomResourceDefinition = typed(&file, &doc);
        let name = crd.metadata.name.clone().expect("CRD without a name");
        api.patch(&name, &apply_params(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("server-side apply of CRD {name} ({file}): {e}"));
        names.push(name);
    }
    let deadline = Instant::now() + secs(60);
    for name in names {
        loop {
            let crd = api
                .get(&name)
                .await
                .unwrap_or_else(|e| panic!("get CRD {name}: {e}"));
            let established = crd
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "CRD {name} not Established after 60 s: {:?}",
                crd.status
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The ClusterRoles of deploy/rbac (the operator's and the user-facing editor/viewer roles),
/// server-side applied so that edits of the manifests reach a reused control plane.
async fn apply_cluster_roles(client: &Client) {
    let api: Api<ClusterRole> = Api::all(client.clone());
    for (file, doc) in deploy_docs("rbac") {
        if doc["kind"] == "ClusterRole" {
            let role: ClusterRole = typed(&file, &doc);
            let name = role
                .metadata
                .name
                .clone()
                .expect("ClusterRole without a name");
            api.patch(&name, &apply_params(), &Patch::Apply(&role))
                .await
                .unwrap_or_else(|e| {
                    panic!("server-side apply of ClusterRole {name} ({file}): {e}")
                });
        }
    }
}

// ---- Per-test namespace -------------------------------------------------------------------------

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
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(&base).expect("create CARGO_TARGET_TMPDIR");
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

    /// deploy/rbac re-targeted: namespaced objects into the test namespace (and RoleBinding
    /// subjects with them), ClusterRoleBindings copied as `<name>-<ns>` to the test's accounts.
    async fn create_rbac(&mut self) {
        let pp = PostParams::default();
        for (file, doc) in deploy_docs("rbac") {
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
                // ClusterRoles: applied once per run (apply_cluster_roles).
                "ClusterRole" => {}
                other => panic!("{file}: unexpected kind {other} in deploy/rbac"),
            }
        }
    }

    async fn create_nodes(&self) {
        let api: Api<Node> = Api::all(self.client.clone());
        for node in &self.nodes {
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
        let sa = id.service_account();
        let tr = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(), // the apiserver's own
                expiration_seconds: Some(4 * 3600),
                bound_object_ref: None,
            },
            ..Default::default()
        };
        let token = self
            .api::<ServiceAccount>()
            .create_token_request(sa, &PostParams::default(), &tr)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {}/{sa}: {e}", self.ns))
            .status
            .unwrap_or_else(|| panic!("TokenRequest for {}/{sa}: no status", self.ns))
            .token;
        let env = env();
        let kc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fio-testenv", "cluster": {
                "server": env.server, "certificate-authority-data": env.ca_data}}],
            "users": [{"name": sa, "user": {"token": token}}],
            "contexts": [{"name": sa, "context": {
                "cluster": "fio-testenv", "user": sa, "namespace": self.ns}}],
            "current-context": sa,
        });
        let path = self.kubeconfig(id);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f.write_all(serde_json::to_string_pretty(&kc).unwrap().as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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

    fn register(&self, p: &Arc<Mutex<ProcInner>>) {
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

    // ---- waiting ----

    /// Polls `attempt` until it returns `Ok`, at most `limit`; panics with `what` and the last
    /// state `attempt` reported (its `Err`) on timeout. Fails early when a registered process
    /// exited.
    pub async fn wait<T>(
        &self,
        what: &str,
        limit: Duration,
        mut attempt: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        let start = Instant::now();
        loop {
            self.check_processes();
            let last = match attempt().await {
                Ok(v) => return v,
                Err(state) => state,
            };
            if start.elapsed() >= limit {
                panic!(
                    "timed out after {:.0?} waiting for {what}\nlast observed: {last}",
                    limit
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Checks `check` repeatedly for `duration`: it must hold every time (for "stays so").
    pub async fn holds_for(
        &self,
        what: &str,
        duration: Duration,
        mut check: impl AsyncFnMut() -> Result<(), String>,
    ) {
        let start = Instant::now();
        while start.elapsed() < duration {
            self.check_processes();
            if let Err(state) = check().await {
                panic!(
                    "{what} stopped holding after {:.1?}: {state}",
                    start.elapsed()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    // ---- FileIntegrity helpers ----

    /// A FileIntegrity selecting this test's nodes, gracePeriod 10 (the minimum), debug off.
    pub fn file_integrity(&self, name: &str) -> FileIntegrity {
        let mut fi = FileIntegrity::new(name, Default::default());
        fi.metadata.namespace = Some(self.ns.clone());
        fi.spec.node_selector = self.node_selector();
        fi.spec.config.grace_period = 10;
        fi.spec.debug = false;
        fi
    }

    pub async fn create_fi(&self, fi: &FileIntegrity) -> FileIntegrity {
        self.api::<FileIntegrity>()
            .create(&PostParams::default(), fi)
            .await
            .unwrap_or_else(|e| panic!("create FileIntegrity {:?}: {e}", fi.metadata.name))
    }

    pub async fn get_fi(&self, name: &str) -> FileIntegrity {
        self.api::<FileIntegrity>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get FileIntegrity {name}: {e}"))
    }

    /// JSON merge patch of a FileIntegrity (spec or metadata) as admin.
    pub async fn merge_patch_fi(&self, name: &str, patch: Value) -> FileIntegrity {
        self.api::<FileIntegrity>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch FileIntegrity {name} with {patch}: {e}"))
    }

    /// `kubectl annotate fileintegrities/<name> <key>=<value>`.
    pub async fn annotate_fi(&self, name: &str, key: &str, value: &str) {
        self.merge_patch_fi(name, json!({"metadata": {"annotations": {key: value}}}))
            .await;
    }

    /// Waits for `status.phase == phase`; returns the object.
    pub async fn wait_phase(
        &self,
        fi: &str,
        phase: FileIntegrityStatusPhase,
        limit: Duration,
    ) -> FileIntegrity {
        let api = self.api::<FileIntegrity>();
        self.wait(
            &format!("FileIntegrity {fi} phase {phase}"),
            limit,
            async || {
                let o = api.get(fi).await.map_err(|e| e.to_string())?;
                let status = o.status.clone().unwrap_or_default();
                if status.phase == Some(phase) {
                    Ok(o)
                } else {
                    Err(format!(
                        "phase {:?}, message {:?}, annotations {:?}",
                        status.phase, status.message, o.metadata.annotations
                    ))
                }
            },
        )
        .await
    }

    /// The node statuses of `fi` by node name (label owner=<fi>).
    pub async fn node_statuses(
        &self,
        fi: &str,
    ) -> Result<BTreeMap<String, FileIntegrityNodeStatus>, String> {
        let lp = ListParams::default().labels(&format!("{}={fi}", names::OWNER_LABEL));
        let list = self
            .api::<FileIntegrityNodeStatus>()
            .list(&lp)
            .await
            .map_err(|e| format!("list node statuses: {e}"))?;
        Ok(list
            .items
            .into_iter()
            .map(|s| (s.spec.node_name.clone(), s))
            .collect())
    }

    /// Waits until `pred` holds for the node statuses of `fi`; returns them.
    pub async fn wait_node_statuses(
        &self,
        fi: &str,
        what: &str,
        limit: Duration,
        pred: impl Fn(&BTreeMap<String, FileIntegrityNodeStatus>) -> bool,
    ) -> BTreeMap<String, FileIntegrityNodeStatus> {
        self.wait(
            &format!("node statuses of {fi}: {what}"),
            limit,
            async || {
                let s = self.node_statuses(fi).await?;
                if pred(&s) {
                    Ok(s)
                } else {
                    Err(summarize_node_statuses(&s))
                }
            },
        )
        .await
    }

    /// The pods of a DaemonSet (label `app=<ds>`) that are Running, by node.
    pub async fn running_pods(&self, ds: &str) -> Result<BTreeMap<String, Pod>, String> {
        let pods = self
            .api::<Pod>()
            .list(&ListParams::default().labels(&format!("{}={ds}", names::APP_LABEL)))
            .await
            .map_err(|e| format!("list pods app={ds}: {e}"))?;
        Ok(pods
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter_map(|p| Some((p.spec.as_ref()?.node_name.clone()?, p)))
            .collect())
    }

    /// Waits until the DaemonSet `ds` is fully rolled out (observedGeneration current, every
    /// desired pod updated and ready, `n` desired) and one Running pod of it is on each of the
    /// test's nodes; returns the DaemonSet and the pods by node.
    pub async fn wait_daemonset_rolled_out(
        &self,
        ds: &str,
        limit: Duration,
    ) -> (DaemonSet, BTreeMap<String, Pod>) {
        let api = self.api::<DaemonSet>();
        let n = self.nodes.len() as i32;
        self.wait(
            &format!("DaemonSet {ds} rolled out with a Running pod on each of {n} nodes"),
            limit,
            async || {
                let d = api.get(ds).await.map_err(|e| format!("get {ds}: {e}"))?;
                let st = d.status.clone().unwrap_or_default();
                let generation = d.metadata.generation.unwrap_or(0);
                let rolled = st.observed_generation == Some(generation)
                    && st.desired_number_scheduled == n
                    && st.updated_number_scheduled == Some(n)
                    && st.number_ready == n
                    && st.number_available == Some(n);
                let pods = self.running_pods(ds).await?;
                let on_nodes = self.nodes.iter().all(|node| pods.contains_key(node));
                if rolled && on_nodes && pods.len() == self.nodes.len() {
                    Ok((d, pods))
                } else {
                    Err(format!(
                        "generation {generation}, status {st:?}, running pods on {:?}",
                        pods.keys().collect::<Vec<_>>()
                    ))
                }
            },
        )
        .await
    }

    pub async fn get_configmap(&self, name: &str) -> Option<ConfigMap> {
        self.api::<ConfigMap>()
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("get ConfigMap {name}: {e}"))
    }

    /// Summary of the namespace's objects (printed when a test fails).
    async fn dump(client: Client, ns: &str) -> String {
        let mut out = String::new();
        let fis: Api<FileIntegrity> = Api::namespaced(client.clone(), ns);
        if let Ok(list) = fis.list(&ListParams::default()).await {
            for fi in list {
                let _ = writeln!(
                    out,
                    "FileIntegrity {}: annotations {}, spec {}, status {}",
                    fi.metadata.name.as_deref().unwrap_or("?"),
                    json!(fi.metadata.annotations),
                    json!(fi.spec),
                    json!(fi.status)
                );
            }
        }
        let st: Api<FileIntegrityNodeStatus> = Api::namespaced(client.clone(), ns);
        if let Ok(list) = st.list(&ListParams::default()).await {
            let map = list
                .items
                .into_iter()
                .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
                .collect();
            let _ = writeln!(out, "node statuses: {}", summarize_node_statuses(&map));
        }
        let ds: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
        if let Ok(list) = ds.list(&ListParams::default()).await {
            for d in list {
                let args = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref())
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.args.clone());
                let _ = writeln!(
                    out,
                    "DaemonSet {}: generation {:?}, args {args:?}, status {:?}",
                    d.metadata.name.as_deref().unwrap_or("?"),
                    d.metadata.generation,
                    d.status
                );
            }
        }
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        if let Ok(list) = cms.list(&ListParams::default()).await {
            for c in list.items {
                // ours only (not kube-root-ca.crt's description)
                let ann: BTreeMap<String, String> = c
                    .metadata
                    .annotations
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("file-integrity.openshift.io/"))
                    .collect();
                let _ = writeln!(
                    out,
                    "ConfigMap {}: labels {}, annotations {}, owners {}",
                    c.metadata.name.as_deref().unwrap_or("?"),
                    json!(c.metadata.labels),
                    json!(ann),
                    c.metadata.owner_references.map_or(0, |o| o.len())
                );
            }
        }
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, ns);
        if let Ok(list) = events.list(&ListParams::default()).await {
            for e in list.items.iter().rev().take(30).rev() {
                let _ = writeln!(
                    out,
                    "Event {} {}/{}: {} {}",
                    e.type_.as_deref().unwrap_or(""),
                    e.involved_object.kind.as_deref().unwrap_or(""),
                    e.involved_object.name.as_deref().unwrap_or(""),
                    e.reason.as_deref().unwrap_or(""),
                    e.message.as_deref().unwrap_or("")
                );
            }
        }
        out
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

/// One line per node status: condition, counts, probe time, reinitId, result ConfigMap.
pub fn summarize_node_statuses(s: &BTreeMap<String, FileIntegrityNodeStatus>) -> String {
    if s.is_empty() {
        return "(no node statuses)".into();
    }
    let mut out = String::new();
    for (k, v) in s {
        let r = &v.spec.last_result;
        let _ = write!(
            out,
            "\n  {k}: {} +{} ~{} -{} at {} reinitId {:?} cm {:?} err {:?} (results: {:?})",
            r.condition,
            r.files_added,
            r.files_changed,
            r.files_removed,
            r.last_probe_time.0,
            v.spec.reinit_id,
            r.result_config_map_name,
            r.error_message,
            v.spec
                .results
                .iter()
                .map(|r| r.condition.as_str())
                .collect::<Vec<_>>()
        );
    }
    out
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return format!("(no {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---- Processes ----------------------------------------------------------------------------------

struct ProcInner {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// Whether an exit is a failure (cleared by stop/kill/allow_exit).
    expect_running: bool,
    starts: u32,
}

impl ProcInner {
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.name);
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        self.starts += 1;
        let _ = writeln!(
            log,
            "==== [cluster harness] start #{} of {}: {} {} ====",
            self.starts,
            self.name,
            self.program.display(),
            self.args.join(" ")
        );
        let err = log.try_clone().expect("clone log file handle");
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_remove("KUBECONFIG")
            .env_remove("WATCH_NAMESPACE")
            .env_remove("NODE_NAME")
            .env_remove("FIO_LOG")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe. The process dies with the thread that started it,
        // so an aborted test run leaves nothing behind.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {} ({}): {e}", self.name, self.program.display()));
        self.child = Some(child);
        self.expect_running = true;
    }

    fn signal_and_reap(&mut self, sig: libc::c_int, grace: Duration) {
        self.expect_running = false;
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // SAFETY: the pid is our unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn kill(&mut self) {
        self.signal_and_reap(libc::SIGKILL, Duration::from_secs(5));
    }

    fn stop(&mut self) {
        self.signal_and_reap(libc::SIGTERM, Duration::from_secs(10));
    }
}

/// A process of the test; shared with the [`TestNs`] registry (exit checks, logs on failure).
struct Proc(Arc<Mutex<ProcInner>>);

impl Proc {
    fn new(
        t: &TestNs,
        name: String,
        program: &str,
        args: Vec<String>,
        envs: Vec<(String, String)>,
    ) -> Proc {
        let log_dir = t.dir.join("logs");
        fs::create_dir_all(&log_dir).expect("create the log directory");
        let log = log_dir.join(format!("{name}.log"));
        let inner = Arc::new(Mutex::new(ProcInner {
            name,
            program: PathBuf::from(program),
            args,
            envs,
            log,
            child: None,
            expect_running: false,
            starts: 0,
        }));
        t.register(&inner);
        let p = Proc(inner);
        p.lock().spawn();
        p
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProcInner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log_path(&self) -> PathBuf {
        self.lock().log.clone()
    }

    fn pid(&self) -> Option<u32> {
        self.lock().child.as_ref().map(Child::id)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.lock().stop();
    }
}

/// `fio-operator run` as the operator's service account, watching the test namespace, with its
/// metrics in plain HTTP on a loopback port of its own.
pub struct Operator(Proc, std::net::SocketAddr);

impl Operator {
    /// Starts `fio-operator run` with `WATCH_NAMESPACE=<ns>`, the operator's token kubeconfig,
    /// `RELATED_IMAGE_OPERATOR=`[`TEST_IMAGE`] and `FIO_LOG=debug`; output in
    /// `<test dir>/logs/operator.log`.
    pub fn start(t: &TestNs) -> Operator {
        let envs = vec![
            ("WATCH_NAMESPACE".into(), t.ns.clone()),
            (
                "KUBECONFIG".into(),
                t.kubeconfig(Identity::Operator).display().to_string(),
            ),
            ("RELATED_IMAGE_OPERATOR".into(), TEST_IMAGE.into()),
            (
                "FIO_LOG".into(),
                std::env::var("FIO_TEST_OPERATOR_LOG").unwrap_or_else(|_| "debug".into()),
            ),
            ("OPERATOR_NAME".into(), names::OPERATOR_NAME.into()),
        ];
        // A port free now; the operator binds it again after a restart (SO_REUSEADDR).
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port for the metrics");
        let args = vec![
            "run".into(),
            format!("--metrics-addr={metrics}"),
            // No certificate there: plain HTTP on loopback.
            format!(
                "--serving-cert-dir={}",
                t.dir.join("no-serving-cert").display()
            ),
        ];
        Operator(
            Proc::new(
                t,
                "operator".into(),
                env!("CARGO_BIN_EXE_fio-operator"),
                args,
                envs,
            ),
            metrics,
        )
    }

    pub fn pid(&self) -> Option<u32> {
        self.0.pid()
    }

    /// The metrics endpoint's text (`GET /metrics-fio`), retried until the operator answers.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = async {
                let mut s = tokio::net::TcpStream::connect(self.1).await?;
                s.write_all(
                    b"GET /metrics-fio HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n",
                )
                .await?;
                let mut out = String::new();
                s.read_to_string(&mut out).await?;
                Ok::<_, std::io::Error>(out)
            };
            match attempt.await {
                Ok(resp) if resp.starts_with("HTTP/1.1 200") => {
                    return resp
                        .split_once("\r\n\r\n")
                        .map(|(_, body)| body.to_owned())
                        .unwrap_or_default();
                }
                r if Instant::now() >= deadline => {
                    panic!("metrics endpoint {} did not answer: {r:?}", self.1)
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Wait until the metric `name` with exactly `labels` has the value `want`.
    pub async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.metrics().await;
            let got = fio_operator::metrics::sample(&text, name, labels);
            if got == Some(want) {
                return text;
            }
            if Instant::now() >= deadline {
                panic!("metric {name}{labels:?}: want {want}, got {got:?}\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A crash and a restart: SIGKILL, then the same command again (log appended).
    pub fn restart(&mut self) {
        let mut p = self.0.lock();
        p.kill();
        p.spawn();
    }

    /// SIGKILL (a crash); [`Operator::start_again`] brings it back.
    pub fn kill(&mut self) {
        self.0.lock().kill();
    }

    /// Starts it again after [`Operator::kill`].
    pub fn start_again(&mut self) {
        self.0.lock().spawn();
    }

    pub fn log_path(&self) -> PathBuf {
        self.0.log_path()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// `fio-operator daemon --owner=<fi>` for one simulated node, as the daemon's service account.
pub struct Daemon {
    proc: Proc,
    pub node: String,
    pub root: PathBuf,
}

impl Daemon {
    /// Starts `fio-operator daemon --owner=<fi> --namespace=<ns> --hostroot=<root>
    /// --interval=<secs> --max-backups=5` with `NODE_NAME=<node>` and the daemon's token
    /// kubeconfig; output in `<test dir>/logs/daemon-<node>.log`.
    pub fn start(t: &TestNs, fi: &str, node: &str, root: &Path, interval_secs: u64) -> Daemon {
        let mut envs = vec![
            ("NODE_NAME".into(), node.to_owned()),
            (
                "KUBECONFIG".into(),
                t.kubeconfig(Identity::Daemon).display().to_string(),
            ),
        ];
        if let Ok(level) = std::env::var("FIO_TEST_DAEMON_LOG") {
            envs.push(("FIO_LOG".into(), level));
        }
        let args = vec![
            "daemon".into(),
            format!("--owner={fi}"),
            format!("--namespace={}", t.ns),
            format!("--hostroot={}", root.display()),
            format!("--interval={interval_secs}"),
            "--max-backups=5".into(),
        ];
        Daemon {
            proc: Proc::new(
                t,
                format!("daemon-{node}"),
                env!("CARGO_BIN_EXE_fio-operator"),
                args,
                envs,
            ),
            node: node.to_owned(),
            root: root.to_path_buf(),
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s), like a deleted pod.
    pub fn stop(&mut self) {
        self.proc.lock().stop();
    }

    /// SIGKILL (a crashed pod or node).
    pub fn kill(&mut self) {
        self.proc.lock().kill();
    }

    /// Starts it again after stop/kill (log appended).
    pub fn start_again(&mut self) {
        self.proc.lock().spawn();
    }

    /// Its exit is no longer a test failure (e.g. after its FileIntegrity was deleted).
    pub fn allow_exit(&mut self) {
        self.proc.lock().expect_running = false;
    }

    pub fn log_path(&self) -> PathBuf {
        self.proc.log_path()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// `<root>/etc/kubernetes`, where the database, log and backups are.
    pub fn db_dir(&self) -> PathBuf {
        self.root.join("etc/kubernetes")
    }
}

// ---- Node roots ---------------------------------------------------------------------------------

/// A small host tree for `node` at `<parent>/<node>` (created; returned), covering every rule of
/// the operator's default configuration: `etc/` (resolv.conf, hosts, hostname, an ssh config, an
/// empty `etc/kubernetes/` where the daemon keeps `aide.db.gz`), `usr/bin/` and `usr/lib/`,
/// `boot/`, `root/` (with an excluded `.kube/`).
pub fn sample_node_root(parent: &Path, node: &str) -> PathBuf {
    let root = parent.join(node);
    let file = |rel: &str, text: &str, mode: u32| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("a file has a parent"))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    };
    file(
        "etc/resolv.conf",
        "search cluster.local\nnameserver 10.0.0.10\n",
        0o644,
    );
    file(
        "etc/hosts",
        &format!("127.0.0.1 localhost\n::1 localhost\n10.1.0.2 {node}\n"),
        0o644,
    );
    file("etc/hostname", &format!("{node}\n"), 0o644);
    file(
        "etc/ssh/sshd_config",
        "PermitRootLogin no\nPasswordAuthentication no\n",
        0o600,
    );
    file(
        "usr/bin/kubelet",
        "#!/bin/sh\necho 'kubelet (simulated)'\n",
        0o755,
    );
    file(
        "usr/bin/crio",
        "#!/bin/sh\necho 'crio (simulated)'\n",
        0o755,
    );
    file("usr/bin/sh", "#!/bin/true\n", 0o755);
    file(
        "usr/lib/os-release",
        "NAME=\"Simulated CoreOS\"\nID=rhcos\n",
        0o644,
    );
    file("boot/vmlinuz-6.1.0", "not a kernel\n", 0o644);
    file(
        "boot/loader/entries/ostree-1.conf",
        "title Simulated\nlinux /vmlinuz-6.1.0\n",
        0o644,
    );
    file("root/.bashrc", "alias ll='ls -l'\n", 0o644);
    file(
        "root/.kube/config",
        "# excluded by the default rules\n",
        0o600,
    );
    fs::create_dir_all(root.join("etc/kubernetes"))
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    root
}
