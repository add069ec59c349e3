//! Pausing scans while the machine-config daemon updates a node (upstream's node controller).
//!
//! The pause is the FileIntegrity annotation `file-integrity.openshift.io/holdoff`, with
//! upstream's meaning kept: absent = nothing paused, `""` = every node paused (set by hand; the
//! operator never writes or clears it), otherwise the comma list of paused nodes. The operator
//! adds a node when its update starts and removes it when the update ends, in the same metadata
//! write that requests the node's re-init, so a restart in between neither loses the pause nor
//! re-initialises twice. When an update's end re-initialises a node is the operator's policy
//! (`fio_operator::controller::fileintegrity::machine_config`); the record of a pause
//! ([`NodePause`]) is in the FileIntegrity's status.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::reinit::parse_node_list;
use crate::{names, FileIntegrity};

/// A node paused for a MachineConfig update, as the operator recorded it when the pause began.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePause {
    /// When the pause began.
    pub since: Time,
    /// The node's `currentConfig` then (the node's word: shown, never decisive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_config: Option<String>,
    /// What the node's MachineConfigPool had rolled out to all its machines then
    /// (`status.configuration.name`; a comma list when several pools select the node): the
    /// update is confirmed only if the node ends at a pool target other than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_rolled_out: Option<String>,
    /// The pause outlasted the operator's bound and was reported (one Event).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overdue: bool,
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
