//! Whether a node's MachineConfig update is real (the end of a pause re-initialises it only
//! then).
//!
//! A node's own annotations are the node's word, and a node may be hostile (its root holds a
//! kubelet's credentials and may patch its own Node's annotations at will): they may pause and
//! resume its scans, never move its baseline. The end of an update re-initialises the node only
//! if its pool confirms it ([`confirms`]), from fields only the machine-config operator writes:
//! the node must now run its pool's target (`spec.configuration.name`), and that target must
//! differ from the config the pool had rolled out to all its machines when the pause began
//! (`status.configuration.name`, recorded in [`NodePause`] in the FileIntegrity's status). A
//! node that plays Working -> Done while its pool is settled is not updated, whatever its
//! annotations claimed. Without the MachineConfigPool API nothing confirms an update: scans
//! resume without a re-init (unless the operator is told to trust node annotations, upstream's
//! behaviour).

use std::collections::{BTreeMap, BTreeSet};

use fio_api::NodePause;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Annotations the machine-config daemon keeps on every node it manages.
pub const MC_CURRENT_CONFIG: &str = "machineconfiguration.openshift.io/currentConfig";
pub const MC_DESIRED_CONFIG: &str = "machineconfiguration.openshift.io/desiredConfig";
pub const MC_STATE: &str = "machineconfiguration.openshift.io/state";

/// Where a node is in a MachineConfig update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeUpdate {
    /// `state=Working` towards a different config: pause.
    Updating,
    /// Up to date (`state=Done`, current == desired) or `Degraded`: the update is over.
    Finished,
    /// In between (for example Done but a new config already desired): leave as it is.
    Other,
}

/// The node's `currentConfig` annotation.
pub fn current_config(annotations: &BTreeMap<String, String>) -> Option<&str> {
    annotations.get(MC_CURRENT_CONFIG).map(String::as_str)
}

impl NodeUpdate {
    /// `None` for a node without the machine-config daemon's three annotations (a plain
    /// Kubernetes node, never paused).
    pub fn of(annotations: &std::collections::BTreeMap<String, String>) -> Option<NodeUpdate> {
        let current = annotations.get(MC_CURRENT_CONFIG)?;
        let desired = annotations.get(MC_DESIRED_CONFIG)?;
        let state = annotations.get(MC_STATE)?;
        Some(match state.as_str() {
            "Working" if current != desired => NodeUpdate::Updating,
            "Done" if current == desired => NodeUpdate::Finished,
            "Degraded" => NodeUpdate::Finished,
            _ => NodeUpdate::Other,
        })
    }
}

/// A MachineConfigPool, as far as confirming updates goes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pool {
    pub name: String,
    pub selector: LabelSelector,
    /// `spec.configuration.name`: the rendered config its nodes are to run.
    pub target: Option<String>,
    /// `status.configuration.name`: the config all its machines ran when it last settled.
    pub rolled_out: Option<String>,
}

impl Pool {
    /// From a `machineconfiguration.openshift.io/v1` MachineConfigPool object (JSON).
    pub fn from_json(v: &serde_json::Value) -> Pool {
        let selector =
            serde_json::from_value(v["spec"]["nodeSelector"].clone()).unwrap_or_default();
        let name = |v: &serde_json::Value| {
            v["configuration"]["name"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        let (target, rolled_out) = (name(&v["spec"]), name(&v["status"]));
        Pool {
            name: v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            selector,
            target,
            rolled_out,
        }
    }

    /// Whether the pool's node selector selects a node with `labels` (an empty selector
    /// selects nothing here: a pool always names its nodes).
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        let ml = self.selector.match_labels.as_ref();
        let me = self
            .selector
            .match_expressions
            .as_deref()
            .unwrap_or_default();
        if ml.is_none_or(BTreeMap::is_empty) && me.is_empty() {
            return false;
        }
        let labels_ok = ml
            .into_iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        let exprs_ok = me.iter().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        });
        labels_ok && exprs_ok
    }
}

