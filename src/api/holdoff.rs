//! Pausing scans while the machine-config daemon updates a node (upstream's node controller).
//!
//! The pause is the FileIntegrity annotation `file-integrity.openshift.io/holdoff`, with
//! upstream's meaning kept: absent = nothing paused, `""` = every node paused (set by hand; the
//! operator never writes or clears it), otherwise the comma list of paused nodes. The operator
//! adds a node when its update starts and removes it when the update ends, in the same metadata
//! write that requests the node's re-init, so a restart in between neither loses the pause nor
//! re-initialises twice.
//!
//! A node's own annotations are the node's word, and a node may be hostile (its root holds a
//! kubelet's credentials): where the MachineConfigPool API exists, the end of an update
//! re-initialises the node only if its pool confirms it ([`confirms`]): the node's new config is
//! the one its pool targets (written by the machine-config controller, not by nodes) and differs
//! from the one it had when the pause began ([`NodePause`], in the FileIntegrity's status).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::ResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::reinit::parse_node_list;
use crate::{names, FileIntegrity};

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

/// A node paused for a MachineConfig update, as the operator recorded it when the pause began.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePause {
    /// When the pause began.
    pub since: Time,
    /// The node's `currentConfig` then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_config: Option<String>,
    /// The pause outlasted the operator's bound and was reported (one Event).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overdue: bool,
}

/// A MachineConfigPool, as far as confirming updates goes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pool {
    pub name: String,
    pub selector: LabelSelector,
    /// `spec.configuration.name`: the rendered config its nodes are to run.
    pub target: Option<String>,
}

impl Pool {
    /// From a `machineconfiguration.openshift.io/v1` MachineConfigPool object (JSON).
    pub fn from_json(v: &serde_json::Value) -> Pool {
        let selector =
            serde_json::from_value(v["spec"]["nodeSelector"].clone()).unwrap_or_default();
        let target = v["spec"]["configuration"]["name"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Pool {
            name: v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            selector,
            target,
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

/// Whether the end of a node's update is a real one: `Ok` to re-initialise the node, `Err` with
/// the reason not to. `pools` is `None` where the MachineConfigPool API does not exist (the
/// node's annotations are all there is, as upstream).
pub fn confirms(
    pools: Option<&[Pool]>,
    labels: &BTreeMap<String, String>,
    current: Option<&str>,
    pause: Option<&NodePause>,
) -> Result<(), String> {
    let Some(pools) = pools else {
        return Ok(());
    };
    let current = current.ok_or("the node has no currentConfig")?;
    if let Some(from) = pause.and_then(|p| p.from_config.as_deref()) {
        if from == current {
            return Err(format!("its config did not change ({current})"));
        }
    }
    let mine: Vec<&Pool> = pools.iter().filter(|p| p.selects(labels)).collect();
    if mine.is_empty() {
        return Err("no MachineConfigPool selects the node".into());
    }
    if mine.iter().any(|p| p.target.as_deref() == Some(current)) {
        return Ok(());
    }
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
    Err(format!(
        "the node reports {current}, but {}",
        targets.join(", ")
    ))
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

/// The holdoff annotation of a FileIntegrity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Holdoff {
    #[default]
    None,
    /// `""`: every node.
    All,
    Nodes(BTreeSet<String>),
}

impl Holdoff {
    pub fn of(fi: &FileIntegrity) -> Holdoff {
        match fi.annotations().get(names::HOLDOFF_ANNOTATION) {
            None => Holdoff::None,
            Some(v) => match parse_node_list(v) {
                None => Holdoff::All,
                Some(nodes) => Holdoff::Nodes(nodes),
            },
        }
    }

    /// Scans on `node` are paused.
    pub fn holds(&self, node: &str) -> bool {
        match self {
            Holdoff::None => false,
            Holdoff::All => true,
            Holdoff::Nodes(n) => n.contains(node),
        }
    }

    /// The annotation value, `None` to remove it.
    pub fn to_annotation(&self) -> Option<String> {
        match self {
            Holdoff::None => None,
            Holdoff::All => Some(String::new()),
            Holdoff::Nodes(n) if n.is_empty() => None,
            Holdoff::Nodes(n) => Some(n.iter().cloned().collect::<Vec<_>>().join(",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
    fn only_the_pools_target_confirms_an_update() {
        let pool: Pool = Pool::from_json(&serde_json::json!({
            "metadata": {"name": "worker"},
            "spec": {
                "nodeSelector": {"matchLabels": {"node-role.kubernetes.io/worker": ""}},
                "configuration": {"name": "rendered-worker-2"}
            }
        }));
        let worker = BTreeMap::from([("node-role.kubernetes.io/worker".to_owned(), String::new())]);
        let pause = |from: &str| NodePause {
            since: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            from_config: Some(from.into()),
            overdue: false,
        };
        let pools = [pool];
        let p1 = pause("rendered-worker-1");
        // No pool API: the annotations decide, as upstream.
        assert_eq!(confirms(None, &worker, Some("x"), None), Ok(()));
        assert_eq!(
            confirms(Some(&pools), &worker, Some("rendered-worker-2"), Some(&p1)),
            Ok(())
        );
        // A node's own Working -> Done back to the config it had, or to one the pool does not
        // target, or outside every pool: no re-init.
        let p2 = pause("rendered-worker-2");
        let same = confirms(Some(&pools), &worker, Some("rendered-worker-2"), Some(&p2));
        assert!(same.unwrap_err().contains("did not change"));
        let forged = confirms(Some(&pools), &worker, Some("rendered-evil"), Some(&p1));
        assert!(forged
            .unwrap_err()
            .contains("worker targets rendered-worker-2"));
        let outside = confirms(
            Some(&pools),
            &BTreeMap::new(),
            Some("rendered-worker-2"),
            None,
        );
        assert!(outside.unwrap_err().contains("no MachineConfigPool"));
        assert!(confirms(Some(&pools), &worker, None, None).is_err());
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

    #[test]
    fn holdoff_values() {
        let nodes = |v: &[&str]| Holdoff::Nodes(v.iter().map(|s| s.to_string()).collect());
        assert!(Holdoff::All.holds("x"));
        assert!(!Holdoff::None.holds("x"));
        // Exact names: node `a` is not paused by `ab`.
        assert!(!nodes(&["ab"]).holds("a"));
        assert_eq!(nodes(&["b", "a"]).to_annotation().as_deref(), Some("a,b"));
        assert_eq!(nodes(&[]).to_annotation(), None);
        assert_eq!(Holdoff::All.to_annotation().as_deref(), Some(""));
    }
}
