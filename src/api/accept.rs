//! Acceptances (ours, issue 28): the operator's requests that a node move its baseline for
//! some paths only (expected changes, node updates, administrators), kept in one annotation of
//! the FileIntegrity that only the operator writes and the daemons read, as re-init requests
//! are ([`crate::reinit`]).
//!
//! A request names each path with the [`fingerprint`] of the change accepted: the daemon moves
//! a path only while the difference it measures is still that change, so a write between the
//! report and the acceptance is never swallowed. Ids only grow; a daemon acts on a request
//! whose id is above the one it completed, once.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use crate::{names, FileChange, FileIntegrity};

/// The most paths one node's request names (a result lists at most this many changes).
pub const MAX_PATHS: usize = crate::result::MAX_LISTED_CHANGES;
/// The longest annotation read or written.
pub const MAX_ANNOTATION: usize = 64 * 1024;

/// The value of the `file-integrity.openshift.io/accept-requests` annotation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptRequests {
    /// The newest id handed out.
    #[serde(default)]
    pub seq: i64,
    /// Per node, its newest request.
    #[serde(default)]
    pub nodes: BTreeMap<String, AcceptRequest>,
    /// Per node, the confirmed node update whose changes its next check judges.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub windows: BTreeMap<String, UpdateWindow>,
}

/// A node update the operator confirmed (its pool's target changed and the node now runs it):
/// the changes the node's first check after `to` lists for the first time are accepted per path
/// with provenance `by` when the machine-config daemon wrote them, or when no writer was named
/// (the watcher did not see the write: attribution off, or the node rebooted). Any other named
/// writer fails the node as ever. The window closes with that check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateWindow {
    /// When the operator paused the node's scans for the update.
    pub from: Time,
    /// When the operator confirmed the update and resumed them.
    pub to: Time,
    /// `node update <from config> -> <to config>`.
    pub by: String,
    /// The node's last check before the update listed every change it counted: a change not
    /// listed then is one made since. Otherwise a change listed only now may be older, and
    /// only the machine-config daemon's are accepted.
    #[serde(default)]
    pub listed_all_before: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptRequest {
    pub id: i64,
    pub paths: Vec<AcceptPath>,
}

/// One path to move, the change accepted, and why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptPath {
    /// As the node status lists it.
    pub path: String,
    /// [`fingerprint`] of the change accepted.
    pub change: String,
    /// `rule <name>`, `node update <from> -> <to>` or `administrator <user>`.
    pub by: String,
}

/// What a node reports it moved: the request completed and the paths moved (those whose
/// change was still the one accepted; the others stay changed).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    pub id: i64,
    pub paths: Vec<String>,
}

/// The longest `accepted` annotation of a result read.
pub const MAX_ACCEPTED_ANNOTATION: usize = 32 * 1024;

/// The annotation does not hold a request record, or is too long.
#[derive(Debug, thiserror::Error)]
#[error(
    "annotation {} of FileIntegrity {fi}: {why}",
    names::ACCEPT_REQUESTS_ANNOTATION
)]
pub struct AcceptParseError {
    fi: String,
    why: String,
}

/// What identifies a listed change: its path, kind, changed attributes and their old and new
/// values (digests in full), as the node reported them.
pub fn fingerprint(c: &FileChange) -> String {
    let key = serde_json::json!([c.path, c.kind, c.attributes, c.details]);
    fio_core::hash::sha256_hex(key.to_string().as_bytes())
}

/// An administrator's acceptance as annotated: per node, the paths (`"*"`: every listed change),
/// and who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    pub nodes: BTreeMap<String, Vec<String>>,
    pub by: String,
}

/// The `accept` annotation cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DemandError {
    #[error("annotation {key}: {0} (expected {{\"<node>\": [\"<path>\", ...]}}, \"*\" for every listed change)", key = names::ACCEPT_ANNOTATION)]
    Malformed(String),
    #[error("annotation {key} names no requesting user: the admission policy {policy} is not in force", key = names::ACCEPT_BY_ANNOTATION, policy = names::ACCEPT_ADMISSION_POLICY)]
    Anonymous,
}

