//! The product as users run it: the operator Deployment of `deploy/` (through
//! `nix/vm-test/kustomization.yaml`, the VM test's install) as a real pod from the image that
//! `scripts/image.py` builds, and the daemons as real DaemonSet pods on two real kubelet nodes
//! (`scripts/testenv.sh nodes --real 2`), driven with the seed's kubectl commands. One test,
//! in the order an administrator meets things: install, first scans, what the daemon may do,
//! what changed where and since when (`changes`),
//! a changed file, a re-init, a node update, the kubelet CA rotated, fewer backups kept,
//! realtime detection, expected changes accepted per path, memory after many scans.
//!
//! Needs root, Debian's containerd, runc, containernetworking-plugins and socat (`.ci/run`
//! installs them); fails saying so when they are missing.

use fio_harness as cluster;

#[path = "real_nodes/changes.rs"]
mod changes;
#[path = "real_nodes/expected.rs"]
mod expected;
#[path = "real_nodes/realtime.rs"]
mod realtime;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

use cluster::real::{
    clear_real_nodes, in_mount_namespace, kubectl, kubectl_try, node_condition, real_nodes,
    repo_path, wait_node_condition, wait_until, MountOp, RealNodes, AIDE_CONF,
};
use cluster::secs;

const NS: &str = "openshift-file-integrity";
const FI: &str = "worker-fileintegrity";
const DS: &str = "aide-worker-fileintegrity";
const N1: &str = "real-1";
const N2: &str = "real-2";
/// On real-1 only: a tree larger than the daemon pod's memory limit (600Mi).
const BIG_DIR: &str = "opt/fio-big";
const BIG_FILES: usize = 96;
const BIG_FILE_MIB: usize = 8;

fn k(args: &[&str]) -> String {
    kubectl(args)
}

fn kn(args: &[&str]) -> String {
    let mut all = vec!["-n", NS];
    all.extend_from_slice(args);
    kubectl(&all)
}

fn condition(node: &str) -> Result<String, String> {
    node_condition(NS, FI, node)
}

fn wait_condition(node: &str, want: &str, timeout: u64) {
    wait_node_condition(NS, FI, node, want, secs(timeout));
}

/// `jsonpath` of the daemon pod on `node`.
fn daemon_pod_field(node: &str, jsonpath: &str) -> String {
    kn(&[
        "get",
        "pods",
        &format!("-lapp={DS}"),
        "--field-selector",
        &format!("spec.nodeName={node}"),
        "-o",
        &format!("jsonpath={jsonpath}"),
    ])
}

fn daemon_pod(node: &str) -> (String, String) {
    let out = daemon_pod_field(node, "{.items[0].metadata.name} {.items[0].metadata.uid}");
    let (name, uid) = out
        .split_once(' ')
        .unwrap_or_else(|| panic!("no daemon pod on {node}: {out:?}"));
    (name.to_owned(), uid.to_owned())
}

fn kube_dir(real: &RealNodes, node: &str) -> std::path::PathBuf {
    real.root(node).join("etc/kubernetes")
}

/// `ls -l` of the node's /etc/kubernetes/aide.* as (name, mode).
fn aide_files(real: &RealNodes, node: &str) -> BTreeMap<String, u32> {
    std::fs::read_dir(kube_dir(real, node))
        .expect("read the node's /etc/kubernetes")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let mode = e.metadata().ok()?.permissions().mode() & 0o7777;
            name.starts_with("aide.").then_some((name, mode))
        })
        .collect()
}

fn backups(real: &RealNodes, node: &str) -> usize {
    aide_files(real, node)
        .keys()
        .filter(|n| n.starts_with("aide.db.gz.backup-"))
        .count()
}

/// A fresh start: no FileIntegrity, operator or daemon files left by an earlier run.
fn clean(real: &RealNodes) {
    clear_real_nodes(real);
    changes::seed(real);
    realtime::seed(real);
    expected::seed(real);
    for node in &real.names {
        for f in [
            "etc/fio-e2e-changed.conf",
            "etc/fio-e2e-update.conf",
            "etc/fio-e2e-after-update.conf",
            "etc/fio-e2e-admin.conf",
        ] {
            let _ = std::fs::remove_file(real.root(node).join(f));
        }
    }
}

