//! Reconcile one FileIntegrity: its AIDE configuration, re-init requests, DaemonSet, stale node
//! statuses and phase. [`reconcile`] reads, [`plan::plan`] decides, [`apply`] writes; every write
//! is skipped when the object already says the same.

pub mod machine_config;
pub mod plan;
pub mod updates;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::context::{Context, MANAGER};
use super::error::{Error, KubeContext, Step};
use super::{adoption, cache, daemonset};
use fio_api::{aideconf, names, FileIntegrity, FileIntegrityNodeStatus, Holdoff};
use machine_config::{NodeUpdate, Pool};
use plan::{Observed, Plan, Wanted};
use updates::{NodeInfo, Nodes};

pub async fn reconcile(fi: Arc<FileIntegrity>, ctx: Arc<Context>) -> Result<Action, Error> {
    if fi.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = fi.name_any();
    let ns = ctx.namespace.as_str();
    let deployed_cm = ctx
        .api::<ConfigMap>()
        .get_opt(&name)
        .await
        .ctx(Step::ReadConfig, || {
            format!("reading ConfigMap {ns}/{name}")
        })?;
    let deployed_labelled = deployed_cm.as_ref().is_some_and(|cm| {
        let labels = cm.metadata.labels.as_ref();
        labels.is_some_and(|l| {
            l.contains_key(names::AIDE_CONFIG_LABEL)
                && l.get(names::OWNER_LABEL).is_some_and(|o| *o == name)
        })
    });
    let deployed = deployed_cm
        .and_then(|cm| cm.data)
        .and_then(|mut d| d.remove(names::DEFAULT_CONFIG_DATA_KEY));
    let wanted = wanted_config(&fi, &ctx).await?;
    // From the caches (a full list per reconcile would cost O(nodes) per result on a large
    // cluster); a change either of them misses yet triggers another reconcile.
    let nodes: Nodes = ctx
        .nodes
        .state()
        .iter()
        .map(|n| {
            let info = NodeInfo {
                labels: n.labels().clone(),
                update: NodeUpdate::of(n.annotations()),
                current_config: machine_config::current_config(n.annotations()).map(str::to_owned),
            };
            (n.name_any(), info)
        })
        .collect();
    let statuses: Vec<FileIntegrityNodeStatus> = ctx
        .statuses
        .state()
        .iter()
        .filter(|st| cache::owner(st) == name)
        .map(|st| FileIntegrityNodeStatus::clone(st))
        .collect();
    let ds_name = names::daemonset_name(&name);
    let daemonset = ctx
        .api::<DaemonSet>()
        .get_opt(&ds_name)
        .await
        .ctx(Step::ReadDaemonSet, || {
            format!("reading DaemonSet {ns}/{ds_name}")
        })?;
    let priority_class_found = priority_class_exists(&fi, &ctx).await?;
    // Only while a node is paused or starts an update: what its pool has rolled out is
    // recorded when the pause begins, and the pool confirms (or not) the end of the update.
    let updating = nodes
        .values()
        .any(|n| n.update == Some(NodeUpdate::Updating));
    let pools = match Holdoff::of(&fi) {
        Holdoff::Nodes(_) => machine_config_pools(&ctx).await?,
        _ if updating => machine_config_pools(&ctx).await?,
        _ => None,
    };
    let fi2 = fi.clone();
    let (image, namespace) = (ctx.image.clone(), ctx.namespace.clone());
    let (max_pause, trust_node_annotations) = (ctx.max_pause, ctx.trust_node_annotations);
    let admission = ctx.admission.borrow().clone();
    // Validating the configuration evaluates it (no I/O on a detached host, but CPU for a
    // large one): off the async runtime.
    let plan = tokio::task::spawn_blocking(move || {
        plan::plan(&Observed {
            fi: &fi2,
            namespace: &namespace,
            image: &image,
            deployed: deployed.as_deref(),
            deployed_labelled,
            wanted,
            nodes: &nodes,
            statuses: &statuses,
            daemonset: daemonset.as_ref(),
            priority_class_found,
            pools: pools.as_deref(),
            max_pause,
            trust_node_annotations,
            admission: &admission,
            now: Timestamp::now(),
        })
    })
    .await
    .map_err(|e| Error::Internal(format!("planning FileIntegrity {name}: {e}")))?;
    apply(&fi, &ctx, plan).await
}

