//! Real kubelet nodes (`scripts/testenv.sh nodes --real N`: containerd, runc, a kubelet, a mount
//! namespace and cgroup root per node) and the product's image (`scripts/image.py`) on them.
//! Once per test binary: the image is built (a no-op when fresh), the nodes are started when they
//! do not run, and the image is imported into each node's containerd. The nodes keep running
//! after the test binary (`scripts/testenv.sh down` stops them with the control plane).
//!
//! The helpers are synchronous and drive the cluster with `kubectl`, as a user does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{env, repo};

/// The tag the image is built with and `nix/vm-test/kustomization.yaml` installs.
pub const IMAGE_TAG: &str = "e2e";
/// Real nodes the tests use.
pub const REAL_NODES: usize = 2;
/// The image of a pod that appends lines to a host file (`scripts/image.py writer`): `writer
/// <file> <line>...`, then it stays until stopped.
pub const WRITER_IMAGE: &str = "localhost/fio-testenv/writer:1";

#[derive(Debug)]
pub struct RealNodes {
    /// `$FIO_TESTENV_DIR/real`.
    pub dir: PathBuf,
    /// The workers `real-1`, `real-2`, ... (labelled `node-role.kubernetes.io/worker`).
    pub names: Vec<String>,
    /// `real-0`: the control-plane node (labelled and tainted `node-role.kubernetes.io/
    /// control-plane`), where the operator's pod runs and no daemon of the tests does.
    pub control_plane: String,
    /// The product image archive (OCI layout tar).
    pub image: PathBuf,
}

static REAL: OnceLock<Result<RealNodes, String>> = OnceLock::new();

/// The real nodes with the product's image loaded (see the module documentation).
pub fn real_nodes() -> &'static RealNodes {
    match REAL.get_or_init(init) {
        Ok(r) => r,
        Err(e) => panic!("real nodes not available: {e}"),
    }
}

