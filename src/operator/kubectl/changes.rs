//! `kubectl fio changes`: the changes of the node statuses, grouped by path across nodes, so
//! that "changed on 1 of 12 workers" and "changed on all 12 after an update" look different at
//! a glance. Pure: node statuses in, rows and text out.

use std::collections::BTreeMap;

use fio_api::{
    names, AttributeChange, ChangeKind, FileIntegrityNodeCondition, FileIntegrityNodeStatus,
    FoundBy, Writer,
};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

/// One changed path of one FileIntegrity, with the nodes that report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathChanges {
    pub file_integrity: String,
    pub path: String,
    /// The earliest first-seen time among the nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    pub nodes: Vec<NodeChange>,
    /// Nodes of the FileIntegrity shown (with a node status): the denominator of "2 of 12".
    pub of_nodes: usize,
}

/// How the path changed on one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeChange {
    pub node: String,
    pub kind: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<AttributeChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found_by: Option<FoundBy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writers: Vec<Writer>,
}

/// A node whose status lists fewer changes than it has.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotListed {
    pub file_integrity: String,
    pub node: String,
    pub count: i64,
}

/// Everything `changes` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    pub items: Vec<PathChanges>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_listed: Vec<NotListed>,
}

/// The changes of `statuses` (those of `fi` and `node` when given), grouped by FileIntegrity
/// and path, sorted by path; only last results that are Failed count.
pub fn group(
    statuses: &[FileIntegrityNodeStatus],
    fi: Option<&str>,
    node: Option<&str>,
) -> Changes {
    let owner = |st: &FileIntegrityNodeStatus| {
        st.labels()
            .get(names::OWNER_LABEL)
            .cloned()
            .unwrap_or_default()
    };
    let selected: Vec<&FileIntegrityNodeStatus> = statuses
        .iter()
        .filter(|st| fi.is_none_or(|f| owner(st) == f))
        .filter(|st| node.is_none_or(|n| st.spec.node_name == n))
        .collect();
    let mut nodes_of: BTreeMap<String, usize> = BTreeMap::new();
    for st in &selected {
        *nodes_of.entry(owner(st)).or_default() += 1;
    }
    let mut groups: BTreeMap<(String, String), Vec<NodeChange>> = BTreeMap::new();
    let mut not_listed = Vec::new();
    for st in &selected {
        let last = &st.spec.last_result;
        if last.condition != FileIntegrityNodeCondition::Failed {
            continue;
        }
        for c in &last.changes {
            groups
                .entry((owner(st), c.path.clone()))
                .or_default()
                .push(NodeChange {
                    node: st.spec.node_name.clone(),
                    kind: c.kind,
                    since: c.since.as_ref().map(|t| t.0),
                    attributes: c.attributes.clone(),
                    details: c.details.clone(),
                    found_by: c.found_by,
                    writers: c.writers.clone(),
                });
        }
        if last.changes_truncated > 0 {
            not_listed.push(NotListed {
                file_integrity: owner(st),
                node: st.spec.node_name.clone(),
                count: last.changes_truncated,
            });
        }
    }
    let items = groups
        .into_iter()
        .map(|((fi, path), mut nodes)| {
            nodes.sort_by(|a, b| a.node.cmp(&b.node));
            PathChanges {
                since: nodes.iter().filter_map(|n| n.since).min(),
                of_nodes: nodes_of.get(&fi).copied().unwrap_or(0),
                file_integrity: fi,
                path,
                nodes,
            }
        })
        .collect();
    Changes { items, not_listed }
}

/// How the table is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Colour the change kinds (a terminal that is not `NO_COLOR`).
    pub colour: bool,
    /// Cut the last column to this many characters per line (a terminal's width).
    pub width: Option<usize>,
    /// All node names, not the first three.
    pub wide: bool,
}

/// Node names shown in a row before `+N`.
const NODES_SHOWN: usize = 3;

/// `kubectl get`-style age of `since` at `now`: `45s`, `12m`, `5h`, `3d`.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let s = now.as_second().saturating_sub(since.as_second()).max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn kinds(p: &PathChanges) -> String {
    let mut k: Vec<ChangeKind> = p.nodes.iter().map(|n| n.kind).collect();
    k.sort();
    k.dedup();
    k.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
}

fn node_list(p: &PathChanges, wide: bool) -> String {
    let names: Vec<&str> = p.nodes.iter().map(|n| n.node.as_str()).collect();
    let shown = if wide || names.len() <= NODES_SHOWN {
        names.join(",")
    } else {
        format!(
            "{},+{}",
            names[..NODES_SHOWN].join(","),
            names.len() - NODES_SHOWN
        )
    };
    format!("{}/{} {shown}", p.nodes.len(), p.of_nodes)
}

