//! The operator: a controller for FileIntegrity objects ([`fileintegrity`]: configuration,
//! DaemonSet, re-init requests, phase) and one for the daemons' scan results ([`results`]:
//! node statuses, persistent failure reports, Events). Design notes in NOTES.md.

pub mod admission;
pub mod adoption;
pub mod cache;
pub mod daemonset;
pub mod events;
pub mod fileintegrity;
pub mod manifests;
pub mod results;
pub mod silence;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Node, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PartialObjectMeta;
use kube::api::PostParams;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};

use crate::metrics::Metrics;
use fio_api::{names, FileIntegrity, FileIntegrityNodeStatus};

/// How long the FileIntegrity controller waits for triggers to stop before it reconciles.
const FI_DEBOUNCE: Duration = Duration::from_millis(300);

/// The field manager of every server-side apply the operator makes.
pub const MANAGER: &str = "fio-operator";

/// Results processed at once. Unbounded, a thousand nodes reporting together put a thousand
/// reconciles (three requests each) in flight: the scale bench measured 46.9 MiB peak RSS
/// unbounded, 39.7 MiB at 64 with the same latency, 34.7 MiB at 16 but 5 s behind.
const RESULTS_CONCURRENCY: u16 = 64;

/// What a reconcile can fail on. Each variant names the object the operator was working on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// A task of the operator's own failed (a panic in a blocking task).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// A write lost a race against another writer: retry at once with fresh data.
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube { source: kube::Error::Api(s), .. } if s.code == 409)
    }

    /// A conditional write planned from a stale copy: a conflict, or a replace of an object
    /// deleted meanwhile.
    fn is_stale_write(&self) -> bool {
        self.is_conflict()
            || matches!(self, Error::Kube { source: kube::Error::Api(s), .. } if s.code == 404)
    }
}

