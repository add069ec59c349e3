//! The operator: a controller for FileIntegrity objects ([`fileintegrity`]: configuration,
//! DaemonSet, re-init requests, phase) and one for the daemons' scan results ([`results`]:
//! node statuses, persistent failure reports, Events). Design notes in NOTES.md.

pub mod admission;
pub mod adoption;
pub mod cache;
pub mod context;
pub mod daemonset;
pub mod error;
pub mod events;
pub mod fileintegrity;
pub mod manifests;
pub mod results;
pub mod silence;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

use crate::metrics::Metrics;
use context::{daemon_image, Context};
use error::Error;
use fio_api::{names, FileIntegrity, FileIntegrityNodeStatus};

/// How long the FileIntegrity controller waits for triggers to stop before it reconciles.
const FI_DEBOUNCE: Duration = Duration::from_millis(300);

/// Results processed at once. Unbounded, a thousand nodes reporting together put a thousand
/// reconciles (three requests each) in flight: the scale bench measured 46.9 MiB peak RSS
/// unbounded, 39.7 MiB at 64 with the same latency, 34.7 MiB at 16 but 5 s behind.
const RESULTS_CONCURRENCY: u16 = 64;

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
    let error = r.as_ref().err().map(Error::metric_label);
    metrics.reconciled(controller, start.elapsed(), error);
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
