//! Expected changes (ours, issue 28): `spec.expectedChanges`, rules that name which writers may
//! change which paths, and in which attributes. [`Rules::compile`] validates them with errors
//! naming the rule and the field; [`Rules::expects`] judges one listed change (pure: the
//! operator feeds it the labels of the pods it read).
//!
//! A rule can only accept, never hide: a change is expected only when realtime found it, every
//! writer it names was read while running (`attributed`) and is allowed by the rule, the path
//! matches, and every changed attribute is one the rule allows. Anything else fails the node as
//! before.

use std::collections::{BTreeMap, BTreeSet};

use globset::GlobMatcher;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ChangeKind, FileChange, FoundBy, Writer, WriterPod, WriterState};

/// One rule of `spec.expectedChanges`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedChange {
    /// Names the rule in the node status, Events and errors (unique; lowercase letters,
    /// digits and `-`, at most 63).
    pub name: String,
    /// Paths on the node (as the node status lists them, not below `/hostroot`), as globs:
    /// `*` and `?` within one path component, `**` across components, `[abc]` classes.
    pub paths: Vec<String>,
    /// Who may write them (at least one).
    pub writers: Vec<ExpectedWriter>,
    /// The attributes that may change, by the names the node status lists (`sha512`,
    /// `modify_time`, `perm`, ...). Default: content and times (every digest, `size`,
    /// `modify_time`, `change_time`, `inode`, `block_count`), not ownership, permissions,
    /// ACLs, extended attributes, SELinux labels or the file type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
}

/// A writer a rule allows: `kind` is `unit` (a host systemd unit, `name`), `pod` (pods of
/// `namespace` whose labels match `selector`; no selector: every pod there) or
/// `machineConfigDaemon` (OpenShift's machine-config daemon).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedWriter {
    pub kind: String,
    /// `unit`: the unit, e.g. `kubelet.service`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `pod`: the pods' namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `pod`: the pods' labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Where OpenShift's machine-config daemon runs, and the label its pods carry.
pub const MACHINE_CONFIG_DAEMON_NAMESPACE: &str = "openshift-machine-config-operator";
pub const MACHINE_CONFIG_DAEMON_LABEL: (&str, &str) = ("k8s-app", "machine-config-daemon");

/// The most rules, and patterns and writers per rule.
pub const MAX_RULES: usize = 64;
pub const MAX_PER_RULE: usize = 32;

/// Attributes a rule allows when it names none: what a rewrite of the content changes.
pub const CONTENT_AND_TIMES: &[&str] = &[
    "size",
    "modify_time",
    "change_time",
    "inode",
    "block_count",
    "md5",
    "sha1",
    "sha256",
    "sha512",
    "rmd160",
    "tiger",
    "crc32",
    "crc32b",
    "haval",
    "gost",
    "whirlpool",
    "stribog256",
    "stribog512",
];
/// Every other attribute a change may list.
const OTHER_ATTRIBUTES: &[&str] = &[
    "perm",
    "uid",
    "gid",
    "link_name",
    "link_count",
    "access_time",
    "file_type",
    "acl",
    "xattrs",
    "selinux",
    "e2fsattrs",
    "capabilities",
];

/// A rule that cannot be used: `expectedChanges[<rule>].<field>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expectedChanges[{rule}].{field}: {message}")]
pub struct RuleError {
    /// The rule's name, or its index when it has none.
    pub rule: String,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone)]
enum Allowed {
    Unit(String),
    Pod {
        namespace: String,
        selector: Selector,
    },
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    paths: Vec<GlobMatcher>,
    writers: Vec<Allowed>,
    attributes: BTreeSet<String>,
}

/// The rules of a spec, compiled.
#[derive(Debug, Clone, Default)]
pub struct Rules(Vec<Rule>);

/// What the operator read of a writer's pod: its labels, when the pod with that namespace,
/// name and uid exists.
pub type PodLabels<'a> = &'a dyn Fn(&WriterPod) -> Option<BTreeMap<String, String>>;

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