/// `BIG_FILES` files of `BIG_FILE_MIB` MiB on real-1, written to disk and dropped from the page
/// cache, so that the daemon's reads are what fills (or not) its pod's cgroup.
fn big_tree(real: &RealNodes) {
    let dir = real.root(N1).join(BIG_DIR);
    std::fs::create_dir_all(&dir).expect("create the big tree");
    let block: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for i in 0..BIG_FILES {
        let path = dir.join(format!("blob-{i:03}"));
        let fresh = std::fs::metadata(&path).is_ok_and(|m| m.len() == (BIG_FILE_MIB << 20) as u64);
        let f = if fresh {
            std::fs::File::open(&path).expect("open a big file")
        } else {
            let mut f = std::fs::File::create(&path).expect("create a big file");
            for j in 0..BIG_FILE_MIB {
                f.write_all(&[i as u8, j as u8]).expect("write");
                f.write_all(&block[2..]).expect("write");
            }
            f.sync_all().expect("fsync a big file");
            f
        };
        // SAFETY: the fd is open for the duration of the call.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}

fn install(real: &RealNodes) {
    // deploy/ as the VM test installs it, and the operator kept off the kwok nodes that other
    // test binaries may have left.
    let overlay = repo_path("target/real-nodes");
    std::fs::create_dir_all(&overlay).expect("create target/real-nodes");
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources:\n  - ../../nix/vm-test\n\
         patches:\n  - target: {kind: Deployment, name: file-integrity-operator}\n    patch: |-\n\
         \x20     - op: add\n        path: /spec/template/spec/nodeSelector\n\
         \x20       value: {fio-testenv/real: \"true\"}\n",
    )
    .expect("write the overlay");
    let rendered = k(&["kustomize", overlay.to_str().expect("utf-8 path")]);
    assert!(
        rendered.contains("image: quay.io/file-integrity-operator/file-integrity-operator:e2e"),
        "the overlay does not install the e2e image"
    );
    let file = overlay.join("rendered.yaml");
    std::fs::write(&file, rendered).expect("write the rendered manifests");
    k(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        file.to_str().expect("utf-8"),
    ]);
    kn(&[
        "rollout",
        "status",
        "deploy/file-integrity-operator",
        "--timeout=180s",
    ]);
    let node = kn(&[
        "get",
        "pods",
        "-lname=file-integrity-operator",
        "-o",
        "jsonpath={.items[0].spec.nodeName}",
    ]);
    // Issue 22, attack 1: root on a worker reads every token its kubelet mounts. The
    // operator's can make DaemonSets run as root anywhere: it must live on the control plane.
    assert_eq!(
        node, real.control_plane,
        "the operator must run on the control-plane node only"
    );
    let operator = format!("system:serviceaccount:{NS}:file-integrity-operator");
    assert!(
        token_subjects(real, &real.control_plane).contains(&operator),
        "no token of {operator} under {}'s kubelet: the check below would look in vain",
        real.control_plane
    );
    for worker in &real.names {
        let subjects = token_subjects(real, worker);
        assert!(
            !subjects.contains(&operator),
            "{worker}'s root holds the operator's token: {subjects:?}"
        );
    }
}

/// The subjects of every service-account token the node's kubelet has written under its root
/// (`/var/lib/kubelet/pods/*/volumes/kubernetes.io~projected/*/token`): what root there can read.
/// Read as the node sees its files (through its kubelet's `/proc/<pid>/root`): the projected
/// volumes are tmpfs mounts in the node's mount namespace.
fn token_subjects(real: &RealNodes, node: &str) -> Vec<String> {
    use base64::Engine as _;
    let pid_file = real.root(node).join("run/kubelet.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
    let pods = std::path::PathBuf::from(format!("/proc/{}/root/var/lib/kubelet/pods", pid.trim()));
    let mut subjects = Vec::new();
    let dirs = |d: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(d)
            .map(|it| it.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for pod in dirs(&pods) {
        for vol in dirs(&pod.join("volumes/kubernetes.io~projected")) {
            let Ok(jwt) = std::fs::read_to_string(vol.join("token")) else {
                continue;
            };
            let payload = jwt.split('.').nth(1).unwrap_or_default();
            let claims: serde_json::Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_else(|| panic!("{}: not a JWT", vol.display()));
            subjects.push(claims["sub"].as_str().unwrap_or_default().to_owned());
        }
    }
    subjects
}

fn create_fileintegrity() {
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "e2e-aide-conf", "namespace": NS},
        "data": {"aide.conf": AIDE_CONF}
    });
    let fi = serde_json::json!({
        "apiVersion": "fileintegrity.openshift.io/v1alpha1", "kind": "FileIntegrity",
        "metadata": {"name": FI, "namespace": NS},
        "spec": {
            "nodeSelector": {"node-role.kubernetes.io/worker": ""},
            "config": {"name": "e2e-aide-conf", "namespace": NS, "key": "aide.conf", "gracePeriod": 10}
        }
    });
    let dir = repo_path("target/real-nodes");
    let file = dir.join("fileintegrity.json");
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [cm, fi]});
    std::fs::write(&file, list.to_string()).expect("write the FileIntegrity");
    k(&["apply", "-f", file.to_str().expect("utf-8")]);
}

