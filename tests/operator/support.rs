//! Scenario helpers shared by the test modules: one FileIntegrity `FI` over a test's nodes with
//! the operator and a daemon per node running, and readers of node statuses, backups and
//! annotations.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::{secs, Daemon, Operator, TestNs};
use fio_api::daemon_args::{DaemonArgs, SUBCOMMAND};
use fio_api::{
    names, FileIntegrity, FileIntegrityNodeCondition, FileIntegrityNodeStatus,
    FileIntegrityStatusPhase as Phase,
};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// The FileIntegrity of every scenario (the upstream documentation's example name).
pub(crate) const FI: &str = "example-fileintegrity";
/// gracePeriod of the scenarios, and the daemons' `--interval`.
pub(crate) const INTERVAL: u64 = 10;

// ---- scenario helpers ---------------------------------------------------------------------------

/// One FileIntegrity `FI` over the test's nodes with the operator and a daemon per node running.
/// Drop order: daemons, operator, then the namespace.
pub(crate) struct Scenario {
    pub(crate) daemons: BTreeMap<String, Daemon>,
    pub(crate) op: Operator,
    pub(crate) roots: BTreeMap<String, PathBuf>,
    pub(crate) t: TestNs,
}

/// A namespace with `nodes` nodes and a FileIntegrity (after `customize`) that reached Active
/// with every node Succeeded.
pub(crate) async fn active_scenario(
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
pub(crate) async fn start_scenario(t: TestNs, fi: FileIntegrity) -> Scenario {
    let roots: BTreeMap<_, _> = t
        .nodes
        .iter()
        .map(|n| (n.clone(), t.node_root(n)))
        .collect();
    let op = Operator::start(&t);
    t.create_fi(&fi).await;
    t.wait_daemonset_rolled_out(&ds_name(), secs(60)).await;
    let mut daemons = BTreeMap::new();
    for (n, root) in &roots {
        daemons.insert(n.clone(), Daemon::start(&t, FI, n, root, INTERVAL).await);
    }
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

pub(crate) fn ds_name() -> String {
    format!("{}-{FI}", names::DAEMONSET_PREFIX)
}

pub(crate) fn result_cm(node: &str) -> String {
    format!("{}-{FI}-{node}", names::DAEMONSET_PREFIX)
}

pub(crate) fn failed_cm(node: &str) -> String {
    format!(
        "{}{}",
        result_cm(node),
        names::FAILED_RESULT_CONFIGMAP_SUFFIX
    )
}

pub(crate) fn node_status_name(node: &str) -> String {
    format!("{FI}-{node}")
}

/// Seconds resolution, as lastProbeTime: true when `probe` is in a later second than `t`, i.e.
/// the scan certainly started after `t`.
pub(crate) fn after(probe: &FileIntegrityNodeStatus, t: Option<Timestamp>) -> bool {
    t.is_none_or(|t| probe.spec.last_result.last_probe_time.0.as_second() > t.as_second())
}

pub(crate) fn condition(s: &FileIntegrityNodeStatus) -> FileIntegrityNodeCondition {
    s.spec.last_result.condition
}

pub(crate) fn reinit_id(s: &FileIntegrityNodeStatus) -> i64 {
    s.spec.reinit_id.unwrap_or(0)
}

/// `<root>/etc/kubernetes`: (database backups, log backups), names checked against the seed's
/// `.backup-YYYYMMDDTHH_MM_SS`.
pub(crate) fn backups(root: &Path) -> (Vec<String>, Vec<String>) {
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
pub(crate) fn assert_backups(root: &Path, n: usize) {
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
pub(crate) fn reinit_requests(fi: &FileIntegrity) -> (i64, BTreeMap<String, i64>) {
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

pub(crate) fn has_annotation(fi: &FileIntegrity, key: &str) -> bool {
    fi.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

/// The field managers of an object (`kubectl get -o yaml --show-managed-fields`).
pub(crate) fn field_managers(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Vec<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .collect()
}

pub(crate) fn container_args(ds: &DaemonSet) -> Vec<String> {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default()
}

/// The daemon's options in `ds`, read as the daemon reads them.
pub(crate) fn daemon_args(ds: &DaemonSet) -> Result<DaemonArgs, String> {
    let args = container_args(ds);
    match args.split_first() {
        Some((sub, options)) if sub == SUBCOMMAND => {
            DaemonArgs::parse(options.iter().map(std::ffi::OsString::from))
                .map_err(|e| format!("args {args:?}: {e}"))?
                .ok_or_else(|| format!("args {args:?}: help"))
        }
        _ => Err(format!("args {args:?}: not `{}`", SUBCOMMAND)),
    }
}

impl Scenario {
    pub(crate) fn node(&self, i: usize) -> &str {
        &self.t.nodes[i]
    }

    pub(crate) fn root(&self, node: &str) -> &Path {
        &self.roots[node]
    }

    pub(crate) fn daemon(&mut self, node: &str) -> &mut Daemon {
        self.daemons.get_mut(node).expect("a daemon per node")
    }

    /// Appends a line to `<root>/etc/resolv.conf` (upstream's e2e edit); returns when.
    pub(crate) fn change_resolv_conf(&self, node: &str) -> Timestamp {
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

    pub(crate) async fn fi(&self) -> FileIntegrity {
        self.t.get_fi(FI).await
    }

    /// Every node has a node status whose last result is Succeeded and later than `since`.
    pub(crate) async fn wait_all_succeeded_after(
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
    pub(crate) async fn backups_stay(
        &self,
        what: &str,
        limit: Duration,
        nodes: &[String],
        want: usize,
    ) {
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
    pub(crate) async fn wait_failed(&self, node: &str, changed: i64) -> FileIntegrityNodeStatus {
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

    /// `node` Succeeded after `since` with its change of `path` accepted into its baseline by
    /// a node update (issue 28), and its re-init id unchanged; returns the record's `by`.
    pub(crate) async fn wait_update_accepted(
        &self,
        node: &str,
        path: &str,
        since: Timestamp,
    ) -> String {
        let reinit_before = self
            .t
            .node_statuses(FI)
            .await
            .ok()
            .and_then(|s| s.get(node).map(reinit_id));
        let statuses = self
            .t
            .wait_node_statuses(
                FI,
                &format!("{node}'s {path} accepted by its update, Succeeded"),
                secs(60),
                |s| {
                    s.get(node).is_some_and(|st| {
                        condition(st) == FileIntegrityNodeCondition::Succeeded
                            && after(st, Some(since))
                            && st.spec.accepted_changes.iter().any(|r| {
                                r.path == path
                                    && r.accepted_at.is_some()
                                    && r.by.starts_with("node update ")
                            })
                    })
                },
            )
            .await;
        let st = &statuses[node];
        assert_eq!(
            Some(reinit_id(st)),
            reinit_before,
            "{node} re-initialised by its update"
        );
        st.spec
            .accepted_changes
            .iter()
            .find(|r| r.path == path)
            .map(|r| r.by.clone())
            .unwrap_or_default()
    }

    /// Re-init requests handled (annotation removed) and every node in `nodes` confirmed the id
    /// the operator assigned to it, with a Succeeded result after `since`. Returns the requested
    /// ids.
    pub(crate) async fn wait_reinit_confirmed(
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
