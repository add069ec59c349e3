//! Harness for the end-to-end tests against a real control plane (`tests/operator/`).
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
//!
//! Files: `control_plane.rs` ([`env`], clients, the CRDs and ClusterRoles of `deploy/`),
//! `namespace.rs` ([`TestNs`]: creation, RBAC, nodes, identities, clean-up), `objects.rs`
//! (FileIntegrity, node status, DaemonSet and ConfigMap helpers; the summary printed on a
//! failure), `wait.rs` (polling), `process.rs` ([`Operator`], [`Daemon`]), `node_root.rs`
//! ([`sample_node_root`]).

pub mod aide;
mod control_plane;
mod namespace;
mod node_root;
mod objects;
mod process;
pub mod real;
pub mod tls;
mod wait;

use std::path::{Path, PathBuf};
use std::time::Duration;

#[allow(unused_imports)] // each test binary uses a part of the harness
pub use self::{
    control_plane::{
        admin_client, client_from, deploy_docs, env, install_fixture_crds, typed, Env,
    },
    namespace::{Identity, PodFollower, TestNs},
    node_root::sample_node_root,
    objects::summarize_node_statuses,
    process::{tail, Daemon, Operator, MAX_PAUSE},
};

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

/// The repository (this crate is `tests/harness` in it).
pub fn repo() -> &'static Path {
    static REPO: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    REPO.get_or_init(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The directory cargo built the running test binary in (`target/<profile>`): the test binary
/// is `<it>/deps/<name>-<hash>`, and cargo builds the package's binaries into `<it>` before
/// running integration tests.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{}: not in target/<profile>/deps", exe.display()))
        .to_path_buf()
}

/// A binary of the package (`fio-operator`), as cargo built it for this test run.
pub fn bin(name: &str) -> PathBuf {
    let p = profile_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run the tests with cargo test (which builds it first)",
        p.display()
    );
    p
}

/// Where tests keep their temporary directories (cargo's `CARGO_TARGET_TMPDIR`,
/// `target/tmp`), on the checkout's file system.
pub fn target_tmp() -> PathBuf {
    profile_dir()
        .parent()
        .map(|target| target.join("tmp"))
        .expect("target/<profile> has a parent")
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