/// The configuration `fi` asks for: the default (without the excludes `spec.platformRules`
/// replaces), or the user's ConfigMap converted.
async fn wanted_config(fi: &FileIntegrity, ctx: &Context) -> Result<Wanted, Error> {
    let Some((ns, name)) = fi.spec.config.user_config_map() else {
        return Ok(Wanted::Text(aideconf::default_config(
            fi.spec.platform_rules,
        )));
    };
    let key = fi.spec.config.data_key();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = api.get_opt(name).await.ctx(Step::ReadUserConfig, || {
        format!("reading the user configuration ConfigMap {ns}/{name}")
    })?;
    let Some(cm) = cm else {
        tracing::warn!("user-specified configMap {ns}/{name} does not exist");
        return Ok(Wanted::Keep);
    };
    match cm.data.as_ref().and_then(|d| d.get(key)) {
        Some(text) if !text.is_empty() => Ok(Wanted::Text(aideconf::convert_user_config(text))),
        _ => {
            tracing::warn!("user-specified configMap {ns}/{name} has no data in key {key}");
            Ok(Wanted::Keep)
        }
    }
}

/// The MachineConfigPools, `None` where the API does not exist (not OpenShift).
async fn machine_config_pools(ctx: &Context) -> Result<Option<Vec<Pool>>, Error> {
    let gvk = GroupVersionKind::gvk(
        "machineconfiguration.openshift.io",
        "v1",
        "MachineConfigPool",
    );
    let ar = ApiResource::from_gvk_with_plural(&gvk, "machineconfigpools");
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(
            list.items
                .iter()
                .map(|o| Pool::from_json(&serde_json::to_value(o).unwrap_or_default()))
                .collect(),
        )),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e).ctx(Step::ListPools, || "listing MachineConfigPools".to_owned()),
    }
}

/// Whether the priority class the FileIntegrity names exists (`None`: it names none).
async fn priority_class_exists(fi: &FileIntegrity, ctx: &Context) -> Result<Option<bool>, Error> {
    let pc = &fi.spec.priority_class_name;
    if pc.is_empty() {
        return Ok(None);
    }
    let found = Api::<PriorityClass>::all(ctx.client.clone())
        .get_opt(pc)
        .await
        .ctx(Step::ReadPriorityClass, || {
            format!("reading PriorityClass {pc}")
        })?;
    Ok(Some(found.is_some()))
}

/// The daemons' access to the configuration ([`daemonset::daemon_role`]): applied when the
/// Role or its binding is missing or differs
/// (two GETs per reconcile otherwise), before the DaemonSet, so a new daemon finds it. The Role
/// first: the API server checks a binding against the Role it names.
async fn ensure_daemon_role(fi: &FileIntegrity, ctx: &Context) -> Result<(), Error> {
    let (role, binding) = daemonset::daemon_role(fi, &ctx.namespace);
    let name = role.name_any();
    let current_role = ctx
        .api::<Role>()
        .get_opt(&name)
        .await
        .ctx(Step::ReadRbac, || format!("reading Role {name}"))?;
    let current_binding = ctx
        .api::<RoleBinding>()
        .get_opt(&name)
        .await
        .ctx(Step::ReadRbac, || format!("reading RoleBinding {name}"))?;
    let role_ok = current_role.is_some_and(|r| r.rules == role.rules);
    let binding_ok = current_binding
        .is_some_and(|b| b.role_ref == binding.role_ref && b.subjects == binding.subjects);
    if role_ok && binding_ok {
        return Ok(());
    }
    ctx.apply(&role)
        .await
        .ctx(Step::ApplyRbac, || format!("applying Role {name}"))?;
    ctx.apply(&binding)
        .await
        .ctx(Step::ApplyRbac, || format!("applying RoleBinding {name}"))?;
    tracing::info!(
        "Role and RoleBinding {name} applied: the daemons may read ConfigMap {}",
        fi.name_any()
    );
    Ok(())
}