impl Demand {
    /// The administrator's acceptance on `fi` (`None`: none asked).
    pub fn of(fi: &FileIntegrity) -> Option<Result<Demand, DemandError>> {
        let text = fi.annotations().get(names::ACCEPT_ANNOTATION)?;
        let by = fi
            .annotations()
            .get(names::ACCEPT_BY_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        Some(Self::parse(text, by))
    }

    fn parse(text: &str, by: String) -> Result<Demand, DemandError> {
        let bad = |why: String| DemandError::Malformed(why);
        if text.len() > MAX_ANNOTATION {
            return Err(bad(format!("longer than {MAX_ANNOTATION} bytes")));
        }
        let nodes: BTreeMap<String, Vec<String>> =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if nodes.is_empty() {
            return Err(bad("no node".into()));
        }
        if let Some((n, _)) = nodes
            .iter()
            .find(|(_, p)| p.is_empty() || p.len() > MAX_PATHS)
        {
            return Err(bad(format!("node {n}: 1 to {MAX_PATHS} paths")));
        }
        if by.is_empty() {
            return Err(DemandError::Anonymous);
        }
        Ok(Demand { nodes, by })
    }
}

impl AcceptRequests {
    /// The record on `fi` (`None` when there is none).
    pub fn of(fi: &FileIntegrity) -> Result<Option<Self>, AcceptParseError> {
        let Some(text) = fi.annotations().get(names::ACCEPT_REQUESTS_ANNOTATION) else {
            return Ok(None);
        };
        let err = |why: String| AcceptParseError {
            fi: fi.name_any(),
            why,
        };
        if text.len() > MAX_ANNOTATION {
            return Err(err(format!("longer than {MAX_ANNOTATION} bytes")));
        }
        let r: Self = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        if let Some((n, _)) = r.nodes.iter().find(|(_, q)| q.paths.len() > MAX_PATHS) {
            return Err(err(format!("node {n}: more than {MAX_PATHS} paths")));
        }
        Ok(Some(r))
    }

    /// `node`'s newest request.
    pub fn for_node(&self, node: &str) -> Option<&AcceptRequest> {
        self.nodes.get(node)
    }

    /// A new request for `node`: `paths` (at most [`MAX_PATHS`], the first kept) under the
    /// next id, unless the node's newest request, not `completed` yet, asks for exactly these
    /// already. Returns the id in force for them.
    pub fn request(&mut self, node: &str, mut paths: Vec<AcceptPath>, completed: i64) -> i64 {
        paths.truncate(MAX_PATHS);
        if let Some(r) = self
            .nodes
            .get(node)
            .filter(|r| r.paths == paths && r.id > completed)
        {
            return r.id;
        }
        self.seq += 1;
        self.nodes.insert(
            node.to_owned(),
            AcceptRequest {
                id: self.seq,
                paths,
            },
        );
        self.seq
    }

    /// A request for `node` of `paths` beside those of its pending request (not `completed`
    /// yet), which stay asked: a path in both takes the new change and reason. Returns the id.
    pub fn request_more(&mut self, node: &str, paths: Vec<AcceptPath>, completed: i64) -> i64 {
        let mut all: Vec<AcceptPath> = self
            .nodes
            .get(node)
            .filter(|r| r.id > completed)
            .map(|r| r.paths.clone())
            .unwrap_or_default();
        all.retain(|p| !paths.iter().any(|n| n.path == p.path));
        all.extend(paths);
        self.request(node, all, completed)
    }

    /// Drop the requests and windows of nodes `keep` says are gone.
    pub fn retain_nodes(&mut self, keep: impl Fn(&str) -> bool) {
        self.nodes.retain(|n, _| keep(n));
        self.windows.retain(|n, _| keep(n));
    }

    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttributeChange, ChangeKind, FileIntegritySpec};

    fn change(new: &str) -> FileChange {
        FileChange {
            path: "/etc/fio-test/ca.crt".into(),
            kind: ChangeKind::Changed,
            attributes: vec!["sha512".into()],
            details: vec![AttributeChange {
                attribute: "sha512".into(),
                old: "aa".into(),
                new: new.into(),
            }],
            since: None,
            found_by: None,
            writers: Vec::new(),
        }
    }