/// CapEff, NoNewPrivs and Seccomp of the running daemon, and how /hostroot is mounted for it.
fn check_confinement(real: &RealNodes, node: &str) {
    let pid = wait_until(&format!("the daemon process on {node}"), secs(60), || {
        real.daemon_pid(node)
            .ok_or_else(|| "no `fio-operator daemon` process in the node's cgroup".to_owned())
    });
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .to_owned()
    };
    // CAP_DAC_READ_SEARCH is bit 2: nothing else stays effective (or in the bounding set).
    assert_eq!(
        field("CapEff"),
        "0000000000000004",
        "{node}: effective capabilities"
    );
    assert_eq!(field("CapBnd"), "0000000000000004", "{node}: bounding set");
    assert_eq!(field("NoNewPrivs"), "1", "{node}: no_new_privs");
    assert_eq!(field("Seccomp"), "2", "{node}: seccomp filter mode");
    // The daemon stacks a read-only recursive bind over the container's /hostroot: what it sees
    // is the topmost /hostroot and its submounts, all read-only but the database directory.
    let mountinfo =
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("read mountinfo");
    let mounts: Vec<(String, String, String, bool)> = mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let ro = f.get(5)?.split(',').any(|o| o == "ro");
            Some((f[0].to_owned(), f[1].to_owned(), f.get(4)?.to_string(), ro))
        })
        .collect();
    let top = |point: &str| mounts.iter().rev().find(|m| m.2 == point);
    let (top_id, ..) = top("/hostroot")
        .unwrap_or_else(|| panic!("{node}: no /hostroot in the daemon's namespace"));
    let mut tree = vec![top_id.clone()];
    let mut i = 0;
    while i < tree.len() {
        let id = tree[i].clone();
        tree.extend(mounts.iter().filter(|m| m.1 == id).map(|m| m.0.clone()));
        i += 1;
    }
    let writable: Vec<&str> = mounts
        .iter()
        .filter(|m| tree.contains(&m.0) && !m.3)
        .map(|m| m.2.as_str())
        .collect();
    assert_eq!(
        writable,
        ["/hostroot/etc/kubernetes"],
        "{node}: writable mounts of the host root for the daemon"
    );
    assert!(
        top("/").is_some_and(|m| m.3),
        "{node}: the container's root filesystem is writable"
    );
    let pod = daemon_pod_field(
        node,
        "{.items[0].spec.containers[0].securityContext.privileged}",
    );
    assert_eq!(
        pod, "false",
        "{node}: the daemon pod must not be privileged"
    );
}

fn memory_stat(real: &RealNodes, node: &str) -> (BTreeMap<String, u64>, u64, u64) {
    let (_, uid) = daemon_pod(node);
    let cg = real
        .pod_memory_cgroup(node, &uid)
        .unwrap_or_else(|| panic!("no memory cgroup for pod {uid} on {node}"));
    let stat: BTreeMap<String, u64> = std::fs::read_to_string(cg.join("memory.stat"))
        .expect("read memory.stat")
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect();
    let read = |f: &str| -> u64 {
        std::fs::read_to_string(cg.join(f))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("read {f} of {}", cg.display()))
    };
    (
        stat,
        read("memory.max_usage_in_bytes"),
        read("memory.limit_in_bytes"),
    )
}

fn checks_in_log(pod: &str) -> usize {
    kn(&["logs", &format!("pod/{pod}")])
        .matches("running aide check")
        .count()
}