/// Delete `what` `name` of a node that no longer exists (already gone is fine).
async fn delete_gone<K>(api: &Api<K>, name: &str, what: &str) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            tracing::info!("deleted {what} {name}: its node is gone");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e).ctx(Step::DeleteStale, || {
            format!("deleting {what} {name} of a deleted node")
        }),
    }
}

/// Write what the plan decided, in its order: config, requests, DaemonSet, stale statuses,
/// status; then the Events and metrics of what was written.
async fn apply(fi: &FileIntegrity, ctx: &Context, plan: Plan) -> Result<Action, Error> {
    let name = fi.name_any();
    let ns = ctx.namespace.as_str();
    if let Some(cm) = &plan.config_map {
        ctx.apply(cm).await.ctx(Step::ApplyConfig, || {
            format!("applying the AIDE configuration ConfigMap {ns}/{name}")
        })?;
        tracing::info!("AIDE configuration {name} updated");
    }
    let r = &plan.requests;
    if let Some(patch) = &r.patch {
        ctx.api::<FileIntegrity>()
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .ctx(Step::RecordReinit, || {
                format!("recording re-init requests on FileIntegrity {name}")
            })?;
        for by in &r.triggers {
            ctx.metrics.reinit(*by, "");
        }
        for n in &r.paused {
            ctx.metrics.pause(n);
        }
        for n in &r.resumed {
            ctx.metrics.unpause(n);
        }
        for n in &r.released {
            ctx.metrics.unpause(n);
        }
    }
    ensure_daemon_role(fi, ctx).await?;
    if let Some(ds) = &plan.daemonset {
        let ds_name = ds.name_any();
        if let Some(rv) = &plan.take_over_daemonset {
            adoption::take_over(ctx, &name, ds, rv).await?;
        } else {
            ctx.apply(ds).await.ctx(Step::ApplyDaemonSet, || {
                format!("applying DaemonSet {ns}/{ds_name}")
            })?;
            tracing::info!("DaemonSet {ds_name} applied");
            ctx.metrics.daemonset_update("update");
        }
    }
    let nss = ctx.api::<FileIntegrityNodeStatus>();
    // A node that is gone: its status, and its result ConfigMap, which its daemons may no
    // longer update.
    for st_name in &plan.stale_statuses {
        delete_gone(&nss, st_name, "node status").await?;
    }
    for cm_name in &plan.stale_results {
        delete_gone(&ctx.api::<ConfigMap>(), cm_name, "ConfigMap").await?;
    }
    for st in &plan.silent {
        let st_name = st.name_any();
        // A replace at the resourceVersion read: a result recorded meanwhile wins (409).
        match nss.replace(&st_name, &PostParams::default(), st).await {
            Ok(_) => tracing::warn!(
                "node status {st_name}: {}",
                st.spec.last_result.error_message
            ),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
            Err(e) => {
                return Err(e).ctx(Step::MarkSilent, || {
                    format!("marking node status {st_name} silent")
                })
            }
        }
    }
    if let Some(status) = &plan.status {
        // Applied by this manager alone: leaving `message` out removes the one we set before.
        let patch = json!({
            "apiVersion": names::API_VERSION,
            "kind": names::FILE_INTEGRITY_KIND,
            "status": status,
        });
        ctx.api::<FileIntegrity>()
            .patch_status(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .ctx(Step::WriteStatus, || {
                format!("writing the status of FileIntegrity {name}")
            })?;
    }
    if let Some(st) = plan.status.as_ref().or(fi.status.as_ref()) {
        ctx.metrics.set_pauses(&name, &st.node_pauses);
    }
    if let Some((phase, error_kind)) = plan.phase_changed {
        tracing::info!("FileIntegrity {name}: phase {phase}");
        ctx.metrics.phase(phase.as_str());
        if phase == fio_api::FileIntegrityStatusPhase::Error {
            ctx.metrics.error(error_kind);
        }
    }
    if plan.daemonset.is_none() && plan.requeue != plan::RESYNC {
        tracing::info!(
            "Re-queuing request for {} seconds for initial delay",
            plan.requeue.as_secs()
        );
    }
    for e in plan.events {
        ctx.event(fi, e.warning, e.reason, e.note).await;
    }
    Ok(Action::requeue(plan.requeue))
}
