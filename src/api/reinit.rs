//! The re-init requests the operator keeps on a FileIntegrity and the daemons act on (design in
//! NOTES.md, "Re-init signal"). One annotation, written by the operator in a single metadata
//! update together with the removal of the user's `re-init` annotation, so that handling a
//! request is atomic: an operator restart can neither lose nor repeat it.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use crate::{names, FileIntegrity};

/// The value of the `file-integrity.openshift.io/reinit-requests` annotation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ReinitRequests {
    /// SHA-256 of the AIDE configuration the requests were made for; a different rendered
    /// configuration means a configuration change, which re-initialises every node.
    #[serde(default)]
    pub config: String,
    /// The newest request id handed out.
    #[serde(default)]
    pub seq: i64,
    /// Per node, the newest request id for it. A node has completed it when its daemon reports
    /// an equal or higher `reinit-id`.
    #[serde(default)]
    pub nodes: BTreeMap<String, i64>,
}

/// The annotation does not hold a request record (edited by hand?).
#[derive(Debug, thiserror::Error)]
#[error("annotation {annotation} of FileIntegrity {fi}: {source}")]
pub struct ReinitParseError {
    annotation: &'static str,
    fi: String,
    source: serde_json::Error,
}

impl ReinitRequests {
    /// The record on `fi`, `None` when it has none yet.
    pub fn of(fi: &FileIntegrity) -> Result<Option<Self>, ReinitParseError> {
        let Some(text) = fi.annotations().get(names::REINIT_REQUESTS_ANNOTATION) else {
            return Ok(None);
        };
        serde_json::from_str(text)
            .map(Some)
            .map_err(|source| ReinitParseError {
                annotation: names::REINIT_REQUESTS_ANNOTATION,
                fi: fi.name_any(),
                source,
            })
    }

    pub fn to_annotation(&self) -> String {
        // A struct of strings and integers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Request a re-init of `nodes` under one new id. False when `nodes` is empty.
    pub fn request<'a>(&mut self, nodes: impl IntoIterator<Item = &'a str>) -> bool {
        let nodes: BTreeSet<&str> = nodes.into_iter().collect();
        if nodes.is_empty() {
            return false;
        }
        self.seq += 1;
        for n in nodes {
            self.nodes.insert(n.to_owned(), self.seq);
        }
        true
    }

    /// The newest request id for `node` (0: never requested).
    pub fn requested(&self, node: &str) -> i64 {
        self.nodes.get(node).copied().unwrap_or(0)
    }
}

/// The node names of a `re-init` annotation value: `""` means every node (`None`), otherwise a
/// comma list, matched exactly (upstream matched substrings: `a` also re-initialised `ab`).
pub fn parse_node_list(value: &str) -> Option<BTreeSet<String>> {
    let nodes: BTreeSet<String> = value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_gets_a_new_id_for_its_nodes_only() {
        let mut r = ReinitRequests::default();
        assert!(r.request(["node-1", "node-2"]));
        assert!(r.request(["node-2"]));
        assert!(!r.request([]));
        assert_eq!(
            (
                r.requested("node-1"),
                r.requested("node-2"),
                r.requested("x")
            ),
            (1, 2, 0)
        );
        let back: ReinitRequests = serde_json::from_str(&r.to_annotation()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn node_lists_match_whole_names() {
        assert_eq!(parse_node_list(""), None);
        assert_eq!(parse_node_list(" , "), None);
        let l = parse_node_list("ab, a,ab").unwrap();
        assert_eq!(l.into_iter().collect::<Vec<_>>(), ["a", "ab"]);
    }
}
