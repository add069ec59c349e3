//! The control plane: found running or started (`scripts/testenv.sh`), once per test binary,
//! with the CRDs and ClusterRoles of `deploy/` applied; clients from kubeconfigs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

use super::{block_on_side, keep, repo, secs, FIELD_MANAGER, POLL};

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
pub fn deploy_docs(sub: &str) -> Vec<(String, Value)> {
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

pub fn typed<T: serde::de::DeserializeOwned>(file: &str, doc: &Value) -> T {
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