/// Attach what the operator was doing to a kube error.
pub(crate) trait KubeContext<T> {
    fn ctx(self, action: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> KubeContext<T> for Result<T, kube::Error> {
    fn ctx(self, action: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Kube {
            action: action(),
            source,
        })
    }
}

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

fn error_policy<K>(_obj: Arc<K>, err: &Error, _ctx: Arc<Context>) -> Action {
    if err.is_conflict() {
        tracing::debug!("{err}; retrying");
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!("{err}");
    Action::requeue(Duration::from_secs(5))
}

/// `reconcile`, counted and timed in the metrics.
async fn timed<K, F>(
    controller: &'static str,
    reconcile: impl FnOnce(Arc<K>, Arc<Context>) -> F,
    obj: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, Error>
where
    F: std::future::Future<Output = Result<Action, Error>>,
{
    let start = std::time::Instant::now();
    let metrics = ctx.metrics.clone();
    metrics.reconcile_started(controller);
    let r = reconcile(obj, ctx).await;
    metrics.reconciled(controller, start.elapsed(), r.is_ok());
    r
}

/// Run both controllers until SIGTERM/SIGINT.
pub async fn run(
    client: Client,
    namespace: String,
    metrics: Arc<Metrics>,
    max_pause: Duration,
    trust_node_annotations: bool,
) -> anyhow::Result<()> {
    let image = daemon_image(&client, &namespace).await;
    tracing::info!("watching namespace {namespace}; daemon image {image}");
    let admission = admission::guard(
        client.clone(),
        manifests::objects(&namespace)
            .map_err(|e| anyhow::anyhow!("deploy/ manifests: {e}"))?
            .into_iter()
            .filter(manifests::is_admission)
            .collect(),
        namespace.clone(),
        image.clone(),
    );
    // Every FileIntegrity is looked at again when the policy's state changes.
    let admission_changes = futures::stream::unfold(admission.clone(), |mut rx| async move {
        rx.changed().await.ok().map(|()| ((), rx))
    });
    let (nodes, node_changes) = cache::nodes(Api::<PartialObjectMeta<Node>>::all(client.clone()));
    let statuses =
        cache::node_statuses(Api::namespaced(client.clone(), &namespace), metrics.clone());
    nodes
        .wait_until_ready()
        .await
        .map_err(|e| anyhow::anyhow!("caching nodes: {e}"))?;
    statuses
        .wait_until_ready()
        .await
        .map_err(|e| anyhow::anyhow!("caching node statuses: {e}"))?;
    // Debounced: on a large cluster the first scans of all nodes update node statuses many
    // times a second, and the phase needs one look after the burst, not one per node status.
    let fi_controller = Controller::new(
        Api::<FileIntegrity>::namespaced(client.clone(), &namespace),
        watcher::Config::default(),
    )
    .with_config(controller::Config::default().debounce(FI_DEBOUNCE));
    let store = fi_controller.store();
    let ctx = Arc::new(Context {
        reporter: Reporter {
            controller: names::OPERATOR_NAME.into(),
            instance: std::env::var(names::ENV_POD_NAME).ok(),
        },
        client: client.clone(),
        namespace: namespace.clone(),
        image,
        metrics: metrics.clone(),
        nodes,
        statuses,
        fis: store.clone(),
        max_pause,
        trust_node_annotations,
        admission,
        events: std::sync::Mutex::new(events::Correlator::default()),
    });
    manifests::ensure(&client, &namespace).await;
    // Upstream's leftovers of an upgrade to us; a failure is retried at the next adoption.
    let fis: Vec<String> = match ctx
        .api::<FileIntegrity>()
        .list_metadata(&Default::default())
        .await
    {
        Ok(list) => list.items.iter().map(kube::ResourceExt::name_any).collect(),
        Err(e) => {
            tracing::warn!("listing FileIntegrity objects for upstream's leftovers: {e}");
            Vec::new()
        }
    };
    match adoption::sweep(&ctx, &fis).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} objects upstream's operator left"),
        Err(e) => tracing::warn!("removing what upstream's operator left: {e}"),
    }

    let by_config = store.clone();
    let fi_controller = fi_controller
        .owns(
            ctx.api::<DaemonSet>(),
            watcher::Config::default().labels(names::OWNER_LABEL),
        )
        .owns(
            ctx.api::<FileIntegrityNodeStatus>(),
            watcher::Config::default().labels(names::OWNER_LABEL),
        )
        // The rendered config ConfigMap `<fi>` and the user's ConfigMaps (upstream's mapper),
        // by their metadata only: what nodes create (results up to 1 MiB each) is never held.
        .watches(
            ctx.api::<PartialObjectMeta<ConfigMap>>(),
            watcher::Config::default(),
            move |cm: PartialObjectMeta<ConfigMap>| {
                let cm_name = cm.metadata.name.unwrap_or_default();
                let cm_ns = cm.metadata.namespace.unwrap_or_default();
                by_config
                    .state()
                    .into_iter()
                    .filter(|fi| {
                        let c = &fi.spec.config;
                        let fi_name = fi.metadata.name.as_deref().unwrap_or_default();
                        fi_name == cm_name || (c.name == cm_name && c.namespace == cm_ns)
                    })
                    .map(|fi| ObjectRef::from_obj(&*fi))
                    .collect::<Vec<_>>()
            },
        )
        // Nodes joining, leaving, changing labels (what each FileIntegrity selects) or
        // machine-config state (pause, resume); not every status heartbeat.
        .reconcile_all_on(futures::stream::select(node_changes, admission_changes))
        .shutdown_on_signal()
        .run(
            |fi, ctx| timed("fileintegrity", fileintegrity::reconcile, fi, ctx),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move {
            if let Ok((obj, _)) = r {
                tracing::debug!("reconciled FileIntegrity {}", obj.name);
            }
        });

    // Metadata only (an `Api<PartialObjectMeta<_>>` watches metadata): a Failed result may carry
    // a 1 MiB report, and nodes create them. The store keeps what finding a result needs (name,
    // labels, uid) and the verdict of a Succeeded one (`cache::slim_result`); reconcile reads
    // any other ConfigMap itself once its owner is known to exist.
    let (results, results_writer) = reflector::store();
    let result_metas = watcher::watcher(
        ctx.api::<PartialObjectMeta<ConfigMap>>(),
        watcher::Config::default().labels(names::LOG_LABEL),
    )
    .default_backoff()
    .modify(|cm| cache::slim_result(&mut cm.metadata))
    .reflect(results_writer)
    .applied_objects();
    let results_controller = Controller::for_stream(result_metas, results)
        .with_config(controller::Config::default().concurrency(RESULTS_CONCURRENCY))
        .shutdown_on_signal()
        .run(
            |cm, ctx| timed("results", results::reconcile, cm, ctx),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move {
            if let Ok((obj, _)) = r {
                tracing::debug!("processed result ConfigMap {}", obj.name);
            }
        });

    tokio::join!(fi_controller, results_controller);
    tracing::info!("stopped");
    Ok(())
}
