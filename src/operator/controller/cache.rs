//! What the operator keeps in memory instead of listing on every reconcile: the Nodes' metadata
//! and the node statuses, each one watch (reflector) for the whole process. Objects are stored
//! without their managedFields (the largest part of a server-side-applied object), which keeps
//! the operator's memory bounded by the cluster's size: about 1 KiB per node and 2 KiB per node
//! status.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, ResourceExt};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use fio_api::holdoff::{MC_CURRENT_CONFIG, MC_DESIRED_CONFIG, MC_STATE};
use fio_api::{names, FileIntegrityNodeCondition, FileIntegrityNodeStatus};

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
        let mut seen: HashMap<String, u64> = HashMap::new();
        let events = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|n| n.metadata.managed_fields = None)
            .reflect(writer);
        let mut events = std::pin::pin!(events);
        while let Some(ev) = events.next().await {
            let changed = match ev {
                Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => {
                    let h = relevant(&n);
                    seen.insert(n.name_any(), h) != Some(h)
                }
                Ok(watcher::Event::Delete(n)) => {
                    seen.remove(&n.name_any());
                    true
                }
                Ok(watcher::Event::InitDone) => true,
                Ok(watcher::Event::Init) => false,
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

fn relevant(n: &PartialObjectMeta<Node>) -> u64 {
    let mut h = DefaultHasher::new();
    n.labels().hash(&mut h);
    for key in [MC_CURRENT_CONFIG, MC_DESIRED_CONFIG, MC_STATE] {
        n.annotations().get(key).hash(&mut h);
    }
    h.finish()
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
            .modify(|st| st.metadata.managed_fields = None)
            .reflect(writer);
        let mut events = std::pin::pin!(events);
        while let Some(ev) = events.next().await {
            match ev {
                Ok(watcher::Event::Apply(st) | watcher::Event::InitApply(st)) => {
                    let failed =
                        st.spec.last_result.condition == FileIntegrityNodeCondition::Failed;
                    metrics.set_failed(&owner(&st), &st.spec.node_name, failed);
                }
                Ok(watcher::Event::Delete(st)) => metrics.forget(&owner(&st), &st.spec.node_name),
                Ok(_) => {}
                Err(e) => tracing::warn!("watching node statuses: {e}"),
            }
        }
    });
    store
}

/// The FileIntegrity a node status belongs to (its owner label).
pub fn owner(st: &FileIntegrityNodeStatus) -> String {
    st.labels()
        .get(names::OWNER_LABEL)
        .cloned()
        .unwrap_or_default()
}
