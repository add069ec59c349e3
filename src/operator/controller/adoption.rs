//! Taking over from upstream's operator (an upgrade from openshift/file-integrity-operator,
//! by OLM or by hand). Its FileIntegrity objects, config ConfigMaps, node statuses and node
//! databases are ours as they are; what its controller made that ours does not use goes:
//!
//! * A scan DaemonSet `aide-<fi>` with fields written by upstream's controller (create/update
//!   under its field manager) is taken over once ([`take_over`]). Our server-side apply cannot
//!   remove fields another manager owns (upstream's `check-folder` init container,
//!   `LD_PRELOAD`/`GODEBUG`, the `/config` volume would stay in every pod), and a replace alone
//!   leaves that manager co-owning what it set. So: a replace with ours that also clears the
//!   field ownership, then our apply (the API server records what was there before under
//!   `before-first-apply`), then that record removed, so that our apply alone owns the
//!   DaemonSet from then on. The replace changes the pod template: the DaemonSet controller
//!   rolls the pods one node at a time, as in any update of the DaemonSet.
//! * Upstream's re-init DaemonSets (`aide-ini-*`, which touch `/run/aide.reinit` on nodes),
//!   the scan DaemonSets of its oldest versions (`aide-ds-*`), its script ConfigMaps
//!   (`aide-reinit`, `aide-pause`, `aide-script-<fi>`): deleted at start and at each take-over.
//!   Nothing here deletes what ours makes: each is recognised by upstream's names and shapes.
//! * `/run/aide.reinit` on each node is removed by the daemon (fio_daemon).
//!
//! The decisions are pure functions of the objects read; [`sweep`] and [`take_over`] write.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::ResourceExt;

use super::context::{Context, MANAGER};
use super::error::{Error, KubeContext, Step};
use fio_api::names;

/// Where the API server records the fields an object had before its first server-side apply
/// when it had no field ownership at all: left by a take-over that stopped halfway.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// Writes of the field ownership tried before a take-over is left to the next reconcile.
const STRIP_ATTEMPTS: usize = 5;

/// Whether `entry` records fields of the DaemonSet's main resource that are not ours to keep:
/// upstream's controller's, or a take-over's that stopped halfway.
fn foreign(entry: &ManagedFieldsEntry) -> bool {
    let manager = entry.manager.as_deref().unwrap_or_default();
    (manager == names::UPSTREAM_FIELD_MANAGER || manager == BEFORE_FIRST_APPLY)
        && entry.subresource.as_deref().unwrap_or_default().is_empty()
}

/// Whether `ds` has fields written by upstream's controller (its main resource, not the status
/// the DaemonSet controller writes), or left by a take-over that stopped halfway.
pub fn written_by_upstream(ds: &DaemonSet) -> bool {
    ds.metadata.managed_fields.iter().flatten().any(foreign)
}

/// Whether `ds` is one of upstream's DaemonSets ours has no use for: a re-init DaemonSet, or a
/// scan DaemonSet of its oldest versions.
pub fn upstream_leftover_daemonset(ds: &DaemonSet) -> bool {
    let name = ds.name_any();
    // `aide-ds-<fi>` of FileIntegrity `<fi>`; ours for a FileIntegrity named `ds-<fi>` has the
    // same name and is not one.
    let legacy = ds.labels().get(names::OWNER_LABEL).is_some_and(|fi| {
        name == format!("{}{fi}", names::UPSTREAM_LEGACY_DAEMONSET_PREFIX)
            && name != names::daemonset_name(fi)
    });
    legacy || ds.labels().contains_key(names::UPSTREAM_REINIT_OWNER_LABEL)
}

/// Whether `cm` is one of upstream's script ConfigMaps: its name and exactly its data key.
pub fn upstream_script_config_map(cm: &ConfigMap) -> bool {
    let name = cm.name_any();
    let keys: Vec<&String> = cm.data.iter().flat_map(|d| d.keys()).collect();
    names::UPSTREAM_SCRIPT_CONFIGMAPS
        .iter()
        .any(|(n, key)| name == *n && keys == [key])
        || (name.starts_with(names::UPSTREAM_SCRIPT_CONFIGMAP_PREFIX)
            && cm
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .any(|f| f.manager.as_deref() == Some(names::UPSTREAM_FIELD_MANAGER)))
}

