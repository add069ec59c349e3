//! What the operator keeps in memory instead of listing on every reconcile: the Nodes' metadata
//! and the node statuses, each one watch (reflector) for the whole process (and [`slim`], which
//! the results controller's store uses too). Objects are stored without their managedFields (the
//! largest part of a server-side-applied object), Nodes with only the annotations read, which
//! keeps the operator's memory bounded by the cluster's size: well under 1 KiB per node and
//! about 2 KiB per node status.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, ResourceExt};
use tokio::sync::mpsc;

use super::fileintegrity::machine_config::{MC_CURRENT_CONFIG, MC_DESIRED_CONFIG, MC_STATE};
use crate::metrics::Metrics;
use fio_api::{names, FileIntegrityNodeCondition, FileIntegrityNodeStatus};

/// The Node annotations the operator reads (MachineConfig updates).
const MC_ANNOTATIONS: [&str; 3] = [MC_CURRENT_CONFIG, MC_DESIRED_CONFIG, MC_STATE];

/// What a store keeps of an object it only reads: no managedFields (the largest part of a
/// server-side-applied object), no owner references, only the `annotations` named (a real
/// Node carries kilobytes of others).
pub fn slim(meta: &mut ObjectMeta, annotations: &[&str]) {
    meta.managed_fields = None;
    meta.owner_references = None;
    if let Some(a) = &mut meta.annotations {
        a.retain(|k, _| annotations.contains(&k.as_str()));
    }
}

/// What the results store keeps of a result: [`slim`], and its annotations only when they
/// decide it ([`fio_api::result::decided_by_annotations`]: a Succeeded result, short values),
/// at most the nine verdict annotations of 64 bytes each. Otherwise `annotations` is `None`,
/// which tells the results controller to read the whole object. Bounded whatever a node writes.
pub fn slim_result(meta: &mut ObjectMeta) {
    use fio_api::result::{decided_by_annotations, VERDICT_ANNOTATIONS};
    let annotations = meta.annotations.take().unwrap_or_default();
    slim(meta, &[]);
    if decided_by_annotations(&annotations) {
        let mut kept = annotations;
        kept.retain(|k, _| VERDICT_ANNOTATIONS.contains(&k.as_str()));
        meta.annotations = Some(kept);
    }
}

/// The Nodes (metadata only) and a stream that ticks when what a FileIntegrity depends on
/// changed: a node added or deleted, its labels (node selectors) or its machine-config
/// annotations (pause and resume). Status heartbeats do not tick it.
pub fn nodes(
    api: Api<PartialObjectMeta<Node>>,
) -> (Store<PartialObjectMeta<Node>>, impl Stream<Item = ()>) {
    let (store, writer) = reflector::store();
    // Capacity 1: ticks that arrive while one is pending are the same "look at all FIs again".
    let (tx, rx) = mpsc::channel::<()>(1);
    tokio::spawn(async move {
        let mut relevance = NodeRelevance::default();
        let events = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|n| slim(&mut n.metadata, &MC_ANNOTATIONS))
            .reflect(writer);
        let mut events = std::pin::pin!(events);
        while let Some(ev) = events.next().await {
            let changed = match ev {
                Ok(ev) => relevance.changed(&ev),
                Err(e) => {
                    tracing::warn!("watching nodes: {e}");
                    false
                }
            };
            if changed {
                let _ = tx.try_send(());
            }
        }
    });
    let ticks = futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
    );
    (store, ticks)
}

/// Which Node events a FileIntegrity depends on: additions, deletions, and changes of labels or
/// machine-config annotations (a hash of them per node), not heartbeats.
#[derive(Debug, Default)]
pub struct NodeRelevance {
    seen: HashMap<String, u64>,
}

impl NodeRelevance {
    pub fn changed(&mut self, ev: &watcher::Event<PartialObjectMeta<Node>>) -> bool {
        match ev {
            watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                let h = Self::relevant(n);
                self.seen.insert(n.name_any(), h) != Some(h)
            }
            watcher::Event::Delete(n) => {
                self.seen.remove(&n.name_any());
                true
            }
            watcher::Event::InitDone => true,
            watcher::Event::Init => false,
        }
    }

    fn relevant(n: &PartialObjectMeta<Node>) -> u64 {
        let mut h = DefaultHasher::new();
        n.labels().hash(&mut h);
        for key in MC_ANNOTATIONS {
            n.annotations().get(key).hash(&mut h);
        }
        h.finish()
    }
}

