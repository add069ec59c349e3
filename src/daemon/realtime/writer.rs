//! Naming the writer of an event: what `/proc/<pid>` says while the process runs (its name,
//! program, cgroup), turned into a pod and container or a host unit, and kept only when the
//! process's pidfd shows it still ran after the reads (a pid reused by another process in
//! between would otherwise lend its name). A writer gone before that is recorded as exited.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fio_api::{Writer, WriterPod, WriterState};

use super::fanotify;

/// Where a process runs, from its `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A container of a pod (kubepods), by pod UID and, when the path names it, container id.
    Pod { uid: String, container_id: String },
    /// A host process in a systemd unit (the last `.service` or `.scope` of its path).
    Unit(String),
    /// A host process in no unit: its cgroup path.
    Cgroup(String),
}

/// The origin a cgroup file describes: the line naming kubepods, else, in this order, the
/// cgroup v2 line (`0::/path`) unless it is the root (a hybrid host's unused hierarchy), the
/// v1 `name=systemd`, `pids` and `memory` lines. Paths of the cgroupfs driver
/// (`/kubepods/burstable/pod<uid>/<id>`) and of the systemd driver (`/kubepods.slice/
/// kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope`) are
/// read under any prefix (nested node cgroups).
pub fn origin(cgroup_file: &str) -> Option<Origin> {
    let lines: Vec<(&str, &str)> = cgroup_file
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers, path))
        })
        .collect();
    if let Some((_, p)) = lines.iter().find(|(_, p)| p.contains("kubepods")) {
        return Some(origin_of_path(p));
    }
    let rank = |(c, p): &(&str, &str)| -> Option<u8> {
        match *c {
            "" if *p != "/" => Some(0),
            c if c.split(',').any(|c| c == "name=systemd") => Some(1),
            c if c.split(',').any(|c| c == "pids") => Some(2),
            c if c.split(',').any(|c| c == "memory") => Some(3),
            "" => Some(4),
            _ => None,
        }
    };
    let best = lines
        .iter()
        .filter_map(|l| Some((rank(l)?, l.1)))
        .min_by_key(|(r, _)| *r)?;
    Some(origin_of_path(best.1))
}

fn origin_of_path(path: &str) -> Origin {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(k) = segments.iter().position(|s| s.starts_with("kubepods")) {
        let pod = segments[k..].iter().enumerate().find_map(|(i, s)| {
            let s = s.strip_suffix(".slice").unwrap_or(s);
            let uid = s
                .rsplit_once("-pod")
                .map(|(_, u)| u)
                .or(s.strip_prefix("pod"))?;
            Some((k + i, uid.replace('_', "-")))
        });
        if let Some((at, uid)) = pod {
            let container_id = segments
                .get(at + 1)
                .map(|c| container_id(c))
                .unwrap_or_default();
            return Origin::Pod { uid, container_id };
        }
    }
    match segments
        .iter()
        .rev()
        .find(|s| s.ends_with(".service") || s.ends_with(".scope"))
    {
        Some(unit) => Origin::Unit((*unit).to_owned()),
        None => Origin::Cgroup(format!("/{}", segments.join("/"))),
    }
}

