//! The node's side of the daemon: where its files are below the host root (the seed's
//! `/etc/kubernetes`: database, log, backups, the completed re-init id, the claim), the re-init
//! triggers older operators left there, and the first boot of an OpenShift node.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fio_core::atomic::replace_file;
use fio_core::runner::say;

/// Where the node's database, logs and backups live (the seed's `/etc/kubernetes`).
pub fn db_dir(hostroot: &Path) -> PathBuf {
    hostroot.join("etc/kubernetes")
}

/// The operator's requests a node completes once each, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Re-initialise the database.
    Reinit,
    /// Move the baseline for some paths (expected changes, issue 28).
    Accept,
}

/// The completed re-init id, per FileIntegrity uid, kept next to the database.
pub fn reinit_id_path(hostroot: &Path) -> PathBuf {
    completed_path(hostroot, Request::Reinit)
}

/// Where the id of the newest completed request of a kind is kept, next to the database.
pub fn completed_path(hostroot: &Path, kind: Request) -> PathBuf {
    db_dir(hostroot).join(match kind {
        Request::Reinit => "aide.reinit-id",
        Request::Accept => "aide.accept-id",
    })
}

/// The request id of `kind` that `uid`'s daemon completed on this node (0: none, or another
/// owner's).
pub fn read_completed(hostroot: &Path, uid: &str, kind: Request) -> i64 {
    let Ok(text) = fs::read_to_string(completed_path(hostroot, kind)) else {
        return 0;
    };
    let mut it = text.split_whitespace();
    match (it.next(), it.next().and_then(|n| n.parse().ok())) {
        (Some(u), Some(id)) if u == uid => id,
        _ => 0,
    }
}

/// Record that `uid`'s daemon completed request `id` of `kind` (atomically: the line is what
/// tells a restarted daemon not to act on the request again).
pub fn record_completed(hostroot: &Path, uid: &str, kind: Request, id: i64) -> std::io::Result<()> {
    replace_file(
        &completed_path(hostroot, kind),
        format!("{uid} {id}\n").as_bytes(),
        0o600,
    )
}

/// The re-init trigger file of upstream's versions before 0.1.22 (later ones use /run). Left on
/// a node that ran them, it must not re-initialise anything after an upgrade to us: removed at
/// start and at every re-init (upstream removes it at every re-init too: one placed on a
/// running node goes with the next).
pub fn remove_legacy_reinit_trigger(hostroot: &Path) {
    remove_trigger(
        &db_dir(hostroot).join("aide.reinit"),
        "older operator versions",
    );
}

/// The re-init trigger of upstream's current versions (`/run/aide.reinit`, touched by its
/// `aide-ini-*` DaemonSets). Ours never reads it; left on a node by an in-flight upstream
/// re-init, it would re-initialise the node if upstream were installed again. Outside the
/// database directory, so removed before the host root turns read-only.
pub fn remove_upstream_reinit_trigger(hostroot: &Path) {
    remove_trigger(&hostroot.join("run/aide.reinit"), "upstream's operator");
}

fn remove_trigger(path: &Path, whose: &str) {
    match fs::remove_file(path) {
        Ok(()) => say(&format!(
            "removed {} (the re-init trigger of {whose}; re-inits are requested through the \
             FileIntegrity now)",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("removing {}: {e}", path.display()),
    }
}

/// Created by an OpenShift node during its first boot, possibly after the daemon starts; its
/// appearance changes the link count of `/etc/kubernetes`, which the default configuration
/// checks. Upstream's DaemonSet waits for it with an init container (`check-folder`) that fails
/// the pod, forever, on a node without it; ours waits before the first baseline only, bounded,
/// and only on a node the machine-config daemon manages.
pub const STATIC_POD_RESOURCES: &str = "etc/kubernetes/static-pod-resources";
/// Present on every node the machine-config daemon manages (an OpenShift node).
const MACHINE_CONFIG_DAEMON_DIR: &str = "etc/machine-config-daemon";
/// How long the first baseline waits for [`STATIC_POD_RESOURCES`] at most.
pub const BOOT_WAIT: Duration = Duration::from_secs(900);
/// How often it looks meanwhile.
pub const BOOT_POLL: Duration = Duration::from_secs(2);

/// An OpenShift node that has not created [`STATIC_POD_RESOURCES`] yet and has no baseline.
pub fn booting_openshift_node(hostroot: &Path) -> bool {
    !db_dir(hostroot).join("aide.db.gz").exists()
        && hostroot.join(MACHINE_CONFIG_DAEMON_DIR).is_dir()
        && !hostroot.join(STATIC_POD_RESOURCES).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_request_counts_for_its_owner_and_kind_only() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(db_dir(r)).unwrap();
        assert_eq!(read_completed(r, "uid-a", Request::Reinit), 0);
        record_completed(r, "uid-a", Request::Reinit, 3).unwrap();
        assert_eq!(read_completed(r, "uid-a", Request::Reinit), 3);
        assert_eq!(read_completed(r, "uid-b", Request::Reinit), 0);
        assert_eq!(read_completed(r, "uid-a", Request::Accept), 0);
        record_completed(r, "uid-a", Request::Accept, 7).unwrap();
        assert_eq!(read_completed(r, "uid-a", Request::Accept), 7);
        assert_eq!(read_completed(r, "uid-a", Request::Reinit), 3);
        fs::write(reinit_id_path(r), "uid-a three\n").unwrap();
        assert_eq!(read_completed(r, "uid-a", Request::Reinit), 0);
    }
}