/// The node statuses of every FileIntegrity in the namespace. The same watch keeps the
/// `node_failed` gauge equal to what they say: rebuilt from the initial list after a restart
/// (upstream's gauge fell to 0 and silenced the alert, OCPBUGS-42807), and removed with a node
/// status (deleted node or FileIntegrity).
pub fn node_statuses(
    api: Api<FileIntegrityNodeStatus>,
    metrics: Arc<Metrics>,
) -> Store<FileIntegrityNodeStatus> {
    let (store, writer) = reflector::store();
    tokio::spawn(async move {
        let events = watcher::watcher(api, watcher::Config::default().labels(names::OWNER_LABEL))
            .default_backoff()
            // Not slim: a node marked silent is replaced from this copy, owner reference and all.
            .modify(|st| st.metadata.managed_fields = None)
            .reflect(writer);
        let mut events = std::pin::pin!(events);
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) => follow_node_failed(&metrics, &ev),
                Err(e) => tracing::warn!("watching node statuses: {e}"),
            }
        }
    });
    store
}

/// Keep the `node_failed`, `node_last_result_timestamp_seconds` and `node_silent` gauges equal
/// to what the node statuses say.
pub fn follow_node_failed(metrics: &Metrics, ev: &watcher::Event<FileIntegrityNodeStatus>) {
    match ev {
        watcher::Event::Apply(st) | watcher::Event::InitApply(st) => {
            let last = &st.spec.last_result;
            let failed = last.condition == FileIntegrityNodeCondition::Failed;
            metrics.set_failed(&owner(st), &st.spec.node_name, failed);
            let changes = super::results::first_changes(last)
                .filter(|_| failed)
                .map(|first| (first, last.changes.len() as i64 + last.changes_truncated));
            metrics.set_changes(&owner(st), &st.spec.node_name, changes);
            let covered = last
                .realtime
                .as_ref()
                .map(|r| r.state == fio_api::CoverageState::Full);
            metrics.set_realtime_covered(&owner(st), &st.spec.node_name, covered);
            let at = last.last_probe_time.0.as_millisecond() as f64 / 1000.0;
            let silent = super::silence::is_silence(last);
            metrics.set_liveness(&owner(st), &st.spec.node_name, at, silent);
        }
        watcher::Event::Delete(st) => metrics.forget(&owner(st), &st.spec.node_name),
        watcher::Event::Init | watcher::Event::InitDone => {}
    }
}

