//! Pausing scans while the machine-config daemon updates a node (upstream's node controller).
//!
//! The pause is the FileIntegrity annotation `file-integrity.openshift.io/holdoff`, with
//! upstream's meaning kept: absent = nothing paused, `""` = every node paused (set by hand; the
//! operator never writes or clears it), otherwise the comma list of paused nodes. The operator
//! adds a node when its update starts and removes it when the update ends, in the same metadata
//! write that requests the node's re-init, so a restart in between neither loses the pause nor
//! re-initialises twice.

use std::collections::BTreeSet;

use kube::ResourceExt;

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