fn run_loud(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("{what}: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("{what} failed: {status}"))
}

fn init() -> Result<RealNodes, String> {
    let env = env();
    let t0 = Instant::now();
    eprintln!(
        "[real nodes] building the product image (scripts/image.py product --tag {IMAGE_TAG})"
    );
    run_loud(
        Command::new("python3")
            .arg(repo().join("scripts/image.py"))
            .args(["product", "--tag", IMAGE_TAG]),
        "scripts/image.py product",
    )?;
    let image = repo().join("target/image/file-integrity-operator.oci.tar");
    run_loud(
        Command::new("python3")
            .arg(repo().join("scripts/image.py"))
            .arg("writer"),
        "scripts/image.py writer",
    )?;
    let writer = repo().join("target/image/writer.oci.tar");
    eprintln!("[real nodes] images ready after {:?}", t0.elapsed());
    let names: Vec<String> = (1..=REAL_NODES).map(|i| format!("real-{i}")).collect();
    // Starts the missing ones (running nodes are kept): the script says what to install when
    // containerd, runc or the CNI plugins are missing.
    run_loud(
        Command::new(repo().join("scripts/testenv.sh"))
            .args(["nodes", "--real", &REAL_NODES.to_string()])
            .env("FIO_TESTENV_DIR", &env.dir)
            .env("FIO_TESTENV_REAL_IMAGES", &image),
        "scripts/testenv.sh nodes --real",
    )?;
    let real = RealNodes {
        dir: env.dir.join("real"),
        names,
        control_plane: "real-0".to_owned(),
        image,
    };
    for (node, archive) in real.all().flat_map(|n| [(n, &real.image), (n, &writer)]) {
        // Nodes that already ran have an older image under the tag: import again.
        let sock = real.root(node).join("run/containerd/containerd.sock");
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&sock)
            .args(["-n", "k8s.io", "images", "import", "--no-unpack"])
            .arg(archive)
            .output()
            .map_err(|e| format!("ctr (Debian's containerd package): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "importing {} into {node}: {}",
                archive.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    eprintln!(
        "[real nodes] {} Ready with the image after {:?}",
        real.all().collect::<Vec<_>>().join(", "),
        t0.elapsed()
    );
    Ok(real)
}

impl RealNodes {
    /// Every real node: the control-plane node, then the workers.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.control_plane.as_str()).chain(self.names.iter().map(String::as_str))
    }

    /// The node's root directory (its `/`), as the host sees it.
    pub fn root(&self, node: &str) -> PathBuf {
        self.dir.join(node).join("root")
    }

    /// The node's cgroup root, as `scripts/testenv-realnodes.sh` records it.
    pub fn cgroup(&self, node: &str) -> String {
        let file = self.dir.join(node).join("cgroup");
        std::fs::read_to_string(&file)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    }

    /// Every process of the node: its pids cgroup tree (containerd, kubelet, shims, containers).
    pub fn pids(&self, node: &str) -> Vec<u32> {
        let mut pids = Vec::new();
        let mut dirs = vec![PathBuf::from(format!(
            "/sys/fs/cgroup/pids/{}",
            self.cgroup(node)
        ))];
        while let Some(d) = dirs.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
            if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.parse::<u32>().ok()));
            }
        }
        pids
    }

    /// The cgroup (below the node's root, in every hierarchy) its kubelet runs in, as a
    /// systemd unit's would be named.
    pub fn kubelet_cgroup(&self, node: &str) -> String {
        format!("{}/kubelet.service", self.cgroup(node))
    }

    /// The scanning daemon's process on `node` (not a liveness probe's).
    pub fn daemon_pid(&self, node: &str) -> Option<u32> {
        self.pids(node).into_iter().find(|pid| {
            let args = cmdline(*pid);
            args.first().is_some_and(|a| a.ends_with("fio-operator"))
                && args.get(1).is_some_and(|a| a == "daemon")
                && !args.iter().any(|a| a == "--probe")
        })
    }

    /// The node's kubelet process: its mount namespace is the node's own.
    pub fn kubelet_pid(&self, node: &str) -> Option<u32> {
        self.pids(node).into_iter().find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "kubelet")
        })
    }

    /// The memory cgroup directory of a pod on `node`.
    pub fn pod_memory_cgroup(&self, node: &str, pod_uid: &str) -> Option<PathBuf> {
        let base = PathBuf::from(format!(
            "/sys/fs/cgroup/memory/{}/kubepods",
            self.cgroup(node)
        ));
        let pod = format!("pod{pod_uid}");
        [
            base.join(&pod),
            base.join("burstable").join(&pod),
            base.join("besteffort").join(&pod),
        ]
        .into_iter()
        .find(|p| p.is_dir())
    }
}

/// The user configuration of the real-node tests (prepared by the operator as upstream's: paths
/// under /hostroot, the database and report lines pointed at the node's /etc/kubernetes); `/opt/
/// fio-big` is the large tree of tests/real_nodes.rs (absent elsewhere: nothing to scan there);
/// the kubelet's client CA excluded as the default configuration excludes it.
pub const AIDE_CONF: &str = "@@define DBDIR /hostroot/etc/kubernetes
@@define LOGDIR /hostroot/etc/kubernetes
database=file:@@{DBDIR}/aide.db.gz
database_out=file:@@{DBDIR}/aide.db.gz.new
gzip_dbout=yes
report_url=file:@@{LOGDIR}/aide.log.new
report_url=stdout
CONTENT_EX = sha512+ftype+p+u+g+n+acl+selinux+xattrs
/etc/ CONTENT_EX
!/etc/kubernetes/kubelet-ca.crt
/opt/fio-big/ sha512+ftype+p+u+g+n+s
";

/// `lastResult.condition` of node status `<fi>-<node>` in `ns`.
pub fn node_condition(ns: &str, fi: &str, node: &str) -> Result<String, String> {
    kubectl_try(&[
        "-n",
        ns,
        "get",
        "fileintegritynodestatuses",
        &format!("{fi}-{node}"),
        "-o",
        "jsonpath={.lastResult.condition}",
    ])
}

/// Waits until that condition is `want`.
pub fn wait_node_condition(ns: &str, fi: &str, node: &str, want: &str, timeout: Duration) {
    wait_until(&format!("{node} {want}"), timeout, || {
        let c = node_condition(ns, fi, node)?;
        (c == want).then_some(()).ok_or(format!("{node} is {c:?}"))
    });
}