#[test]
fn the_product_runs_from_its_image_on_real_nodes() {
    let real = real_nodes();
    clean(real);
    big_tree(real);

    // -- install, first scans ---------------------------------------------------------------
    install(real);
    create_fileintegrity();
    wait_until("phase Active", secs(240), || {
        let p = kn(&["get", "fileintegrity", FI, "-o", "jsonpath={.status.phase}"]);
        (p == "Active").then_some(()).ok_or(format!("phase {p:?}"))
    });
    wait_condition(N1, "Succeeded", 240);
    wait_condition(N2, "Succeeded", 240);

    // -- the seed: the daemons' result ConfigMaps are deleted once the operator processed them
    // (`kubectl get cm` lists the configuration, no aide-<fi>-<node>)
    wait_until("no unprocessed result ConfigMap", secs(30), || {
        let cms = kn(&["get", "cm", "-o", "name"]);
        let results: Vec<&str> = cms
            .lines()
            .filter(|l| [N1, N2].iter().any(|n| *l == format!("configmap/{DS}-{n}")))
            .collect();
        results
            .is_empty()
            .then_some(())
            .ok_or(format!("{results:?} in:\n{cms}"))
    });

    // -- the seed's commands, verbatim ------------------------------------------------------
    let ds = kn(&["get", &format!("ds/{DS}")]);
    assert!(ds.contains(DS), "kubectl get ds/{DS}:\n{ds}");
    let ds_ready = kn(&[
        "get",
        &format!("ds/{DS}"),
        "-o",
        "jsonpath={.status.numberReady}",
    ]);
    assert_eq!(ds_ready, "2", "daemon pods ready");
    let pods = kn(&["get", "pods", &format!("-lapp={DS}")]);
    assert_eq!(
        pods.lines().filter(|l| l.contains("Running")).count(),
        2,
        "kubectl get pods -lapp={DS}:\n{pods}"
    );
    let (pod2, _) = daemon_pod(N2);
    let logs = kn(&["logs", &format!("pod/{pod2}")]);
    for line in [
        "Starting the AIDE runner daemon",
        "initializing AIDE db",
        "initialization finished",
        "running aide check",
    ] {
        assert!(
            logs.contains(line),
            "`kubectl logs pod/{pod2}` lacks {line:?}:\n{logs}"
        );
    }

    // -- what the running daemon may do (read from the host's /proc) ------------------------
    for node in [N1, N2] {
        check_confinement(real, node);
    }

    // -- drift explained: four changes on real-2 only, listed with old -> new (issue 26) ------
    let first = changes::on_one_node(real);

    // -- a changed file fails its node; its report names it (`kubectl fio report`); a change
    // shared by both workers and real-2's own are grouped by `kubectl fio changes` ----------
    changes::across_nodes(real, &first);

    // -- re-init (the seed's command): files and backups as in the seed's `ls -lR` ----------
    let before = [backups(real, N1), backups(real, N2)];
    let reinit_at = k8s_openapi::jiff::Timestamp::now().to_string();
    kn(&[
        "annotate",
        &format!("fileintegrities/{FI}"),
        "file-integrity.openshift.io/re-init=",
    ]);
    // an empty value re-initialises every node
    wait_until("a new backup on both nodes", secs(120), || {
        let now = [backups(real, N1), backups(real, N2)];
        (now[0] > before[0] && now[1] > before[1])
            .then_some(())
            .ok_or(format!("backups {before:?} -> {now:?}"))
    });
    wait_condition(N1, "Succeeded", 120);
    wait_condition(N2, "Succeeded", 120);
    let files = aide_files(real, N2);
    assert_eq!(
        files.get("aide.db.gz"),
        Some(&0o600),
        "aide.db.gz (0600 in the seed): {files:?}"
    );
    assert_eq!(
        files.get("aide.log"),
        Some(&0o644),
        "aide.log (0644 in the seed): {files:?}"
    );
    let stamp = |name: &str, prefix: &str| {
        name.strip_prefix(prefix).is_some_and(|ts| {
            let b = ts.as_bytes();
            b.len() == 17
                && b[8] == b'T'
                && b[11] == b'_'
                && b[14] == b'_'
                && ts
                    .chars()
                    .enumerate()
                    .all(|(i, c)| matches!(i, 8 | 11 | 14) || c.is_ascii_digit())
        })
    };
    let db_backups: Vec<_> = files
        .iter()
        .filter(|(n, _)| n.starts_with("aide.db.gz.backup-"))
        .collect();
    assert!(!db_backups.is_empty(), "no database backup: {files:?}");
    for (name, mode) in &db_backups {
        assert!(
            stamp(name, "aide.db.gz.backup-"),
            "backup name {name} is not backup-YYYYMMDDTHH_MM_SS"
        );
        assert_eq!(**mode, 0o600, "{name} mode");
    }
    assert!(
        files.keys().any(|n| stamp(n, "aide.log.backup-")),
        "no aide.log.backup-YYYYMMDDTHH_MM_SS: {files:?}"
    );
    assert!(
        !files.contains_key("aide.db.gz.new") && !files.contains_key("aide.log.new"),
        "temporary files left: {files:?}"
    );

    // -- root on real-2 covers a changed file: in its daemon's view only, then for all -----
    view_of_the_host(real);

    // -- the admission policies are preconditions: deleted or altered, the phase says so ---
    admission_policies();

    // -- a MachineConfig-style update of real-1 that "reboots" it: paused, then its change
    // accepted per path, its writer not named -----------------------------------------------
    machine_config_update(real);

    // -- the kubelets' client CA rotated on both workers: both stay Succeeded ---------------
    kubelet_ca_rotation(real);

    // -- maxBackups lowered to 1: after two re-inits real-2 keeps exactly one backup pair ---
    max_backups_pruned(real);

    // -- realtime (issue 27): writes on real-2 in its status within seconds, writers named ---
    realtime::detection(real);

    // -- expected changes (issue 28): the kubelet's rotations accepted per path, a pod's not -
    expected::rules(real);

    // -- a confirmed node update with realtime on: the machine-config daemon's write accepted
    // per path, another writer's not -------------------------------------------------------
    expected::node_update(real);

    // -- the realtime watcher's queue overflows; then scans every 10 s again ----------------
    realtime::overflow_then_scans_resume(real);

    // -- memory: after several scans of a tree larger than the limit (while real-1 also
    // scans 1,000 new changes and real-2 100,101, checked below) ------------------------
    changes::many(real);
    let (pod1, _) = daemon_pod(N1);
    let start = checks_in_log(&pod1);
    wait_until(&format!("3 more scans on {N1}"), secs(240), || {
        let n = checks_in_log(&pod1);
        (n >= start + 3)
            .then_some(())
            .ok_or(format!("{} scans so far", n - start))
    });
    let (stat, max_usage, limit) = memory_stat(real, N1);
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let cache = stat.get("total_cache").copied().unwrap_or(0);
    let rss = stat.get("total_rss").copied().unwrap_or(0);
    eprintln!(
        "[real nodes] {N1} daemon pod after {} scans of {} MiB: cache {:.1} MiB, rss {:.1} MiB, peak {:.1} MiB, limit {:.0} MiB",
        checks_in_log(&pod1),
        BIG_FILES * BIG_FILE_MIB,
        mib(cache),
        mib(rss),
        mib(max_usage),
        mib(limit)
    );
    assert!(
        BIG_FILES * BIG_FILE_MIB > (limit >> 20) as usize,
        "the tree must exceed the pod's limit"
    );
    assert!(
        cache < 128 << 20,
        "page cache charged to the daemon pod: {:.1} MiB",
        mib(cache)
    );
    assert!(
        max_usage < 320 << 20,
        "peak memory of the daemon pod: {:.1} MiB",
        mib(max_usage)
    );

    // -- the liveness probe ran (> 90 s of pods) without failing or restarting anything -----
    let restarts = kn(&[
        "get",
        "pods",
        &format!("-lapp={DS}"),
        "-o",
        "jsonpath={.items[*].status.containerStatuses[0].restartCount}",
    ]);
    assert!(
        restarts.split_whitespace().all(|r| r == "0"),
        "daemon restarts: {restarts}"
    );
    let unhealthy = kn(&[
        "get",
        "events",
        "--field-selector",
        "reason=Unhealthy",
        "-o",
        "name",
    ]);
    assert!(
        unhealthy.trim().is_empty(),
        "liveness probe failures: {unhealthy}"
    );

    // -- 1,000 changes on real-1, 100,101 on real-2: statuses stay small (issue 26) ----------
    changes::many_checked(real, &reinit_at);

    kn(&[
        "delete",
        "fileintegrity",
        FI,
        "--wait=true",
        "--timeout=120s",
    ]);
}