/// The FileIntegrity a node status belongs to (its owner label).
pub fn owner(st: &FileIntegrityNodeStatus) -> String {
    st.labels()
        .get(names::OWNER_LABEL)
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sample;
    use fio_api::{FileIntegrityNodeStatusFields, FileIntegrityScanResult};
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::collections::BTreeMap;

    fn node(
        name: &str,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> PartialObjectMeta<Node> {
        let mut n = PartialObjectMeta::<Node>::default();
        n.metadata.name = Some(name.into());
        let map = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        n.metadata.labels = Some(map(labels));
        n.metadata.annotations = Some(map(annotations));
        n
    }

    #[test]
    fn only_changes_a_fileintegrity_depends_on_are_relevant() {
        use watcher::Event::*;
        let mut r = NodeRelevance::default();
        let n1 = node("n1", &[("role", "worker")], &[]);
        assert!(!r.changed(&Init));
        assert!(r.changed(&InitApply(n1.clone())));
        assert!(r.changed(&InitDone));
        // A heartbeat: other annotations, same labels.
        let beat = node(
            "n1",
            &[("role", "worker")],
            &[("node.alpha.kubernetes.io/ttl", "0")],
        );
        assert!(!r.changed(&Apply(beat)));
        assert!(
            r.changed(&Apply(node("n1", &[("role", "infra")], &[]))),
            "labels"
        );
        assert!(r.changed(&Apply(node(
            "n1",
            &[("role", "infra")],
            &[(MC_STATE, "Working")]
        ))));
        assert!(!r.changed(&Apply(node(
            "n1",
            &[("role", "infra")],
            &[(MC_STATE, "Working")]
        ))));
        assert!(r.changed(&Delete(n1)));
        assert!(r.changed(&Apply(node("n2", &[], &[]))), "a new node");
    }

    fn status(
        fi: &str,
        node: &str,
        condition: FileIntegrityNodeCondition,
    ) -> FileIntegrityNodeStatus {
        let r = FileIntegrityScanResult::new(Time(k8s_openapi::jiff::Timestamp::now()), condition);
        let mut st = FileIntegrityNodeStatus::new(
            &format!("{fi}-{node}"),
            FileIntegrityNodeStatusFields {
                node_name: node.into(),
                results: vec![r.clone()],
                last_result: r,
                reinit_id: None,
                accept_id: None,
                accepted_changes: Vec::new(),
                baseline: None,
                result_version: None,
            },
        );
        st.metadata.labels = Some(BTreeMap::from([(names::OWNER_LABEL.into(), fi.into())]));
        st
    }

    #[test]
    fn node_failed_follows_the_statuses_and_goes_with_them() {
        use watcher::Event::*;
        use FileIntegrityNodeCondition::*;
        let m = Metrics::new();
        let failed = |node: &str| {
            sample(
                &m.encode(),
                "file_integrity_operator_node_failed",
                &[("node", node)],
            )
        };
        // After a restart the initial list sets it again (OCPBUGS-42807).
        follow_node_failed(&m, &InitApply(status("fi", "n1", Failed)));
        follow_node_failed(&m, &InitApply(status("fi", "n2", Succeeded)));
        assert_eq!((failed("n1"), failed("n2")), (Some(1.0), Some(0.0)));
        follow_node_failed(&m, &Apply(status("fi", "n1", Succeeded)));
        assert_eq!(failed("n1"), Some(0.0));
        follow_node_failed(&m, &Apply(status("fi", "n2", Failed)));
        follow_node_failed(&m, &Delete(status("fi", "n2", Failed)));
        assert_ne!(
            failed("n2"),
            Some(1.0),
            "a deleted node status no longer counts as failed"
        );
    }

    /// What the results store keeps of a result ConfigMap the daemon wrote.
    fn kept_of(report: &fio_api::result::ScanReport) -> ObjectMeta {
        let mut meta = report.to_config_map("ns", "uid").metadata;
        meta.resource_version = Some("7".into());
        slim_result(&mut meta);
        meta
    }

    #[test]
    fn a_succeeded_result_is_whole_in_the_store_and_nothing_else_is() {
        use fio_api::result::{
            DatabaseId, FileCounts, HostView, Log, ScanCondition, ScanFigures, ScanReport,
        };
        let succeeded = ScanReport {
            owner: "fi".into(),
            node: "n1".into(),
            condition: ScanCondition::Succeeded,
            reinit_id: Some(3),
            database: Some(DatabaseId {
                sha256: "ab".repeat(32),
                size: 4096,
                entries: Some(10),
            }),
            initialized: true,
            figures: Some(ScanFigures {
                seconds: 1.5,
                files: 10,
            }),
            superseded: 2,
            view: Some(HostView {
                digest: "cd".repeat(32),
                covered_files: Vec::new(),
            }),
            realtime: None,
            accepted: None,
        };
        // Read back from what the store keeps, it is the report the daemon wrote.
        let meta = kept_of(&succeeded);
        assert!(meta.annotations.is_some());
        let cm = ConfigMap {
            metadata: meta,
            ..ConfigMap::default()
        };
        assert_eq!(ScanReport::from_config_map(&cm), Ok(succeeded.clone()));

        // Anything that is not a plain Succeeded verdict is read whole: no annotations kept.
        let failed = ScanReport {
            condition: ScanCondition::Failed {
                counts: FileCounts {
                    added: 1,
                    changed: 0,
                    removed: 0,
                },
                log: Log::Text("report".into()),
                changes: None,
            },
            ..succeeded.clone()
        };
        let errored = ScanReport {
            condition: ScanCondition::Errored {
                exit: None,
                message: "x".repeat(100_000),
            },
            ..succeeded.clone()
        };
        let covered = ScanReport {
            view: Some(HostView {
                digest: "cd".repeat(32),
                covered_files: vec!["/etc/passwd".into()],
            }),
            realtime: None,
            ..succeeded.clone()
        };
        for r in [&failed, &errored, &covered] {
            assert_eq!(kept_of(r).annotations, None, "{:?}", r.condition);
        }

        // A node's oversized values or extra annotations never reach the store.
        let mut cm = succeeded.to_config_map("ns", "uid");
        let ann = cm.metadata.annotations.get_or_insert_with(BTreeMap::new);
        ann.insert(names::REINIT_ID_ANNOTATION.into(), "9".repeat(200_000));
        let mut meta = cm.metadata.clone();
        slim_result(&mut meta);
        assert_eq!(
            meta.annotations, None,
            "an oversized verdict value is read whole"
        );
        let ann = cm.metadata.annotations.get_or_insert_with(BTreeMap::new);
        ann.insert(names::REINIT_ID_ANNOTATION.into(), "3".into());
        ann.insert("example.com/padding".into(), "x".repeat(200_000));
        let mut meta = cm.metadata;
        slim_result(&mut meta);
        let kept = meta.annotations.unwrap_or_default();
        assert!(!kept.contains_key("example.com/padding"));
        assert!(kept.values().map(String::len).sum::<usize>() <= 9 * 64);
    }
}
