//! What both controllers share: the client and the watched namespace, the caches, the
//! metrics, and the Events they publish ([`events`] decides which).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{PartialObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource};

use super::{admission, events};
use crate::metrics::Metrics;
use fio_api::{names, FileIntegrity, FileIntegrityNodeStatus};

/// The field manager of every server-side apply the operator makes.
pub const MANAGER: &str = "fio-operator";

/// Shared by both controllers.
pub struct Context {
    pub client: Client,
    /// The namespace the operator watches (its own by default, as upstream).
    pub namespace: String,
    /// The image of the daemon pods.
    pub image: String,
    /// Who publishes the Events (see [`Context::event`]).
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    /// Every Node's metadata (see [`cache`]).
    pub nodes: Store<PartialObjectMeta<Node>>,
    /// Every node status in the namespace.
    pub statuses: Store<FileIntegrityNodeStatus>,
    /// The FileIntegrity controller's own cache of FileIntegrities.
    pub fis: Store<FileIntegrity>,
    /// How long a node may stay paused for a MachineConfig update before it is reported.
    pub max_pause: Duration,
    /// Without the MachineConfigPool API, re-initialise a node at the end of an update its own
    /// annotations announce (upstream's behaviour; off by default: see `fio_api::holdoff`).
    pub trust_node_annotations: bool,
    /// Whether the daemons' admission policy is in force ([`admission`]).
    pub admission: tokio::sync::watch::Receiver<admission::Admission>,
    /// Which Events are published, and how (see [`events`]).
    pub events: std::sync::Mutex<events::Correlator>,
}

impl Context {
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Server-side apply `obj` (named, in the watched namespace) as the operator's field manager.
    pub async fn apply<K>(&self, obj: &K) -> Result<K, kube::Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(obj),
            )
            .await
    }

    /// Publish an Event about `obj`; a failure is logged, never fatal (Events are best effort).
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        self.publish(obj, None, warning, reason, note).await;
    }

    /// An Event about `obj` concerning `node` (the Event's `related` object, which
    /// `kubectl describe` shows).
    pub async fn node_event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        node: &str,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let related = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_owned()),
            ..ObjectReference::default()
        };
        self.publish(obj, Some(related), warning, reason, note)
            .await;
    }

    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        related: Option<ObjectReference>,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        self.publish_ref(&obj.object_ref(&()), related, warning, reason, note)
            .await;
    }

    /// One Event as [`events::Correlator`] decides: created, counted on its series, or
    /// dropped. Best effort: a failure is logged.
    async fn publish_ref(
        &self,
        reference: &ObjectReference,
        related: Option<ObjectReference>,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let subject = events::Subject {
            object: reference.uid.clone().unwrap_or_default(),
            warning,
            reason: reason.to_owned(),
            node: related.as_ref().and_then(|r| r.name.clone()),
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        // The name kube's recorder gives: the object's, then the time in hex nanoseconds.
        let new_name = format!(
            "{}.{:x}",
            reference.name.as_deref().unwrap_or(MANAGER),
            now.as_nanosecond()
        );
        let emit = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(&subject, &note, std::time::Instant::now(), new_name);
        let ns = reference.namespace.as_deref().unwrap_or(&self.namespace);
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let (name, written) = match emit {
            events::Emit::Dropped => {
                tracing::debug!("event {reason} dropped (rate): {note}");
                self.metrics.event_dropped();
                return;
            }
            events::Emit::Coalesced => return,
            events::Emit::Create { name, note } => {
                let ev = Event {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(ns.to_owned()),
                        ..ObjectMeta::default()
                    },
                    action: Some(reason.to_owned()),
                    reason: Some(reason.to_owned()),
                    note: Some(note),
                    event_time: Some(MicroTime(now)),
                    regarding: Some(reference.clone()),
                    related,
                    reporting_controller: Some(self.reporter.controller.clone()),
                    reporting_instance: Some(
                        self.reporter
                            .instance
                            .clone()
                            .unwrap_or_else(|| self.reporter.controller.clone()),
                    ),
                    type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
                    ..Event::default()
                };
                let mut r = api.create(&PostParams::default(), &ev).await.map(drop);
                // Repeats counted while it was being created: one write for all of them.
                let pending = self
                    .events
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .created(&name);
                if let (Ok(()), Some(events::Emit::Repeat { count, .. })) = (&r, pending) {
                    r = repeat(&api, &name, count, now).await;
                }
                (name, r)
            }
            events::Emit::Repeat { name, count } => {
                let r = repeat(&api, &name, count, now).await;
                (name, r)
            }
        };
        if let Err(e) = written {
            tracing::warn!("publishing event {reason}: {e}");
            self.events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .failed(&name);
        }
    }
}

/// Count a repeat on the Event `name`'s series.
async fn repeat(
    api: &Api<Event>,
    name: &str,
    count: i32,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "series": {"count": count, "lastObservedTime": MicroTime(now)},
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

/// The daemon image: `$RELATED_IMAGE_OPERATOR`, else the image of the operator's own
/// Deployment (upstream's order is the reverse, but the variable is what OLM and
/// `kustomize edit set image` set), else upstream's default.
pub async fn daemon_image(client: &Client, namespace: &str) -> String {
    if let Ok(image) = std::env::var(names::ENV_RELATED_IMAGE_OPERATOR) {
        if !image.is_empty() {
            return image;
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    if let Ok(Some(d)) = deployments.get_opt(names::OPERATOR_DEPLOYMENT).await {
        if let Some(image) = d
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.image)
        {
            return image;
        }
    }
    names::DEFAULT_OPERATOR_IMAGE.to_owned()
}