/// Root on real-2 mounts the original of a file over it. In the node's own namespace everything
/// on the node reads the cover: the file is reported as covered. In the daemon's namespace only
/// (attack 5 of issue 22), with the file then changed underneath: the node is Errored within a
/// scan, the mount named; uncovered, the change fails the node.
fn view_of_the_host(real: &RealNodes) {
    let file = "etc/fio-e2e-changed.conf"; // in the baseline since the re-init
    let on_node = format!("/{file}");
    let root = real.root(N2);
    let original = std::fs::read(root.join(file)).expect("read the baselined file");
    std::fs::create_dir_all(root.join("tmp")).expect("the node's /tmp");
    std::fs::write(root.join("tmp/fio-e2e-original.conf"), &original).expect("keep the original");
    let last = |field: &str| {
        kn(&[
            "get",
            "fileintegritynodestatuses",
            &format!("{FI}-{N2}"),
            "-o",
            &format!("jsonpath={{.lastResult.{field}}}"),
        ])
    };

    // A file-level bind mount of the node itself: reported, the node's verdict its own.
    let kubelet = real.kubelet_pid(N2).expect("the kubelet process of real-2");
    let cover = MountOp::Bind {
        source: "/tmp/fio-e2e-original.conf",
        target: &on_node,
    };
    in_mount_namespace(kubelet, cover).expect("bind mount in the node's namespace");
    wait_until("the covered file in real-2's status", secs(90), || {
        let covered = last("coveredFiles");
        covered.contains(&on_node).then_some(()).ok_or(format!(
            "coveredFiles {covered:?}, condition {:?}",
            condition(N2)
        ))
    });
    assert_eq!(
        condition(N2).as_deref(),
        Ok("Succeeded"),
        "{}",
        last("errorMessage")
    );
    let told = kn(&[
        "get",
        "events",
        "--field-selector",
        "reason=FilesCoveredByMounts",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        told.contains(&format!("node {N2}: files covered by mounts")) && told.contains(&on_node),
        "no Warning Event FilesCoveredByMounts naming {on_node}: {told:?}"
    );
    in_mount_namespace(kubelet, MountOp::Detach { target: &on_node }).expect("unmount");

    // The attack: the cover in the daemon's namespace only, then the file changed under it.
    let daemon = real.daemon_pid(N2).expect("the daemon process of real-2");
    let in_daemon = format!("/hostroot/{file}");
    let hide = MountOp::Bind {
        source: "/hostroot/tmp/fio-e2e-original.conf",
        target: &in_daemon,
    };
    in_mount_namespace(daemon, hide).expect("bind mount in the daemon's namespace");
    let mut changed = original.clone();
    changed.extend_from_slice(b"toor:x:0:0::/root:/bin/sh\n");
    std::fs::write(root.join(file), &changed).expect("change the covered file");
    let written = std::time::Instant::now();
    wait_condition(N2, "Errored", 90);
    let message = last("errorMessage");
    assert!(
        message.starts_with("view of the host altered: ")
            && message.contains(&format!("{on_node} mounted only in the daemon's view")),
        "{N2}'s error does not name the mount: {message}"
    );
    // The write itself is not hidden from the realtime watcher (issue 27): the error names it
    // and its writer, this test.
    let me = format!("pid {}", std::process::id());
    let message = wait_until("the write named by realtime", secs(30), || {
        let m = last("errorMessage");
        (m.contains(&format!(
            "written meanwhile (seen by realtime): {on_node} by "
        )) && m.contains(&me))
        .then_some(m.clone())
        .ok_or(m)
    });
    eprintln!(
        "[real nodes] the write under a mount in the daemon's view, {:?} after it: {message}",
        written.elapsed()
    );
    assert_eq!(
        condition(N1).as_deref(),
        Ok("Succeeded"),
        "{N1} is not {N2}"
    );
    in_mount_namespace(daemon, MountOp::Detach { target: &in_daemon }).expect("unmount");
    wait_condition(N2, "Failed", 90);
    let st = changes::status(N2);
    let listed = st["lastResult"]["changes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["path"] == on_node.as_str()))
        .unwrap_or_else(|| panic!("{on_node} not listed: {}", st["lastResult"]));
    assert_eq!(listed["foundBy"], "realtime", "{listed}");
    assert_eq!(
        listed["writers"][0]["pid"].as_i64(),
        Some(i64::from(std::process::id())),
        "{listed}"
    );
    std::fs::write(root.join(file), &original).expect("restore the file");
    wait_condition(N2, "Succeeded", 90);
    let digest = last("mountsSha256");
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "mountsSha256 of {N2}: {digest:?}"
    );
}

fn phase_and_message() -> (String, String) {
    let out = kn(&[
        "get",
        "fileintegrity",
        FI,
        "-o",
        "jsonpath={.status.phase}|{.status.message}",
    ]);
    let (p, m) = out.split_once('|').unwrap_or((&out, ""));
    (p.to_owned(), m.to_owned())
}

fn wait_phase(want: &str, says: &str, timeout: u64) {
    wait_until(
        &format!("phase {want} saying {says:?}"),
        secs(timeout),
        || {
            let (p, m) = phase_and_message();
            (p == want && m.contains(says))
                .then_some(())
                .ok_or(format!("phase {p:?}: {m}"))
        },
    );
}

/// Issue 22, attack 4 and the operator's own bound, with the product's RBAC (deploy/): the
/// daemons' binding deleted is put back within seconds and the phase is Error until both nodes
/// reported again; the operator's own bound deleted is created again; altered, the operator may
/// not repair it: Error until an administrator deletes it.
fn admission_policies() {
    let uid = |kind: &str, name: &str| {
        kubectl_try(&["get", kind, name, "-o", "jsonpath={.metadata.uid}"]).unwrap_or_default()
    };
    let binding = "validatingadmissionpolicybinding";
    let daemons = "file-integrity-daemon-results";
    let before = uid(binding, daemons);
    k(&["delete", binding, daemons]);
    let deleted = std::time::Instant::now();
    wait_until("the daemons' binding put back", secs(30), || {
        let now = uid(binding, daemons);
        (!now.is_empty() && now != before)
            .then_some(())
            .ok_or("not yet".to_owned())
    });
    assert!(
        deleted.elapsed() < secs(10),
        "put back after {:?}",
        deleted.elapsed()
    );
    wait_phase("Error", "admission policy", 30);
    wait_phase("Active", "", 90);

    let own = "file-integrity-operator-daemonsets";
    let before = uid(binding, own);
    k(&["delete", binding, own]);
    wait_until("the operator's bound created again", secs(30), || {
        let now = uid(binding, own);
        (!now.is_empty() && now != before)
            .then_some(())
            .ok_or("not yet".to_owned())
    });
    // Loosened by someone: the operator does not (and may not) repair it.
    k(&[
        "patch",
        "validatingadmissionpolicy",
        own,
        "--type=merge",
        "-p",
        r#"{"spec":{"failurePolicy":"Ignore"}}"#,
    ]);
    wait_phase("Error", "the operator may not change it", 60);
    k(&["delete", "validatingadmissionpolicy", own]);
    wait_until("the operator's bound created again", secs(30), || {
        let jsonpath = "jsonpath={.spec.failurePolicy}";
        let p = kubectl_try(&["get", "validatingadmissionpolicy", own, "-o", jsonpath])
            .unwrap_or_default();
        (p == "Fail")
            .then_some(())
            .ok_or(format!("failurePolicy {p:?}"))
    });
    wait_phase("Active", "", 90);
}

fn machine_config_update(real: &RealNodes) {
    let crd = repo_path("tests/fixtures/machineconfigpool-crd.yaml");
    k(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crd.to_str().expect("utf-8"),
    ]);
    k(&[
        "wait",
        "--for=condition=Established",
        "crd/machineconfigpools.machineconfiguration.openshift.io",
        "--timeout=60s",
    ]);
    let pool = repo_path("target/real-nodes/pool.json");
    std::fs::write(
        &pool,
        serde_json::json!({
            "apiVersion": "machineconfiguration.openshift.io/v1", "kind": "MachineConfigPool",
            "metadata": {"name": "e2e-real-1"},
            "spec": {"nodeSelector": {"matchLabels": {"kubernetes.io/hostname": N1}},
                     "configuration": {"name": "rendered-2"}}
        })
        .to_string(),
    )
    .expect("write the pool");
    k(&["apply", "-f", pool.to_str().expect("utf-8")]);
    let b1 = backups(real, N1);
    let b2 = backups(real, N2);
    start_update("rendered-1", "rendered-2");
    // what the update changes on the node; then the node "reboots" (its daemon pod is
    // replaced): what the watcher named is lost, and the change's writer is not named
    let reinit_id = changes::status(N1)["reinitId"].clone();
    std::fs::write(
        real.root(N1).join("etc/fio-e2e-update.conf"),
        "written by the update\n",
    )
    .expect("update a file");
    let (old_pod, _) = daemon_pod(N1);
    kn(&["delete", "pod", &old_pod, "--wait=true"]);
    wait_until(&format!("a new daemon pod on {N1}"), secs(90), || {
        let pods = daemon_pod_field(
            N1,
            r#"{range .items[*]}{.metadata.name} {.status.containerStatuses[0].ready}{"\n"}{end}"#,
        );
        let ready = pods
            .lines()
            .any(|l| !l.starts_with(&format!("{old_pod} ")) && l.ends_with(" true"));
        ready.then_some(()).ok_or(pods)
    });
    end_update("rendered-2");
    // Issue 28: the update's change accepted per path, no re-init.
    let st = wait_until(
        &format!("{N1}'s update accepted per path"),
        secs(180),
        || {
            let st = changes::status(N1);
            let moved = st["acceptedChanges"].as_array().and_then(|a| {
                a.iter().find(|r| {
                    r["path"] == "/etc/fio-e2e-update.conf" && r["acceptedAt"].is_string()
                })
            });
            moved
                .is_some()
                .then_some(st.clone())
                .ok_or(format!("{}", st["acceptedChanges"]))
        },
    );
    let record = st["acceptedChanges"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["path"] == "/etc/fio-e2e-update.conf"))
        .cloned()
        .expect("the record");
    assert_eq!(
        record["by"], "node update rendered-1 -> rendered-2 (writer not named)",
        "{record}"
    );
    assert_eq!(record["kind"], "added", "{record}");
    wait_condition(N1, "Succeeded", 120);
    // once: no re-init, only the delta's backup, over the next scans; the other node untouched
    std::thread::sleep(secs(25));
    let st = changes::status(N1);
    assert_eq!(
        st["reinitId"], reinit_id,
        "{N1} re-initialised by its update"
    );
    assert_eq!(backups(real, N1), b1 + 1, "{N1}: one backup, the delta's");
    assert_eq!(
        backups(real, N2),
        b2,
        "{N2}'s baseline moved by {N1}'s update"
    );
    assert_eq!(condition(N1).as_deref(), Ok("Succeeded"));
    // After the window: a change fails the node as ever, its writer named.
    let after = real.root(N1).join("etc/fio-e2e-after-update.conf");
    std::fs::write(&after, "written after the update\n").expect("write after the update");
    wait_until(&format!("{N1} Failed after its update"), secs(120), || {
        let st = changes::status(N1);
        realtime::listed(&st, "/etc/fio-e2e-after-update.conf")
            .filter(|c| c["writers"][0]["state"] == "attributed")
            .map(|_| ())
            .ok_or(format!("{}", st["lastResult"]))
    });
    assert_eq!(condition(N1).as_deref(), Ok("Failed"));
    std::fs::remove_file(&after).expect("remove it");
    wait_condition(N1, "Succeeded", 120);
}