/// What changed, when every node says the same; else the attributes and "differs by node".
fn details(p: &PathChanges) -> String {
    let first = &p.nodes[0];
    let same = p
        .nodes
        .iter()
        .all(|n| n.details == first.details && n.attributes == first.attributes);
    let text = |n: &NodeChange| {
        let mut parts: Vec<String> = n
            .details
            .iter()
            .map(|d| format!("{} {} -> {}", d.attribute, d.old, d.new))
            .collect();
        let detailed: Vec<&str> = n.details.iter().map(|d| d.attribute.as_str()).collect();
        parts.extend(
            n.attributes
                .iter()
                .filter(|a| !detailed.contains(&a.as_str()))
                .cloned(),
        );
        parts.join("; ")
    };
    if same {
        text(first)
    } else {
        let mut attrs: Vec<&str> = p
            .nodes
            .iter()
            .flat_map(|n| n.attributes.iter().map(String::as_str))
            .collect();
        attrs.sort();
        attrs.dedup();
        format!("{} (differs by node)", attrs.join(","))
    }
}

/// Who made the change, on every node that lists it: each writer named once (a change names
/// at most 4 per node), `scan` when only scans found it, `-` when nothing says.
fn by(p: &PathChanges) -> String {
    let mut named: Vec<String> = Vec::new();
    for w in p.nodes.iter().flat_map(|n| &n.writers) {
        let d = w.describe();
        if !named.contains(&d) {
            named.push(d);
        }
    }
    match named.len() {
        0 if p.nodes.iter().all(|n| n.found_by == Some(FoundBy::Scan)) => "scan".to_owned(),
        0 => "-".to_owned(),
        _ => named.join("; "),
    }
}

fn coloured(kind: &str, colour: bool) -> String {
    if !colour {
        return kind.to_owned();
    }
    let code = match kind {
        "added" => "32",
        "removed" => "31",
        _ => "33",
    };
    format!("\x1b[{code}m{kind}\x1b[0m")
}

/// The table: `[FILEINTEGRITY] PATH CHANGE NODES SINCE BY DETAILS`, then a line per node whose
/// status does not list all its changes.
pub fn table(c: &Changes, now: Timestamp, style: Style) -> String {
    if c.items.is_empty() && c.not_listed.is_empty() {
        return "No changes.\n".to_owned();
    }
    let several = c
        .items
        .iter()
        .map(|i| &i.file_integrity)
        .chain(c.not_listed.iter().map(|n| &n.file_integrity))
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let mut rows: Vec<Vec<String>> = vec![["PATH", "CHANGE", "NODES", "SINCE", "BY", "DETAILS"]
        .map(str::to_owned)
        .to_vec()];
    for i in &c.items {
        rows.push(vec![
            i.path.clone(),
            kinds(i),
            node_list(i, style.wide),
            i.since.map_or("-".to_owned(), |s| age(s, now)),
            by(i),
            details(i),
        ]);
    }
    if several {
        rows[0].insert(0, "FILEINTEGRITY".to_owned());
        for (row, i) in rows[1..].iter_mut().zip(&c.items) {
            row.insert(0, i.file_integrity.clone());
        }
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|k| rows.iter().map(|r| r[k].chars().count()).max().unwrap_or(0))
        .collect();
    let change_col = columns - 5;
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (k, cell) in row.iter().enumerate() {
            if k + 1 == columns {
                let room = style.width.map(|w| w.saturating_sub(line.chars().count()));
                line.push_str(&cut_chars(cell, room));
            } else {
                let pad = widths[k] - cell.chars().count() + 3;
                if k == change_col && n > 0 {
                    line.push_str(&coloured(cell, style.colour));
                } else {
                    line.push_str(cell);
                }
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for n in &c.not_listed {
        out.push_str(&format!(
            "{}: {} more changes are not listed in its status (kubectl fio report {}{})\n",
            n.node,
            n.count,
            n.node,
            if several {
                format!(" --fileintegrity {}", n.file_integrity)
            } else {
                String::new()
            }
        ));
    }
    out
}

/// `s` cut to `room` characters, the cut marked with `...`.
fn cut_chars(s: &str, room: Option<usize>) -> String {
    match room {
        Some(room) if s.chars().count() > room => {
            let keep = room.saturating_sub(3);
            format!("{}...", s.chars().take(keep).collect::<String>())
        }
        _ => s.to_owned(),
    }
}