/// What the pools that select a node with `labels` have rolled out, sorted and comma-joined
/// (what [`NodePause::pool_rolled_out`] records); `None` without the pool API or a pool status.
pub fn pools_rolled_out(
    pools: Option<&[Pool]>,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    let configs: BTreeSet<&str> = pools?
        .iter()
        .filter(|p| p.selects(labels))
        .filter_map(|p| p.rolled_out.as_deref())
        .collect();
    (!configs.is_empty()).then(|| configs.into_iter().collect::<Vec<_>>().join(","))
}

/// Whether the end of a node's update is a real one: `Ok` to re-initialise the node, `Err` with
/// the reason not to. `pools` is `None` where the MachineConfigPool API does not exist: then
/// only `trust_annotations` (upstream's behaviour, an operator flag) lets the node's own
/// annotations re-initialise it. Nothing the node wrote decides alone: its `currentConfig` must
/// be what its pool targets now, and the pool must not already have rolled that config out
/// when the pause began.
pub fn confirms(
    pools: Option<&[Pool]>,
    trust_annotations: bool,
    labels: &BTreeMap<String, String>,
    current: Option<&str>,
    pause: Option<&NodePause>,
) -> Result<(), String> {
    let Some(pools) = pools else {
        return if trust_annotations {
            Ok(())
        } else {
            Err(
                "the cluster has no MachineConfigPool API, so nothing but the node's own \
                 annotations says it was updated"
                    .into(),
            )
        };
    };
    let current = current.ok_or("the node has no currentConfig")?;
    let mine: Vec<&Pool> = pools.iter().filter(|p| p.selects(labels)).collect();
    if mine.is_empty() {
        return Err("no MachineConfigPool selects the node".into());
    }
    if !mine.iter().any(|p| p.target.as_deref() == Some(current)) {
        let targets: Vec<String> = mine
            .iter()
            .map(|p| {
                format!(
                    "{} targets {}",
                    p.name,
                    p.target.as_deref().unwrap_or("nothing")
                )
            })
            .collect();
        return Err(format!(
            "the node reports {current}, but {}",
            targets.join(", ")
        ));
    }
    let Some(before) = pause.and_then(|p| p.pool_rolled_out.as_deref()) else {
        return Err("its pool's rolled-out config was not recorded when the pause began".into());
    };
    if before.split(',').any(|t| t == current) {
        return Err(format!(
            "its pool had rolled {current} out already when the pause began: no update"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ann(current: &str, desired: &str, state: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MC_CURRENT_CONFIG.into(), current.into()),
            (MC_DESIRED_CONFIG.into(), desired.into()),
            (MC_STATE.into(), state.into()),
        ])
    }

    #[test]
    fn node_update_states() {
        assert_eq!(NodeUpdate::of(&BTreeMap::new()), None);
        let mut partial = ann("a", "b", "Working");
        partial.remove(MC_STATE);
        assert_eq!(NodeUpdate::of(&partial), None);
        // The last two: Working with nothing to change, or Done with a new config desired.
        for ((current, desired, state), want) in [
            (("a", "b", "Working"), NodeUpdate::Updating),
            (("b", "b", "Done"), NodeUpdate::Finished),
            (("a", "b", "Degraded"), NodeUpdate::Finished),
            (("b", "b", "Working"), NodeUpdate::Other),
            (("a", "b", "Done"), NodeUpdate::Other),
        ] {
            assert_eq!(
                NodeUpdate::of(&ann(current, desired, state)),
                Some(want),
                "{current} -> {desired} {state}"
            );
        }
    }

    #[test]
    fn only_a_rollout_by_the_pool_confirms_an_update() {
        let pool = |target: &str, rolled_out: &str| {
            Pool::from_json(&serde_json::json!({
                "metadata": {"name": "worker"},
                "spec": {
                    "nodeSelector": {"matchLabels": {"node-role.kubernetes.io/worker": ""}},
                    "configuration": {"name": target}
                },
                "status": {"configuration": {"name": rolled_out}}
            }))
        };
        let worker = BTreeMap::from([("node-role.kubernetes.io/worker".to_owned(), String::new())]);
        // `from` is what the node claimed when it entered Working: never decisive.
        let pause = |from: &str, rolled_out: Option<&str>| NodePause {
            since: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            from_config: Some(from.into()),
            pool_rolled_out: rolled_out.map(str::to_owned),
            overdue: false,
        };
        let rolling = [pool("rendered-worker-2", "rendered-worker-1")];
        assert_eq!(
            pools_rolled_out(Some(&rolling), &worker).as_deref(),
            Some("rendered-worker-1")
        );
        assert_eq!(pools_rolled_out(None, &worker), None);
        // No pool API: the node's word alone, refused unless the operator trusts it (upstream).
        let none = confirms(None, false, &worker, Some("x"), None);
        assert!(none.unwrap_err().contains("no MachineConfigPool API"));
        assert_eq!(confirms(None, true, &worker, Some("x"), None), Ok(()));
        // The pool rolls 2 out (it had 1) and the node runs 2: a real update, confirmed also
        // once the pool has settled at 2.
        let real = pause("rendered-worker-1", Some("rendered-worker-1"));
        let c = |pools: &[Pool], current: &str, p: &NodePause| {
            confirms(Some(pools), false, &worker, Some(current), Some(p))
        };
        assert_eq!(c(&rolling, "rendered-worker-2", &real), Ok(()));
        let settled = [pool("rendered-worker-2", "rendered-worker-2")];
        assert_eq!(c(&settled, "rendered-worker-2", &real), Ok(()));
        // Issue 22, attack 3: with its pool settled, the node entered Working claiming a
        // made-up currentConfig and ended at the pool's target: no re-init.
        let made_up = pause("rendered-made-up", Some("rendered-worker-2"));
        let same = c(&settled, "rendered-worker-2", &made_up);
        assert!(same.unwrap_err().contains("already"));
        // Ending at a config the pool does not target, or outside every pool, or with nothing
        // recorded when the pause began (a pause recorded by an older operator).
        let forged = c(&rolling, "rendered-evil", &real);
        assert!(forged
            .unwrap_err()
            .contains("worker targets rendered-worker-2"));
        let outside = confirms(
            Some(&rolling),
            false,
            &BTreeMap::new(),
            Some("rendered-worker-2"),
            None,
        );
        assert!(outside.unwrap_err().contains("no MachineConfigPool"));
        let unrecorded = c(
            &rolling,
            "rendered-worker-2",
            &pause("rendered-worker-1", None),
        );
        assert!(unrecorded.unwrap_err().contains("not recorded"));
        assert!(confirms(Some(&rolling), false, &worker, None, None).is_err());
    }

    #[test]
    fn pool_selectors() {
        let pool = |sel: serde_json::Value| {
            Pool::from_json(&serde_json::json!({"spec": {"nodeSelector": sel}}))
        };
        let labels = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        assert!(!pool(serde_json::json!({})).selects(&labels));
        assert!(pool(serde_json::json!({"matchLabels": {"a": "1"}})).selects(&labels));
        assert!(!pool(serde_json::json!({"matchLabels": {"a": "2"}})).selects(&labels));
        let expr = |op: &str, values: &[&str]| {
            pool(
                serde_json::json!({"matchExpressions": [{"key": "a", "operator": op, "values": values}]}),
            )
        };
        assert!(expr("In", &["1", "3"]).selects(&labels));
        assert!(!expr("NotIn", &["1"]).selects(&labels));
        assert!(expr("Exists", &[]).selects(&labels));
        assert!(!expr("DoesNotExist", &[]).selects(&labels));
    }
}