const MC: &str = "machineconfiguration.openshift.io";

/// real-1's pool `e2e-real-1` rolls `target` out while its machines still run `from` (the
/// machine-config controller's status: what confirms the update is the pool moving on from
/// it); real-1 starts updating from `from` to `target` (`state=Working`), and is paused.
fn start_update(from: &str, target: &str) {
    let spec = serde_json::json!({"spec": {"configuration": {"name": target}}});
    let status = serde_json::json!({"status": {"configuration": {"name": from}}});
    let pool = ["patch", "machineconfigpool", "e2e-real-1", "--type=merge"];
    k(&[&pool[..], &["-p", &spec.to_string()]].concat());
    k(&[
        &pool[..],
        &["--subresource=status", "-p", &status.to_string()],
    ]
    .concat());
    k(&[
        "annotate",
        "node",
        N1,
        "--overwrite",
        &format!("{MC}/currentConfig={from}"),
        &format!("{MC}/desiredConfig={target}"),
        &format!("{MC}/state=Working"),
    ]);
    wait_until(&format!("{N1} paused"), secs(60), || {
        let p = kn(&[
            "get",
            "fileintegrity",
            FI,
            "-o",
            &format!("jsonpath={{.status.nodePauses.{N1}}}"),
        ]);
        (!p.is_empty())
            .then_some(())
            .ok_or("no status.nodePauses entry".to_owned())
    });
}