/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope` or a bare id.
fn container_id(segment: &str) -> String {
    let s = segment.strip_suffix(".scope").unwrap_or(segment);
    let id = s.rsplit_once('-').map_or(s, |(_, id)| id);
    if id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id.to_owned()
    } else {
        String::new()
    }
}

/// A pod log directory name `<namespace>_<name>_<uid>` (none of the three has `_`).
fn pod_dir_name(dir: &str) -> Option<(String, String, String)> {
    let mut it = dir.splitn(3, '_');
    Some((it.next()?.into(), it.next()?.into(), it.next()?.into()))
}

/// A container log link name `<pod>_<namespace>_<container>-<id>.log`.
fn container_log_name(file: &str) -> Option<(String, String)> {
    let stem = file.strip_suffix(".log")?;
    let (rest, id) = stem.rsplit_once('-')?;
    let container = rest.rsplit_once('_')?.1;
    Some((container.to_owned(), id.to_owned()))
}

/// How many pods and containers are remembered (then the memory starts afresh).
const REMEMBERED: usize = 1024;

/// Where the container runtimes keep a running container's OCI bundle, below the host root:
/// containerd's (CRI namespace `k8s.io`) and CRI-O's.
const BUNDLES: [&str; 2] = [
    "run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}/config.json",
    "run/containers/storage/overlay-containers/{id}/userdata/config.json",
];
/// The largest bundle configuration read (they are tens of KiB).
const MAX_BUNDLE: u64 = 1 << 20;

/// The container name a bundle's annotations give (containerd's CRI plugin and CRI-O each
/// write it).
fn bundle_container(config: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    let a = v.get("annotations")?;
    [
        "io.kubernetes.cri.container-name",
        "io.kubernetes.container.name",
    ]
    .iter()
    .find_map(|k| a.get(*k)?.as_str())
    .map(str::to_owned)
}

/// Reads writers: `/proc` of the host's pid namespace, and the node's `/var/log` (kubelet's
/// pod and container log directories name pods and containers by UID and id).
pub struct Namer {
    proc: PathBuf,
    root: PathBuf,
    var_log: PathBuf,
    pods: HashMap<String, (String, String)>,
    containers: HashMap<String, String>,
}

impl Namer {
    pub fn new(proc: &Path, hostroot: &Path) -> Namer {
        Namer {
            proc: proc.to_owned(),
            root: hostroot.to_owned(),
            var_log: hostroot.join("var/log"),
            pods: HashMap::new(),
            containers: HashMap::new(),
        }
    }

    /// The writer of an event: `pid` as the kernel gave it (0: not visible), and its pidfd (or
    /// why there is none). Closes the pidfd.
    pub fn name(&mut self, pid: i32, pidfd: Option<i32>) -> Writer {
        let writer = self.read(pid, pidfd);
        if let Some(fd) = pidfd {
            fanotify::close(fd);
        }
        writer
    }

    fn read(&mut self, pid: i32, pidfd: Option<i32>) -> Writer {
        let exited = Writer {
            state: WriterState::Exited,
            pid: Some(pid.into()),
            ..Writer::default()
        };
        if pid <= 0 {
            return Writer::default();
        }
        if pidfd.is_some_and(|fd| fd < 0) {
            return exited;
        }
        let dir = self.proc.join(pid.to_string());
        let Ok(cgroup) = std::fs::read_to_string(dir.join("cgroup")) else {
            return exited;
        };
        let comm = std::fs::read(dir.join("comm")).unwrap_or_default();
        let exe = std::fs::read_link(dir.join("exe"))
            .map(|p| p.as_os_str().as_encoded_bytes().to_vec())
            .or_else(|_| {
                std::fs::read(dir.join("cmdline"))
                    .map(|c| c.split(|&b| b == 0).next().unwrap_or_default().to_vec())
            })
            .unwrap_or_default();
        // Everything above was the process's own only if it still runs now.
        if pidfd.is_some_and(|fd| !fanotify::pidfd_alive(fd)) {
            return exited;
        }
        let text = |b: &[u8]| {
            let s = String::from_utf8_lossy(b).trim_end().to_owned();
            cut(s)
        };
        let mut w = Writer {
            state: WriterState::Attributed,
            pid: Some(pid.into()),
            comm: text(&comm),
            exe: text(&exe),
            ..Writer::default()
        };
        match origin(&cgroup) {
            Some(Origin::Pod { uid, container_id }) => w.pod = Some(self.pod(uid, container_id)),
            Some(Origin::Unit(u)) | Some(Origin::Cgroup(u)) => w.unit = cut(u),
            None => {}
        }
        w
    }

    fn pod(&mut self, uid: String, container_id: String) -> WriterPod {
        if self.pods.len() >= REMEMBERED || self.containers.len() >= REMEMBERED {
            self.pods.clear();
            self.containers.clear();
        }
        if !self.pods.contains_key(&uid) {
            if let Some(found) = self.find_pod(&uid) {
                self.pods.insert(uid.clone(), found);
            }
        }
        if !container_id.is_empty() && !self.containers.contains_key(&container_id) {
            if let Some(name) = self.find_container(&container_id) {
                self.containers.insert(container_id.clone(), name);
            }
        }
        let (namespace, name) = self.pods.get(&uid).cloned().unwrap_or_default();
        WriterPod {
            namespace: cut(namespace),
            name: cut(name),
            container: cut(self
                .containers
                .get(&container_id)
                .cloned()
                .unwrap_or_default()),
            uid: cut(uid),
            container_id: cut(container_id),
        }
    }

    fn find_pod(&self, uid: &str) -> Option<(String, String)> {
        std::fs::read_dir(self.var_log.join("pods"))
            .ok()?
            .flatten()
            .find_map(|e| {
                let (ns, name, u) = pod_dir_name(e.file_name().to_str()?)?;
                (u == uid).then_some((ns, name))
            })
    }

    /// The container's log link names it once the kubelet made it, which is after the
    /// container started: a write at its start is named from the runtime's bundle instead.
    fn find_container(&self, id: &str) -> Option<String> {
        let linked = std::fs::read_dir(self.var_log.join("containers"))
            .ok()
            .and_then(|rd| {
                rd.flatten().find_map(|e| {
                    let (container, i) = container_log_name(e.file_name().to_str()?)?;
                    (i == id).then_some(container)
                })
            });
        linked.or_else(|| {
            BUNDLES.iter().find_map(|b| {
                let f = std::fs::File::open(self.root.join(b.replace("{id}", id))).ok()?;
                let mut config = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_BUNDLE), &mut config)
                    .ok()?;
                bundle_container(&config)
            })
        })
    }
}

fn cut(mut s: String) -> String {
    if s.len() > Writer::MAX_FIELD {
        let mut at = Writer::MAX_FIELD;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1d0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817069f8e";

    #[test]
    fn pods_and_containers_from_both_drivers_and_both_versions() {
        let uid = "0b1c2d3e-aaaa-bbbb-cccc-1234567890ab";
        let pod = |c: &str| Origin::Pod {
            uid: uid.into(),
            container_id: c.into(),
        };
        // cgroup v1, cgroupfs driver, below a node's own cgroup root (the test nodes).
        let v1 = format!(
            "12:pids:/fio1-10-1/kubepods/besteffort/pod{uid}/{ID}\n11:cpuset:/\n\
             1:name=systemd:/fio1-10-1/kubepods/besteffort/pod{uid}/{ID}\n"
        );
        assert_eq!(origin(&v1), Some(pod(ID)));
        // cgroup v2, systemd driver (OpenShift with CRI-O; containerd's scope name).
        let under = uid.replace('-', "_");
        for scope in [
            format!("crio-{ID}.scope"),
            format!("cri-containerd-{ID}.scope"),
        ] {
            let v2 = format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{under}.slice/{scope}\n"
            );
            assert_eq!(origin(&v2), Some(pod(ID)));
        }
        // Guaranteed pods have no QoS level; a pod's own cgroup (the pause process) no id.
        assert_eq!(
            origin(&format!("0::/kubepods.slice/kubepods-pod{under}.slice\n")),
            Some(pod(""))
        );
    }

    #[test]
    fn host_processes_name_their_unit_or_cgroup() {
        assert_eq!(
            origin("0::/system.slice/kubelet.service\n"),
            Some(Origin::Unit("kubelet.service".into()))
        );
        assert_eq!(
            origin("5:memory:/system.slice/crio.service\n4:cpu:/\n"),
            Some(Origin::Unit("crio.service".into()))
        );
        assert_eq!(
            origin("0::/user.slice/user-0.slice/session-3.scope\n"),
            Some(Origin::Unit("session-3.scope".into()))
        );
        assert_eq!(
            origin("12:pids:/fio1-10-1/node\n"),
            Some(Origin::Cgroup("/fio1-10-1/node".into()))
        );
        // A hybrid host: the v2 hierarchy unused (root), the v1 ones say where it runs.
        assert_eq!(
            origin("9:name=systemd:/system.slice/kubelet.service\n4:memory:/x\n0::/\n"),
            Some(Origin::Unit("kubelet.service".into()))
        );
        assert_eq!(origin("garbage"), None);
    }

    #[test]
    fn log_directory_names() {
        assert_eq!(
            pod_dir_name("kube-system_coredns-7d_0b1c"),
            Some(("kube-system".into(), "coredns-7d".into(), "0b1c".into()))
        );
        assert_eq!(
            container_log_name(&format!("writer-5f_e2e-ns_app-{ID}.log")),
            Some(("app".into(), ID.into()))
        );
        assert_eq!(container_log_name("nolog"), None);
    }

    #[test]
    fn bundle_annotations_of_both_runtimes() {
        let containerd = br#"{"ociVersion":"1.1.0","annotations":{
            "io.kubernetes.cri.container-type":"container",
            "io.kubernetes.cri.container-name":"appender",
            "io.kubernetes.cri.sandbox-name":"writer","io.kubernetes.cri.sandbox-namespace":"ns"}}"#;
        assert_eq!(bundle_container(containerd), Some("appender".into()));
        let crio = br#"{"annotations":{"io.kubernetes.container.name":"c",
            "io.kubernetes.pod.name":"p","io.kubernetes.pod.namespace":"n"}}"#;
        assert_eq!(bundle_container(crio), Some("c".into()));
        assert_eq!(bundle_container(br#"{"annotations":{}}"#), None);
        assert_eq!(bundle_container(b"\xff not json"), None);
    }

    /// This test's own process: attributed, named by its cgroup; a pid that does not exist:
    /// exited, nothing guessed.
    #[test]
    fn a_running_process_is_read_and_a_gone_one_is_exited() {
        let mut namer = Namer::new(Path::new("/proc"), Path::new("/nonexistent"));
        let me = namer.name(std::process::id() as i32, None);
        assert_eq!(me.state, WriterState::Attributed);
        assert!(!me.comm.is_empty());
        let gone = namer.name(i32::MAX, None);
        assert_eq!(gone.state, WriterState::Exited);
        assert_eq!(gone.comm, "");
        assert_eq!(namer.name(0, None).state, WriterState::Unattributed);
    }
}