/// Waits until `kubectl ARGS` says NotFound.
pub fn wait_gone(what: &str, timeout: Duration, args: &[&str]) {
    wait_until(&format!("{what} gone"), timeout, || {
        match kubectl_try(args) {
            Err(e) if e.contains("NotFound") => Ok(()),
            Err(e) => Err(e),
            Ok(out) => Err(format!("still there:\n{out}")),
        }
    });
}

/// The namespaces of the tests that run the product on the real nodes. Their daemons all write
/// the nodes' /etc/kubernetes/aide.*: a test takes the nodes for itself with [`clear_real_nodes`].
pub const REAL_NODE_TEST_NAMESPACES: [&str; 2] = ["openshift-file-integrity", "fio-olm"];

/// No product left on the real nodes by another test (or an earlier run): those namespaces
/// deleted, and the nodes' aide files removed.
pub fn clear_real_nodes(real: &RealNodes) {
    for ns in REAL_NODE_TEST_NAMESPACES {
        let _ = kubectl_try(&[
            "delete",
            "namespace",
            ns,
            "--ignore-not-found",
            "--wait=true",
            "--timeout=180s",
        ]);
    }
    for node in &real.names {
        let dir = real.root(node).join("etc/kubernetes");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("aide.") {
                std::fs::remove_file(e.path())
                    .unwrap_or_else(|err| panic!("remove {}: {err}", e.path().display()));
            }
        }
    }
}

/// What root on a node does in a mount namespace of its processes.
pub enum MountOp<'a> {
    /// `mount --bind source target`.
    Bind { source: &'a str, target: &'a str },
    /// `umount --lazy target`.
    Detach { target: &'a str },
}

/// Runs `op` inside the mount namespace of process `pid`, paths as that process sees them. A
/// one-threaded python3 does it (`setns(CLONE_NEWNS)` refuses threaded callers, and no binary
/// is looked up inside a namespace that may have none).
pub fn in_mount_namespace(pid: u32, op: MountOp) -> Result<(), String> {
    const SCRIPT: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid, op, a, b = sys.argv[1:5]
fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
if libc.setns(fd, 0x00020000) != 0:
    sys.exit(f"setns: {os.strerror(ctypes.get_errno())}")
if op == "bind":
    r = libc.mount(a.encode(), b.encode(), None, 4096, None)
else:
    r = libc.umount2(b.encode(), 2)
if r != 0:
    sys.exit(f"{op} {a} {b}: {os.strerror(ctypes.get_errno())}")
"#;
    let (name, a, b) = match op {
        MountOp::Bind { source, target } => ("bind", source, target),
        MountOp::Detach { target } => ("detach", "", target),
    };
    let out = Command::new("python3")
        .args(["-c", SCRIPT, &pid.to_string(), name, a, b])
        .output()
        .map_err(|e| format!("python3 (apt install python3): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{name} in the mount namespace of {pid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// argv of a process (empty when it is gone).
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `kubectl ARGS` as the cluster admin: stdout, or Err with the command and its stderr.
pub fn kubectl_try(args: &[&str]) -> Result<String, String> {
    kubectl_in_path(None, args)
}

/// `kubectl ARGS` with `dir` first in `PATH`: how kubectl finds a plugin (`kubectl-<name>`).
pub fn kubectl_in_path(dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let env = env();
    let mut cmd = Command::new(env.bin.join("kubectl"));
    if let Some(dir) = dir {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env(
            "PATH",
            std::env::join_paths(dirs).map_err(|e| e.to_string())?,
        );
    }
    let out = cmd
        .args(args)
        .env("KUBECONFIG", &env.admin_kubeconfig)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("kubectl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "kubectl {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

/// `kubectl ARGS`, panicking with its error output.
pub fn kubectl(args: &[&str]) -> String {
    kubectl_try(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `f` every second until it returns Ok; panics with its last error after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let t0 = Instant::now();
    loop {
        match f() {
            Ok(v) => {
                eprintln!("[real nodes] {what}: after {:.1?}", t0.elapsed());
                return v;
            }
            Err(e) if t0.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting for {what}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

/// A directory path relative to the repository (for kustomizations under `target/`).
pub fn repo_path(rel: &str) -> PathBuf {
    repo().join(rel)
}

/// Whether `path` exists (for readable assertions).
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}