/// real-1's update over: it runs `config` (`state=Done`).
fn end_update(config: &str) {
    k(&[
        "annotate",
        "node",
        N1,
        "--overwrite",
        &format!("{MC}/currentConfig={config}"),
        &format!("{MC}/state=Done"),
    ]);
}

/// Upstream's e2e `TestFileIntegrityCertRotation` on real kubelets: the CA bundle each worker's
/// kubelet authenticates the API server with (`/etc/kubernetes/kubelet-ca.crt`, its
/// `clientCAFile`) is rewritten as the machine-config daemon rewrites it when the signer
/// rotates (a new CA beside the old, written aside and renamed over it). The kubelets keep
/// serving the API server, and the default configuration's exclusion of the file (in the test's
/// configuration too) keeps both workers Succeeded at their next scans.
fn kubelet_ca_rotation(real: &RealNodes) {
    let exclusion = "!/etc/kubernetes/kubelet-ca.crt";
    assert!(
        fio_api::aideconf::DEFAULT_CONFIG.contains(&format!("!/hostroot{}", &exclusion[1..])),
        "the default configuration no longer excludes the kubelet CA"
    );
    assert!(AIDE_CONF.contains(exclusion), "AIDE_CONF lacks {exclusion}");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-days",
            "1",
            "-subj",
            "/CN=kubelet-signer-rotated",
        ])
        .args([
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-keyout", "new.key", "-out", "new.crt"])
        .current_dir(dir.path())
        .output()
        .expect("run openssl (apt install openssl)");
    assert!(out.status.success(), "openssl: {out:?}");
    let new_ca = std::fs::read(dir.path().join("new.crt")).expect("the new CA");
    let since = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    let since = String::from_utf8_lossy(&since.stdout).trim().to_owned();
    for node in [N1, N2] {
        let path = real.root(node).join("etc/kubernetes/kubelet-ca.crt");
        let old = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let tmp = path.with_extension("crt.tmp");
        std::fs::write(&tmp, [new_ca.as_slice(), old.as_slice()].concat()).expect("write");
        std::fs::rename(&tmp, &path).expect("rename over the kubelet CA");
    }
    for node in [N1, N2] {
        wait_until(
            &format!("{node} scanned after the rotation"),
            secs(120),
            || {
                let out = kn(&[
                    "get",
                    "fileintegritynodestatuses",
                    &format!("{FI}-{node}"),
                    "-o",
                    "jsonpath={.lastResult.lastProbeTime} {.lastResult.condition}",
                ]);
                let (time, cond) = out.split_once(' ').unwrap_or((&out, ""));
                if time <= since.as_str() {
                    return Err(format!("last result at {time}, rotated at {since}"));
                }
                assert_eq!(cond, "Succeeded", "{node} after the kubelet CA rotation");
                Ok(())
            },
        );
        // The kubelet still serves the API server (logs go through it).
        let (pod, _) = daemon_pod(node);
        kn(&["logs", &format!("pod/{pod}"), "--tail=1"]);
    }
}

/// The backup files in `node`'s database directory: (database backups, log backups).
fn backup_names(real: &RealNodes, node: &str) -> (Vec<String>, Vec<String>) {
    let files = aide_files(real, node);
    let of = |prefix: &str| {
        files
            .keys()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect::<Vec<_>>()
    };
    (of("aide.db.gz.backup-"), of("aide.log.backup-"))
}

/// Upstream's e2e `TestFileIntegrityPruneBackup`: `spec.config.maxBackups` set to 1 reaches the
/// daemons (the DaemonSet rolls with the new argument), and after two re-inits of real-2 exactly
/// one database backup and one log backup are left there, the newest. Scans are set 15 minutes
/// apart in the same roll (re-inits are requested, not scheduled): the realtime section after
/// it must not be helped by a scan.
fn max_backups_pruned(real: &RealNodes) {
    kn(&[
        "patch",
        "fileintegrity",
        FI,
        "--type=merge",
        "-p",
        r#"{"spec":{"config":{"maxBackups":1,"gracePeriod":900}}}"#,
    ]);
    wait_until("the daemons run with --max-backups=1", secs(180), || {
        let args = kn(&[
            "get",
            &format!("ds/{DS}"),
            "-o",
            "jsonpath={.spec.template.spec.containers[0].args}",
        ]);
        if !args.contains("--max-backups=1") {
            return Err(format!("DaemonSet args {args}"));
        }
        let status = kubectl_try(&[
            "-n",
            NS,
            "rollout",
            "status",
            &format!("ds/{DS}"),
            "--timeout=5s",
        ])?;
        status.contains("successfully").then_some(()).ok_or(status)
    });
    wait_condition(N2, "Succeeded", 120);
    for round in 1..=2 {
        let before = backup_names(real, N2);
        kn(&[
            "annotate",
            "--overwrite",
            &format!("fileintegrities/{FI}"),
            &format!("file-integrity.openshift.io/re-init={N2}"),
        ]);
        wait_until(
            &format!("re-init {round} of {N2} with maxBackups 1"),
            secs(120),
            || {
                let now = backup_names(real, N2);
                (now != before && now.0.len() == 1 && now.1.len() == 1)
                    .then_some(())
                    .ok_or(format!("backups {before:?} -> {now:?}"))
            },
        );
        wait_condition(N2, "Succeeded", 120);
    }
    let (db, log) = backup_names(real, N2);
    assert_eq!(
        (db.len(), log.len()),
        (1, 1),
        "maxBackups 1: {db:?} {log:?}"
    );
    assert_eq!(
        db[0].strip_prefix("aide.db.gz."),
        log[0].strip_prefix("aide.log."),
        "the database and log backups of the last re-init"
    );
}
