//! The re-init requests the operator keeps on a FileIntegrity and the daemons act on (design in
//! NOTES.md, "Re-init signal"). One annotation, written by the operator in a single metadata
//! update together with the removal of the user's `re-init` annotation, so that handling a
//! request is atomic: an operator restart can neither lose nor repeat it. A copy in the status
//! subresource survives a client that replaces the metadata (`kubectl replace`, an old manifest
//! re-applied): the record in force is the merge of both ([`ReinitRequests::of`]), and ids only
//! grow, so no node that completed request N skips request N+1.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{names, FileIntegrity};

/// The value of the `file-integrity.openshift.io/reinit-requests` annotation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
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
    /// Per node, the newest request id that must keep every backup: re-inits the operator
    /// decided by itself (the end of a node update) never prune, so that no baseline an
    /// administrator has not let go of is deleted without them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keep: BTreeMap<String, i64>,
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
    /// The record in force on `fi`: the merge of the annotation and the status copy, `None`
    /// when it has neither yet. An annotation that does not parse is an error (the caller may
    /// fall back to [`Self::recorded`]).
    pub fn of(fi: &FileIntegrity) -> Result<Option<Self>, ReinitParseError> {
        Ok(Self::merge(Self::annotated(fi)?, Self::recorded(fi)))
    }

    /// The record in force, falling back to the status copy when the annotation does not parse
    /// (for readers that only act on it: the daemon, the results controller).
    pub fn in_force(fi: &FileIntegrity) -> Option<Self> {
        Self::of(fi).unwrap_or_else(|_| Self::recorded(fi))
    }

    /// The annotation alone.
    pub fn annotated(fi: &FileIntegrity) -> Result<Option<Self>, ReinitParseError> {
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

    /// The status copy alone.
    pub fn recorded(fi: &FileIntegrity) -> Option<Self> {
        fi.status.as_ref()?.reinit_requests.clone()
    }

    /// Both copies as one: the configuration of the newer (higher `seq`; the annotation on a
    /// tie), the highest id per node. Either copy alone loses nothing the other has.
    pub fn merge(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        let (a, b) = match (a, b) {
            (None, x) | (x, None) => return x,
            (Some(a), Some(b)) => (a, b),
        };
        let (mut newer, older) = if b.seq > a.seq { (b, a) } else { (a, b) };
        for (node, id) in older.nodes {
            let e = newer.nodes.entry(node).or_insert(id);
            *e = (*e).max(id);
        }
        for (node, id) in older.keep {
            let e = newer.keep.entry(node).or_insert(id);
            *e = (*e).max(id);
        }
        Some(newer)
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

    /// [`Self::request`], for re-inits that must keep every backup (see [`Self::keep`]).
    pub fn request_keeping_backups<'a>(
        &mut self,
        nodes: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        let nodes: BTreeSet<&str> = nodes.into_iter().collect();
        let requested = self.request(nodes.iter().copied());
        for n in nodes {
            self.keep.insert(n.to_owned(), self.seq);
        }
        requested
    }

    /// The newest request id for `node` (0: never requested).
    pub fn requested(&self, node: &str) -> i64 {
        self.nodes.get(node).copied().unwrap_or(0)
    }

    /// Whether request `id` of `node` must keep every backup.
    pub fn keeps_backups(&self, node: &str, id: i64) -> bool {
        self.keep.get(node) == Some(&id)
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

    /// Issue 22: a node update's re-init keeps every backup; a later request prunes again.
    #[test]
    fn re_inits_the_operator_decided_keep_every_backup() {
        let mut r = ReinitRequests::default();
        assert!(r.request(["node-1", "node-2"]));
        assert!(r.request_keeping_backups(["node-1"]));
        let id = r.requested("node-1");
        assert!(r.keeps_backups("node-1", id));
        assert!(!r.keeps_backups("node-2", r.requested("node-2")));
        let merged = ReinitRequests::merge(Some(ReinitRequests::default()), Some(r.clone()));
        assert_eq!(merged.as_ref(), Some(&r));
        let back: ReinitRequests = serde_json::from_str(&r.to_annotation()).unwrap();
        assert_eq!(back, r);
        assert!(r.request(["node-1"]));
        assert!(!r.keeps_backups("node-1", r.requested("node-1")));
    }

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
    fn either_copy_alone_keeps_every_request() {
        let mut annotated = ReinitRequests {
            config: "c1".into(),
            ..Default::default()
        };
        annotated.request(["a", "b"]);
        let mut status = annotated.clone();
        status.request(["b"]);
        status.config = "c2".into();
        // The annotation was replaced by an old copy: the status copy wins where it is newer.
        let m = ReinitRequests::merge(Some(annotated.clone()), Some(status.clone())).unwrap();
        assert_eq!((m.seq, m.config.as_str()), (2, "c2"));
        assert_eq!((m.requested("a"), m.requested("b")), (1, 2));
        // Order does not matter; one copy alone is itself.
        assert_eq!(
            ReinitRequests::merge(Some(status.clone()), Some(annotated)),
            Some(m)
        );
        assert_eq!(
            ReinitRequests::merge(None, Some(status.clone())),
            Some(status)
        );
        assert_eq!(ReinitRequests::merge(None, None), None);
    }

    #[test]
    fn node_lists_match_whole_names() {
        assert_eq!(parse_node_list(""), None);
        assert_eq!(parse_node_list(" , "), None);
        let l = parse_node_list("ab, a,ab").unwrap();
        assert_eq!(l.into_iter().collect::<Vec<_>>(), ["a", "ab"]);
    }
}