    #[test]
    fn a_change_written_again_has_another_fingerprint() {
        let first = change("bb");
        let mut listed_later = first.clone();
        listed_later.since = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(
            fingerprint(&first),
            fingerprint(&listed_later),
            "when and by whom are not the change"
        );
        assert_ne!(fingerprint(&first), fingerprint(&change("cc")));
        assert_eq!(fingerprint(&first).len(), 64);
    }

    #[test]
    fn an_administrators_acceptance_is_read_strictly() {
        assert_eq!(
            Demand::parse(r#"{"n1": ["/etc/a", "*"]}"#, "alice".into()),
            Ok(Demand {
                nodes: BTreeMap::from([("n1".into(), vec!["/etc/a".into(), "*".into()])]),
                by: "alice".into()
            })
        );
        assert_eq!(
            Demand::parse(r#"{"n1": ["/etc/a"]}"#, String::new()),
            Err(DemandError::Anonymous)
        );
        for (text, says) in [
            ("n1:/etc/a", "line 1 column"),
            ("{}", "no node"),
            (r#"{"n1": []}"#, "node n1: 1 to"),
            (r#"{"n1": "/etc/a"}"#, "invalid type"),
        ] {
            let e = Demand::parse(text, "alice".into()).unwrap_err().to_string();
            assert!(
                e.starts_with("annotation file-integrity.openshift.io/accept: ")
                    && e.contains(says),
                "{text}: {e}"
            );
        }
        let p = |path: &str, by: &str| AcceptPath {
            path: path.into(),
            change: "f".into(),
            by: by.into(),
        };
        let mut r = AcceptRequests::default();
        r.request("n1", vec![p("/a", "rule r")], 0);
        let id = r.request_more("n1", vec![p("/b", "administrator alice")], 0);
        assert_eq!(id, 2);
        assert_eq!(
            r.for_node("n1").map(|q| q.paths.clone()),
            Some(vec![p("/a", "rule r"), p("/b", "administrator alice")]),
            "the pending path stays asked"
        );
        r.request_more("n1", vec![p("/c", "administrator alice")], 2);
        assert_eq!(
            r.for_node("n1").map(|q| q.paths.len()),
            Some(1),
            "a completed request is not asked again"
        );
    }

    #[test]
    fn requests_grow_once_per_new_set_of_paths() {
        let p = |path: &str| AcceptPath {
            path: path.into(),
            change: "f".into(),
            by: "rule r".into(),
        };
        let mut r = AcceptRequests::default();
        assert_eq!(r.request("n1", vec![p("/a")], 0), 1);
        assert_eq!(
            r.request("n1", vec![p("/a")], 0),
            1,
            "the same request again"
        );
        assert_eq!(
            r.request("n1", vec![p("/a")], 1),
            2,
            "completed: asked anew"
        );
        assert_eq!(r.request("n2", vec![p("/b")], 0), 3);
        assert_eq!(r.request("n1", vec![p("/a"), p("/c")], 0), 4);
        let many: Vec<AcceptPath> = (0..2 * MAX_PATHS).map(|i| p(&format!("/f{i}"))).collect();
        r.request("n3", many, 0);
        assert_eq!(r.for_node("n3").map(|q| q.paths.len()), Some(MAX_PATHS));

        let mut fi = FileIntegrity::new("fi", FileIntegritySpec::default());
        fi.annotations_mut()
            .insert(names::ACCEPT_REQUESTS_ANNOTATION.into(), r.to_annotation());
        assert_eq!(AcceptRequests::of(&fi).unwrap(), Some(r.clone()));
        r.retain_nodes(|n| n != "n2");
        assert!(r.for_node("n2").is_none());

        fi.annotations_mut()
            .insert(names::ACCEPT_REQUESTS_ANNOTATION.into(), "{not json".into());
        let e = AcceptRequests::of(&fi).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "annotation file-integrity.openshift.io/accept-requests of FileIntegrity fi: "
            ),
            "{e}"
        );
    }
}