/// Delete `name` (and what it owns) if it is still the object read (`uid`); gone already is
/// fine. Returns whether it was deleted now.
async fn delete_exact<K>(
    api: &kube::Api<K>,
    name: &str,
    uid: Option<String>,
) -> Result<bool, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove upstream's leftovers from the namespace (see the module documentation); `fis` are the
/// FileIntegrity names whose legacy `aide-script-<fi>` ConfigMaps are looked for. Returns how
/// many objects were deleted.
pub async fn sweep(ctx: &Context, fis: &[String]) -> Result<usize, Error> {
    let ns = ctx.namespace.as_str();
    let mut deleted = 0;
    let dss = ctx.api::<DaemonSet>();
    let mut leftovers = dss
        .list(&ListParams::default().labels(names::UPSTREAM_REINIT_OWNER_LABEL))
        .await
        .ctx(Step::SweepUpstream, || {
            format!("listing upstream's re-init DaemonSets in {ns}")
        })?
        .items;
    leftovers.extend(
        dss.list(&ListParams::default().labels(names::OWNER_LABEL))
            .await
            .ctx(Step::SweepUpstream, || {
                format!("listing the scan DaemonSets in {ns}")
            })?
            .items,
    );
    for ds in leftovers.iter().filter(|d| upstream_leftover_daemonset(d)) {
        let name = ds.name_any();
        // Their pods go with them.
        let gone = delete_exact(&dss, &name, ds.uid())
            .await
            .ctx(Step::SweepUpstream, || {
                format!("deleting upstream's DaemonSet {ns}/{name}")
            })?;
        if gone {
            tracing::info!("deleted upstream's DaemonSet {name}: this operator has no use for it");
            ctx.metrics.daemonset_update("delete");
            deleted += 1;
        }
    }
    let cms = ctx.api::<ConfigMap>();
    let script_names = names::UPSTREAM_SCRIPT_CONFIGMAPS
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .chain(
            fis.iter()
                .map(|fi| format!("{}{fi}", names::UPSTREAM_SCRIPT_CONFIGMAP_PREFIX)),
        );
    for name in script_names {
        let Some(cm) = cms.get_opt(&name).await.ctx(Step::SweepUpstream, || {
            format!("reading ConfigMap {ns}/{name}")
        })?
        else {
            continue;
        };
        if !upstream_script_config_map(&cm) {
            continue;
        }
        let gone = delete_exact(&cms, &name, cm.uid())
            .await
            .ctx(Step::SweepUpstream, || {
                format!("deleting upstream's ConfigMap {ns}/{name}")
            })?;
        if gone {
            tracing::info!("deleted upstream's ConfigMap {name}: this operator has no use for it");
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Take over the DaemonSet upstream's controller wrote (read at `resource_version`) as `ours`
/// (see the module documentation), then sweep upstream's other leftovers of FileIntegrity `fi`.
pub async fn take_over(
    ctx: &Context,
    fi: &str,
    ours: &DaemonSet,
    resource_version: &str,
) -> Result<(), Error> {
    let name = ours.name_any();
    let ns = ctx.namespace.as_str();
    let api = ctx.api::<DaemonSet>();
    let mut replacement = ours.clone();
    replacement.metadata.resource_version = Some(resource_version.to_owned());
    // One empty entry clears the field ownership (an empty list would leave it as it is).
    replacement.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
    let pp = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    api.replace(&name, &pp, &replacement)
        .await
        .ctx(Step::TakeOverDaemonSet, || {
            format!("replacing DaemonSet {ns}/{name} (upstream's) with ours")
        })?;
    let mut current = ctx.apply(ours).await.ctx(Step::ApplyDaemonSet, || {
        format!("applying DaemonSet {ns}/{name}")
    })?;
    // The DaemonSet controller writes the status meanwhile (a new resourceVersion): read again
    // and retry, a few times, before leaving it to the next reconcile.
    for attempt in 1..=STRIP_ATTEMPTS {
        if !written_by_upstream(&current) {
            break;
        }
        let kept: Vec<&ManagedFieldsEntry> = current
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|e| !foreign(e))
            .collect();
        // A merge patch replaces the list whole; the resourceVersion makes it conditional.
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": current.resource_version(),
            "managedFields": kept,
        }});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(ds) => current = ds,
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < STRIP_ATTEMPTS => {
                current = api.get(&name).await.ctx(Step::TakeOverDaemonSet, || {
                    format!("reading DaemonSet {ns}/{name}")
                })?;
            }
            Err(e) => {
                return Err(e).ctx(Step::TakeOverDaemonSet, || {
                    format!("leaving DaemonSet {ns}/{name} to this operator's apply alone")
                })
            }
        }
    }
    tracing::info!(
        "DaemonSet {name} was written by upstream's operator: replaced by ours, which alone owns \
         it now; its pods roll one node at a time"
    );
    ctx.metrics.daemonset_update("update");
    sweep(ctx, &[fi.to_owned()]).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
