//! Taking over from upstream's operator (an upgrade from openshift/file-integrity-operator,
//! by OLM or by hand). Its FileIntegrity objects, config ConfigMaps, node statuses and node
//! databases are ours as they are; what its controller made that ours does not use goes:
//!
//! * A scan DaemonSet `aide-<fi>` with fields written by upstream's controller (create/update
//!   under its field manager) is replaced once. Our server-side apply cannot remove fields
//!   another manager owns (upstream's `check-folder` init container, `LD_PRELOAD`/`GODEBUG`,
//!   the `/config` volume would stay in every pod), and a replace (PUT) leaves that manager
//!   co-owning what it set. So the DaemonSet is deleted with its pods orphaned, and ours,
//!   applied under the same name and selector, adopts them and rolls them one node at a time:
//!   scanning stops for one pod restart per node, as in any update of the DaemonSet.
//! * Upstream's re-init DaemonSets (`aide-ini-*`, which touch `/run/aide.reinit` on nodes),
//!   the scan DaemonSets of its oldest versions (`aide-ds-*`), its script ConfigMaps
//!   (`aide-reinit`, `aide-pause`, `aide-script-<fi>`): deleted at start and at each
//!   adoption. Nothing here deletes what ours makes: each is recognised by upstream's names
//!   and shapes.
//! * `/run/aide.reinit` on each node is removed by the daemon (fio_daemon).
//!
//! The decisions are pure functions of the objects read; [`sweep`] and [`replace`] write.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, Preconditions, PropagationPolicy};
use kube::ResourceExt;

use super::{Context, Error, KubeContext};
use fio_api::names;

/// Whether upstream's controller wrote fields of `ds` (its main resource, not the status the
/// DaemonSet controller writes).
pub fn written_by_upstream(ds: &DaemonSet) -> bool {
    ds.metadata.managed_fields.iter().flatten().any(|f| {
        f.manager.as_deref() == Some(names::UPSTREAM_FIELD_MANAGER)
            && f.subresource.as_deref().unwrap_or_default().is_empty()
    })
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

/// Delete `name` if it is still the object read (`uid`); gone already is fine.
async fn delete_exact<K>(
    api: &kube::Api<K>,
    name: &str,
    uid: Option<String>,
    propagation: PropagationPolicy,
) -> Result<bool, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let dp = DeleteParams {
        propagation_policy: Some(propagation),
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
        .ctx(|| format!("listing upstream's re-init DaemonSets in {ns}"))?
        .items;
    leftovers.extend(
        dss.list(&ListParams::default().labels(names::OWNER_LABEL))
            .await
            .ctx(|| format!("listing the scan DaemonSets in {ns}"))?
            .items,
    );
    for ds in leftovers.iter().filter(|d| upstream_leftover_daemonset(d)) {
        let name = ds.name_any();
        // Background: their pods go with them.
        let gone = delete_exact(&dss, &name, ds.uid(), PropagationPolicy::Background)
            .await
            .ctx(|| format!("deleting upstream's DaemonSet {ns}/{name}"))?;
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
        let Some(cm) = cms
            .get_opt(&name)
            .await
            .ctx(|| format!("reading ConfigMap {ns}/{name}"))?
        else {
            continue;
        };
        if !upstream_script_config_map(&cm) {
            continue;
        }
        let gone = delete_exact(&cms, &name, cm.uid(), PropagationPolicy::Background)
            .await
            .ctx(|| format!("deleting upstream's ConfigMap {ns}/{name}"))?;
        if gone {
            tracing::info!("deleted upstream's ConfigMap {name}: this operator has no use for it");
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Replace DaemonSet `name` (uid `uid`), written by upstream's controller, by ours: delete it
/// with its pods orphaned (they keep scanning until ours, applied once the deletion is complete,
/// adopts and rolls them), then sweep upstream's other leftovers of FileIntegrity `fi`.
pub async fn replace(
    ctx: &Context,
    fi: &str,
    name: &str,
    uid: Option<String>,
) -> Result<(), Error> {
    let ns = ctx.namespace.as_str();
    let deleted = delete_exact(
        &ctx.api::<DaemonSet>(),
        name,
        uid,
        PropagationPolicy::Orphan,
    )
    .await
    .ctx(|| format!("deleting DaemonSet {ns}/{name} (upstream's) to replace it"))?;
    if deleted {
        tracing::info!(
            "DaemonSet {name} was written by upstream's operator: deleted with its pods kept, \
             ours takes them over and rolls them one node at a time"
        );
        ctx.metrics.daemonset_update("delete");
    }
    sweep(ctx, &[fi.to_owned()]).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