impl Rules {
    /// Validate and compile `spec`.
    pub fn compile(spec: &[ExpectedChange]) -> Result<Rules, RuleError> {
        if spec.len() > MAX_RULES {
            return Err(RuleError {
                rule: MAX_RULES.to_string(),
                field: "name".into(),
                message: format!("at most {MAX_RULES} rules"),
            });
        }
        let mut seen = BTreeSet::new();
        let mut rules = Vec::new();
        for (i, r) in spec.iter().enumerate() {
            let rule = if r.name.is_empty() {
                i.to_string()
            } else {
                r.name.clone()
            };
            let err = |field: String, message: String| RuleError {
                rule: rule.clone(),
                field,
                message,
            };
            if !valid_name(&r.name) {
                return Err(err(
                    "name".into(),
                    "lowercase letters, digits and '-', 1 to 63 characters".into(),
                ));
            }
            if !seen.insert(r.name.clone()) {
                return Err(err("name".into(), "another rule has this name".into()));
            }
            if r.paths.is_empty() || r.paths.len() > MAX_PER_RULE {
                return Err(err("paths".into(), format!("1 to {MAX_PER_RULE} patterns")));
            }
            let mut paths = Vec::new();
            for (k, p) in r.paths.iter().enumerate() {
                let field = format!("paths[{k}]");
                if !p.starts_with('/') {
                    return Err(err(field, format!("{p:?} is not an absolute path")));
                }
                let glob = globset::GlobBuilder::new(p)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| err(field, format!("{p:?}: {}", e.kind())))?;
                paths.push(glob.compile_matcher());
            }
            if r.writers.is_empty() || r.writers.len() > MAX_PER_RULE {
                return Err(err(
                    "writers".into(),
                    format!("1 to {MAX_PER_RULE} writers"),
                ));
            }
            let mut writers = Vec::new();
            for (k, w) in r.writers.iter().enumerate() {
                writers.push(allowed(w).map_err(|(f, m)| err(format!("writers[{k}]{f}"), m))?);
            }
            let known = |a: &str| CONTENT_AND_TIMES.contains(&a) || OTHER_ATTRIBUTES.contains(&a);
            if let Some((k, a)) = r.attributes.iter().enumerate().find(|(_, a)| !known(a)) {
                return Err(err(
                    format!("attributes[{k}]"),
                    format!(
                        "{a:?} is not an attribute a change lists (one of {})",
                        CONTENT_AND_TIMES
                            .iter()
                            .chain(OTHER_ATTRIBUTES)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            let attributes = if r.attributes.is_empty() {
                CONTENT_AND_TIMES.iter().map(|a| a.to_string()).collect()
            } else {
                r.attributes.iter().cloned().collect()
            };
            rules.push(Rule {
                name: r.name.clone(),
                paths,
                writers,
                attributes,
            });
        }
        Ok(Rules(rules))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name of the first rule that expects `change`, if one does (see the module docs).
    pub fn expects(&self, change: &FileChange, pods: PodLabels<'_>) -> Option<&str> {
        if change.kind != ChangeKind::Changed
            || change.found_by != Some(FoundBy::Realtime)
            || change.writers.is_empty()
            || change
                .writers
                .iter()
                .any(|w| w.state != WriterState::Attributed)
        {
            return None;
        }
        self.0
            .iter()
            .find(|r| {
                r.paths.iter().any(|g| g.is_match(&change.path))
                    && change.attributes.iter().all(|a| r.attributes.contains(a))
                    && change
                        .writers
                        .iter()
                        .all(|w| r.writers.iter().any(|a| a.allows(w, pods)))
            })
            .map(|r| r.name.as_str())
    }
}

/// Who made a change listed after a confirmed node update ([`crate::accept::UpdateWindow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateWriter {
    /// Every writer named is the machine-config daemon (a pod the operator read on the node).
    MachineConfigDaemon,
    /// No writer was named (a scan found it, or the process exited before it was read), and
    /// none named is another.
    Unnamed,
    /// Another writer was named: the change fails the node as any other.
    Other,
}

/// How `change` stands in a node update's window (`pods`: as for [`Rules::expects`]).
pub fn update_writer(change: &FileChange, pods: PodLabels<'_>) -> UpdateWriter {
    let mcd = machine_config_daemon();
    let named = || change.writers.iter().filter(|w| w.state == WriterState::Attributed);
    if named().any(|w| !mcd.allows(w, pods)) {
        UpdateWriter::Other
    } else if change.writers.is_empty()
        || change.writers.iter().any(|w| w.state != WriterState::Attributed)
    {
        UpdateWriter::Unnamed
    } else {
        UpdateWriter::MachineConfigDaemon
    }
}

fn machine_config_daemon() -> Allowed {
    let (k, v) = MACHINE_CONFIG_DAEMON_LABEL;
    Allowed::Pod {
        namespace: MACHINE_CONFIG_DAEMON_NAMESPACE.into(),
        selector: Selector::from_iter([(k.to_owned(), v.to_owned())]),
    }
}

/// A writer of the spec as a matcher; `Err((field suffix, message))`.
fn allowed(w: &ExpectedWriter) -> Result<Allowed, (String, String)> {
    let stray = |fields: &[(&str, bool)]| -> Result<(), (String, String)> {
        match fields.iter().find(|(_, set)| *set) {
            Some((f, _)) => Err((
                format!(".{f}"),
                format!("not a field of a {:?} writer", w.kind),
            )),
            None => Ok(()),
        }
    };
    match w.kind.as_str() {
        "unit" => {
            stray(&[
                ("namespace", !w.namespace.is_empty()),
                ("selector", w.selector.is_some()),
            ])?;
            let unit_like = [".service", ".scope", ".slice"]
                .iter()
                .any(|s| w.name.ends_with(s) && w.name.len() > s.len());
            if !unit_like || w.name.contains('/') {
                return Err((
                    ".name".into(),
                    format!("{:?} is not a systemd unit (e.g. kubelet.service)", w.name),
                ));
            }
            Ok(Allowed::Unit(w.name.clone()))
        }
        "pod" => {
            stray(&[("name", !w.name.is_empty())])?;
            if w.namespace.is_empty() {
                return Err((
                    ".namespace".into(),
                    "a pod writer needs its namespace".into(),
                ));
            }
            let selector = match &w.selector {
                Some(s) => Selector::try_from(s.clone())
                    .map_err(|e| (".selector".to_owned(), e.to_string()))?,
                None => Selector::default(),
            };
            Ok(Allowed::Pod {
                namespace: w.namespace.clone(),
                selector,
            })
        }
        "machineConfigDaemon" => {
            stray(&[
                ("name", !w.name.is_empty()),
                ("namespace", !w.namespace.is_empty()),
                ("selector", w.selector.is_some()),
            ])?;
            Ok(machine_config_daemon())
        }
        other => Err((
            ".kind".into(),
            format!("unknown writer kind {other:?} (unit, pod or machineConfigDaemon)"),
        )),
    }
}

impl Allowed {
    fn allows(&self, w: &Writer, pods: PodLabels<'_>) -> bool {
        match (self, &w.pod) {
            (Allowed::Unit(u), None) => w.unit == *u,
            (
                Allowed::Pod {
                    namespace,
                    selector,
                },
                Some(p),
            ) => p.namespace == *namespace && pods(p).is_some_and(|l| selector.matches(&l)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
