//! The contract between a daemon and the operator: one [`ScanReport`] per scan, carried by the
//! result ConfigMap `aide-<fi>-<node>`. Both sides use this type, so the wire form is written in
//! one place ([`ScanReport::to_config_map`]) and read in one place
//! ([`ScanReport::from_config_map`]), and a malformed field is a [`ContractError`] naming it,
//! never a silent 0.
//!
//! Wire form (upstream's names and layout; ours marked *):
//! - name `aide-<fi>-<node>`; labels `file-integrity.openshift.io/owner=<fi>`, `.../node=<node>`,
//!   `.../log=""`; owner reference to the FileIntegrity;
//! - Failed: annotations `files-added`, `files-changed`, `files-removed` (decimal), data
//!   `integritylog` with the report, `compressed` (annotation) when it is gzip+base64;
//!   `changes`* (annotation: the first changes, their total, the digest of the full list) and
//!   data `changes.json`* (the full list as AIDE's JSON report, compressed with the report);
//! - Errored: annotation `log-errormsg` (upstream's "AIDE error: 18 IO error: ..." text),
//!   `exit-code`* (AIDE's status, absent when the daemon refused to scan);
//! - `reinit-id`*, `db-sha256`*/`db-size`*/`db-entries`*, `db-initialized`*,
//!   `scan-seconds`*/`files-scanned`*;
//! - `results-superseded`*: how many results the node replaced before they were delivered.
//!
//! As upstream (and the seed): the daemon creates its result, the operator processes it and
//! deletes it; a node holds at most one unprocessed result per FileIntegrity (the admission
//! policy in `deploy/rbac`).

use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine;
use fio_core::exit::Exit;
pub use fio_core::runner::DatabaseId;
use fio_core::runner::Verdict;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::names;
use crate::nodestatus::FileChange;

/// Upstream's `configMapMaxSize`: a little under the 1 MiB ConfigMap limit.
pub const CONFIGMAP_MAX: usize = 1_048_570;

/// What one scan on one node reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanReport {
    /// The FileIntegrity the scan was for.
    pub owner: String,
    pub node: String,
    pub condition: ScanCondition,
    /// The newest re-init request this node has completed for the FileIntegrity (absent in
    /// results of upstream's daemons).
    pub reinit_id: Option<i64>,
    /// The database the scan used.
    pub database: Option<DatabaseId>,
    /// The daemon (re-)initialised the database in this cycle.
    pub initialized: bool,
    /// How long the check took and how many files it examined, when it ran.
    pub figures: Option<ScanFigures>,
    /// Results of this node that this one replaced before they could be delivered.
    pub superseded: u64,
    /// The daemon's view of the host, when it checked it.
    pub view: Option<HostView>,
    /// The realtime watcher's coverage (absent: a daemon without one).
    pub realtime: Option<crate::RealtimeCoverage>,
    /// The acceptance request completed in this cycle, before the check (ours, issue 28).
    pub accepted: Option<crate::accept::Accepted>,
}

/// What the daemon saw of the host's mounts (see the daemon's `view` module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    /// SHA-256 (hex) of its mounts below the host root.
    pub digest: String,
    /// Paths (as on the node, escaped) where a mount covers a file; the last line may say how
    /// many more there were.
    pub covered_files: Vec<String>,
}

/// The most lines of `covered-files`: the daemon lists 20 paths, then how many more.
pub const MAX_COVERED_LINES: usize = 21;
/// The longest line of `covered-files` (a path the kernel accepts is at most 4096 bytes; a
/// longer one is shown cut).
pub const MAX_COVERED_LINE: usize = 4096;

/// The outcome, as the node status's condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanCondition {
    Succeeded,
    Failed {
        counts: FileCounts,
        log: Log,
        /// Absent in results of upstream's daemons.
        changes: Option<Changes>,
    },
    Errored {
        /// AIDE's status; `None` when the daemon refused to run the scan (baseline mismatch,
        /// re-init not recorded).
        exit: Option<Exit>,
        message: String,
    },
}

/// The changes of a Failed result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    pub summary: ChangeSummary,
    /// The full list as AIDE 0.18's JSON report, packed as the log is (compressed when it is):
    /// `None` when it did not fit beside the log.
    pub json: Option<String>,
}

/// The first changes, how many there are and the digest of the full list: the `changes`
/// annotation. Read strictly (bounds below): it is the node's word about its own verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeSummary {
    pub total: u64,
    pub sha256: String,
    pub listed: Vec<FileChange>,
}

/// The longest `changes` annotation read.
pub const MAX_CHANGES_ANNOTATION: usize = 128 * 1024;
/// The longest `realtime` annotation read.
pub const MAX_REALTIME_ANNOTATION: usize = 16 * 1024;
/// The most listed changes a result may carry.
pub const MAX_LISTED_CHANGES: usize = fio_core::runner::LISTED_CHANGES;
const MAX_PATH: usize = fio_core::changes::MAX_SHOWN_PATH + 3;
const MAX_VALUE: usize = fio_core::changes::MAX_SHOWN_VALUE + 3;
const MAX_ATTRIBUTES: usize = 48;
const MAX_ATTRIBUTE_NAME: usize = 32;

impl ChangeSummary {
    pub fn of(list: &fio_core::changes::ChangeList) -> ChangeSummary {
        ChangeSummary {
            total: list.total,
            sha256: list.sha256.clone(),
            listed: list.listed.iter().map(FileChange::from).collect(),
        }
    }

    /// Why this summary is not one a daemon writes, if it is not.
    fn malformed(&self, counts: &FileCounts) -> Option<&'static str> {
        let counted = counts
            .added
            .saturating_add(counts.changed)
            .saturating_add(counts.removed);
        if self.total != counted {
            return Some("total differs from the counts");
        }
        if self.listed.len() > MAX_LISTED_CHANGES || self.listed.len() as u64 > self.total {
            return Some("more listed changes than allowed or counted");
        }
        if !is_sha256_hex(&self.sha256) {
            return Some("sha256 is not 64 lowercase hex digits");
        }
        let bad = |c: &FileChange| {
            c.path.is_empty()
                || c.path.len() > MAX_PATH
                || c.since.is_some()
                || c.writers.len() > crate::nodestatus::MAX_WRITERS
                || !c.writers.iter().all(crate::nodestatus::Writer::bounded)
                || c.attributes.len() > MAX_ATTRIBUTES
                || c.details.len() > MAX_ATTRIBUTES
                || c.attributes.iter().any(|a| a.len() > MAX_ATTRIBUTE_NAME)
                || c.details.iter().any(|d| {
                    d.attribute.len() > MAX_ATTRIBUTE_NAME
                        || d.old.len() > MAX_VALUE
                        || d.new.len() > MAX_VALUE
                })
        };
        self.listed
            .iter()
            .any(bad)
            .then_some("a listed change exceeds its bounds")
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileCounts {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
}

/// The report as carried in `integritylog`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Log {
    Text(String),
    /// gzip, then base64 (or upstream's placeholder when even that does not fit).
    Compressed(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScanFigures {
    pub seconds: f64,
    pub files: u64,
}

/// A result ConfigMap that does not hold a well-formed [`ScanReport`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContractError {
    #[error("result ConfigMap {cm}: missing label {label}")]
    MissingLabel { cm: String, label: &'static str },
    #[error("result ConfigMap {cm}: annotation {annotation}={value:?}: {reason}")]
    Field {
        cm: String,
        annotation: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("result ConfigMap {cm}: {annotation} is required with {with}")]
    Missing {
        cm: String,
        annotation: &'static str,
        with: &'static str,
    },
    #[error(
        "result ConfigMap {cm}: both an error ({}) and a report ({})",
        names::LOG_ERROR_ANNOTATION,
        names::INTEGRITY_LOG_KEY
    )]
    Ambiguous { cm: String },
}

impl Log {
    /// Pack a report for a ConfigMap: as text when it fits (and `force_compress` is off), else
    /// gzip and base64; if even that is too large, a placeholder telling the admin where the
    /// full log is on the node (upstream's behaviour).
    pub fn pack(log: &[u8], node: &str, force_compress: bool) -> Log {
        if log.len() <= CONFIGMAP_MAX && !force_compress {
            // A report that is not UTF-8 (a file name's bytes) is compressed, not mangled.
            if let Ok(text) = std::str::from_utf8(log) {
                return Log::Text(text.to_owned());
            }
        }
        let encoded = gzip_base64(log);
        if encoded.len() <= CONFIGMAP_MAX {
            return Log::Compressed(encoded);
        }
        Log::Compressed(format!(
            "compressed, encoded AIDE log is too large for a configMap ({}) - fetch it from /etc/kubernetes/aide.log on node {node}",
            encoded.len()
        ))
    }

    /// The report and the change list's JSON, packed together: both as text when both are
    /// UTF-8 and fit (and `force_compress` is off), else both gzip + base64 (one annotation
    /// says so for both); the JSON is left out when only the report fits.
    pub fn pack_with(
        log: &[u8],
        json: &[u8],
        node: &str,
        force_compress: bool,
    ) -> (Log, Option<String>) {
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
        if !force_compress && log.len() + json.len() <= CONFIGMAP_MAX {
            if let (Some(l), Some(j)) = (text(log), text(json)) {
                return (Log::Text(l), Some(j));
            }
        }
        let log = Log::pack(log, node, true);
        let json = gzip_base64(json);
        if log.data().len() + json.len() <= CONFIGMAP_MAX {
            (log, Some(json))
        } else {
            (log, None)
        }
    }

    /// The text as stored in the ConfigMap.
    pub fn data(&self) -> &str {
        match self {
            Log::Text(s) | Log::Compressed(s) => s,
        }
    }
}

/// A reader of a kept report's or change list's text, as packed: as is, or gunzipped from its
/// base64 when the ConfigMap says it is compressed. A compressed value that is not base64 is
/// upstream's placeholder for a report too large even compressed: read as is. The reader
/// streams: a report that decompresses to gigabytes is never held.
pub fn unpacked(data: &str, compressed: bool) -> Box<dyn std::io::Read + Send + '_> {
    if compressed {
        if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(data.trim()) {
            return Box::new(flate2::read::GzDecoder::new(std::io::Cursor::new(raw)));
        }
    }
    Box::new(data.as_bytes())
}

/// gzip, then base64: upstream's packing of a report.
fn gzip_base64(data: &[u8]) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(data);
    let zipped = gz.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(&zipped)
}

impl ScanCondition {
    /// The condition of a runner's verdict; a failure always carries a report (a placeholder
    /// when the configuration writes none), or the operator would read it as a success.
    pub fn from_verdict(v: &Verdict, node: &str, force_compress: bool) -> ScanCondition {
        match v {
            Verdict::Succeeded => ScanCondition::Succeeded,
            Verdict::Failed {
                added,
                removed,
                changed,
                log,
                changes,
                changes_json,
            } => {
                let log: &[u8] = if log.is_empty() {
                    b"differences found; the configuration has no report_url=file, so no report was kept\n"
                } else {
                    log
                };
                let (log, json) = Log::pack_with(log, changes_json, node, force_compress);
                ScanCondition::Failed {
                    counts: FileCounts {
                        added: *added,
                        changed: *changed,
                        removed: *removed,
                    },
                    log,
                    changes: Some(Changes {
                        summary: ChangeSummary::of(changes),
                        json,
                    }),
                }
            }
            Verdict::Errored { exit, message } => ScanCondition::Errored {
                exit: *exit,
                message: message.clone(),
            },
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ScanCondition::Succeeded => "Succeeded",
            ScanCondition::Failed { .. } => "Failed",
            ScanCondition::Errored { .. } => "Errored",
        }
    }
}

impl ScanReport {
    /// The result ConfigMap of this report, owned by the FileIntegrity with `owner_uid`.
    pub fn to_config_map(&self, namespace: &str, owner_uid: &str) -> ConfigMap {
        let mut ann = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            ann.insert(k.to_owned(), v);
        };
        if let Some(id) = self.reinit_id {
            put(names::REINIT_ID_ANNOTATION, id.to_string());
        }
        if let Some(db) = &self.database {
            put(names::DB_SHA256_ANNOTATION, db.sha256.clone());
            put(names::DB_SIZE_ANNOTATION, db.size.to_string());
            if let Some(n) = db.entries {
                put(names::DB_ENTRIES_ANNOTATION, n.to_string());
            }
        }
        if self.superseded > 0 {
            put(
                names::RESULTS_SUPERSEDED_ANNOTATION,
                self.superseded.to_string(),
            );
        }
        if self.initialized {
            put(names::DB_INITIALIZED_ANNOTATION, String::new());
        }
        if let Some(v) = &self.view {
            put(names::MOUNTS_SHA256_ANNOTATION, v.digest.clone());
            if !v.covered_files.is_empty() {
                put(names::COVERED_FILES_ANNOTATION, v.covered_files.join("\n"));
            }
        }
        if let Some(r) = &self.realtime {
            // Serialising plain strings and times cannot fail.
            put(
                names::REALTIME_ANNOTATION,
                serde_json::to_string(r).unwrap_or_default(),
            );
        }
        if let Some(a) = &self.accepted {
            put(
                names::ACCEPTED_ANNOTATION,
                serde_json::to_string(a).unwrap_or_default(),
            );
        }
        if let Some(f) = &self.figures {
            put(names::SCAN_SECONDS_ANNOTATION, format!("{:.3}", f.seconds));
            put(names::FILES_SCANNED_ANNOTATION, f.files.to_string());
        }
        let mut data = None;
        match &self.condition {
            ScanCondition::Succeeded => {}
            ScanCondition::Failed {
                counts,
                log,
                changes,
            } => {
                put(names::FILES_ADDED_ANNOTATION, counts.added.to_string());
                put(names::FILES_CHANGED_ANNOTATION, counts.changed.to_string());
                put(names::FILES_REMOVED_ANNOTATION, counts.removed.to_string());
                if let Log::Compressed(_) = log {
                    put(names::COMPRESSED_ANNOTATION, String::new());
                }
                let mut d =
                    BTreeMap::from([(names::INTEGRITY_LOG_KEY.to_owned(), log.data().to_owned())]);
                if let Some(c) = changes {
                    // Serialising plain strings and numbers cannot fail.
                    let summary = serde_json::to_string(&c.summary).unwrap_or_default();
                    put(names::CHANGES_ANNOTATION, summary);
                    if let Some(json) = &c.json {
                        d.insert(names::CHANGES_JSON_KEY.to_owned(), json.clone());
                    }
                }
                data = Some(d);
            }
            ScanCondition::Errored { exit, message } => {
                put(names::LOG_ERROR_ANNOTATION, message.clone());
                if let Some(e) = exit {
                    put(names::EXIT_CODE_ANNOTATION, e.code().to_string());
                }
            }
        }
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(names::result_configmap_name(&self.owner, &self.node)),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([
                    (names::OWNER_LABEL.to_owned(), self.owner.clone()),
                    (names::LOG_LABEL.to_owned(), String::new()),
                    (names::NODE_LABEL.to_owned(), self.node.clone()),
                ])),
                annotations: Some(ann),
                owner_references: Some(vec![OwnerReference {
                    api_version: names::API_VERSION.into(),
                    kind: names::FILE_INTEGRITY_KIND.into(),
                    name: self.owner.clone(),
                    uid: owner_uid.to_owned(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            data,
            ..ConfigMap::default()
        }
    }

    /// Read a result ConfigMap. Every annotation present must be well-formed; a Failed result
    /// must carry its three counts, a database digest its size.
    pub fn from_config_map(cm: &ConfigMap) -> Result<ScanReport, ContractError> {
        let name = cm.metadata.name.clone().unwrap_or_default();
        let empty = BTreeMap::new();
        let labels = cm.metadata.labels.as_ref().unwrap_or(&empty);
        let ann = cm.metadata.annotations.as_ref().unwrap_or(&empty);
        let label = |l: &'static str| {
            labels
                .get(l)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| ContractError::MissingLabel {
                    cm: name.clone(),
                    label: l,
                })
        };
        let owner = label(names::OWNER_LABEL)?;
        let node = label(names::NODE_LABEL)?;
        let field = |annotation: &'static str, reason: &'static str| ContractError::Field {
            cm: name.clone(),
            annotation,
            value: ann.get(annotation).cloned().unwrap_or_default(),
            reason,
        };
        let number = |a: &'static str| -> Result<Option<u64>, ContractError> {
            ann.get(a)
                .map(|v| parse_decimal(v).ok_or_else(|| field(a, "not a non-negative integer")))
                .transpose()
        };
        let required = |a: &'static str, with: &'static str| {
            number(a)?.ok_or_else(|| ContractError::Missing {
                cm: name.clone(),
                annotation: a,
                with,
            })
        };

        let log = cm
            .data
            .as_ref()
            .and_then(|d| d.get(names::INTEGRITY_LOG_KEY))
            .filter(|l| !l.is_empty());
        let condition = match (ann.get(names::LOG_ERROR_ANNOTATION), log) {
            (Some(_), Some(_)) => return Err(ContractError::Ambiguous { cm: name.clone() }),
            (Some(message), None) => ScanCondition::Errored {
                exit: number(names::EXIT_CODE_ANNOTATION)?
                    .map(|c| {
                        u8::try_from(c)
                            .ok()
                            .and_then(Exit::from_code)
                            .filter(|e| e.is_error())
                            .ok_or_else(|| {
                                field(names::EXIT_CODE_ANNOTATION, "not an AIDE error status")
                            })
                    })
                    .transpose()?,
                message: message.clone(),
            },
            (None, Some(log)) => {
                let with = names::INTEGRITY_LOG_KEY;
                let counts = FileCounts {
                    added: required(names::FILES_ADDED_ANNOTATION, with)?,
                    changed: required(names::FILES_CHANGED_ANNOTATION, with)?,
                    removed: required(names::FILES_REMOVED_ANNOTATION, with)?,
                };
                let json = cm
                    .data
                    .as_ref()
                    .and_then(|d| d.get(names::CHANGES_JSON_KEY))
                    .cloned();
                let changes = match ann.get(names::CHANGES_ANNOTATION) {
                    None if json.is_some() => {
                        return Err(ContractError::Missing {
                            cm: name.clone(),
                            annotation: names::CHANGES_ANNOTATION,
                            with: names::CHANGES_JSON_KEY,
                        })
                    }
                    None => None,
                    Some(v) if v.len() > MAX_CHANGES_ANNOTATION => {
                        return Err(field(names::CHANGES_ANNOTATION, "longer than 128 KiB"))
                    }
                    Some(v) => {
                        let summary: ChangeSummary = serde_json::from_str(v).map_err(|_| {
                            field(names::CHANGES_ANNOTATION, "not a change summary")
                        })?;
                        if let Some(why) = summary.malformed(&counts) {
                            return Err(field(names::CHANGES_ANNOTATION, why));
                        }
                        Some(Changes { summary, json })
                    }
                };
                ScanCondition::Failed {
                    counts,
                    log: if ann.contains_key(names::COMPRESSED_ANNOTATION) {
                        Log::Compressed(log.clone())
                    } else {
                        Log::Text(log.clone())
                    },
                    changes,
                }
            }
            (None, None) => ScanCondition::Succeeded,
        };
        if !matches!(condition, ScanCondition::Failed { .. }) {
            let stray = ann.contains_key(names::CHANGES_ANNOTATION)
                || cm
                    .data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(names::CHANGES_JSON_KEY));
            if stray {
                return Err(field(names::CHANGES_ANNOTATION, "changes without a report"));
            }
        }
        let reinit_id = number(names::REINIT_ID_ANNOTATION)?
            .map(|n| i64::try_from(n).map_err(|_| field(names::REINIT_ID_ANNOTATION, "too large")))
            .transpose()?;
        let database = match ann.get(names::DB_SHA256_ANNOTATION) {
            None => None,
            Some(sha) if !is_sha256_hex(sha) => {
                return Err(field(
                    names::DB_SHA256_ANNOTATION,
                    "not 64 lowercase hex digits",
                ))
            }
            Some(sha) => Some(DatabaseId {
                sha256: sha.clone(),
                size: required(names::DB_SIZE_ANNOTATION, names::DB_SHA256_ANNOTATION)?,
                entries: number(names::DB_ENTRIES_ANNOTATION)?,
            }),
        };
        let seconds = ann
            .get(names::SCAN_SECONDS_ANNOTATION)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| {
                        field(names::SCAN_SECONDS_ANNOTATION, "not a non-negative number")
                    })
            })
            .transpose()?;
        let files = number(names::FILES_SCANNED_ANNOTATION)?;
        let superseded = number(names::RESULTS_SUPERSEDED_ANNOTATION)?.unwrap_or(0);
        let covered = ann.get(names::COVERED_FILES_ANNOTATION);
        let view = match (ann.get(names::MOUNTS_SHA256_ANNOTATION), covered) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ContractError::Missing {
                    cm: name.clone(),
                    annotation: names::MOUNTS_SHA256_ANNOTATION,
                    with: names::COVERED_FILES_ANNOTATION,
                })
            }
            (Some(sha), _) if !is_sha256_hex(sha) => {
                return Err(field(
                    names::MOUNTS_SHA256_ANNOTATION,
                    "not 64 lowercase hex digits",
                ))
            }
            (Some(sha), covered) => {
                let lines: Vec<String> = covered
                    .map(|c| c.lines().map(str::to_owned).collect())
                    .unwrap_or_default();
                if lines.len() > MAX_COVERED_LINES
                    || lines.iter().any(|l| l.len() > MAX_COVERED_LINE)
                {
                    return Err(field(
                        names::COVERED_FILES_ANNOTATION,
                        "more than 21 lines or a line longer than 4096 bytes",
                    ));
                }
                Some(HostView {
                    digest: sha.clone(),
                    covered_files: lines,
                })
            }
        };
        let realtime = match ann.get(names::REALTIME_ANNOTATION) {
            None => None,
            Some(v) if v.len() > MAX_REALTIME_ANNOTATION => {
                return Err(field(names::REALTIME_ANNOTATION, "longer than 16 KiB"))
            }
            Some(v) => {
                let r: crate::RealtimeCoverage = serde_json::from_str(v)
                    .map_err(|_| field(names::REALTIME_ANNOTATION, "not a realtime coverage"))?;
                if !r.bounded() {
                    return Err(field(
                        names::REALTIME_ANNOTATION,
                        "more than 8 gaps or a text longer than 512 bytes",
                    ));
                }
                Some(r)
            }
        };
        let accepted = match ann.get(names::ACCEPTED_ANNOTATION) {
            None => None,
            Some(v) if v.len() > crate::accept::MAX_ACCEPTED_ANNOTATION => {
                return Err(field(names::ACCEPTED_ANNOTATION, "longer than 32 KiB"))
            }
            Some(v) => {
                let a: crate::accept::Accepted = serde_json::from_str(v)
                    .map_err(|_| field(names::ACCEPTED_ANNOTATION, "not an acceptance"))?;
                if a.paths.len() > crate::accept::MAX_PATHS {
                    return Err(field(names::ACCEPTED_ANNOTATION, "more than 50 paths"));
                }
                Some(a)
            }
        };
        let figures = match (seconds, files) {
            (Some(seconds), Some(files)) => Some(ScanFigures { seconds, files }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ContractError::Missing {
                    cm: name,
                    annotation: names::FILES_SCANNED_ANNOTATION,
                    with: names::SCAN_SECONDS_ANNOTATION,
                })
            }
            (None, Some(_)) => {
                return Err(ContractError::Missing {
                    cm: name,
                    annotation: names::SCAN_SECONDS_ANNOTATION,
                    with: names::FILES_SCANNED_ANNOTATION,
                })
            }
        };
        Ok(ScanReport {
            owner,
            node,
            condition,
            reinit_id,
            database,
            initialized: ann.contains_key(names::DB_INITIALIZED_ANNOTATION),
            figures,
            superseded,
            view,
            realtime,
            accepted,
        })
    }
}

/// The annotations of a result that carry a Succeeded verdict whole: no log, no error, no
/// covered files, only short values (numbers and digests). The operator's watch keeps these
/// (and only these) of such a result and decides it from them without reading the object; any
/// other result it reads whole.
pub const VERDICT_ANNOTATIONS: [&str; 9] = [
    names::REINIT_ID_ANNOTATION,
    names::DB_SHA256_ANNOTATION,
    names::DB_SIZE_ANNOTATION,
    names::DB_ENTRIES_ANNOTATION,
    names::DB_INITIALIZED_ANNOTATION,
    names::SCAN_SECONDS_ANNOTATION,
    names::FILES_SCANNED_ANNOTATION,
    names::RESULTS_SUPERSEDED_ANNOTATION,
    names::MOUNTS_SHA256_ANNOTATION,
];

/// The longest value of a [`VERDICT_ANNOTATIONS`] entry (a SHA-256 in hex); a longer one is
/// malformed, which reading the whole object reports.
pub const MAX_VERDICT_VALUE: usize = 64;

/// Whether a result's annotations alone decide it: none of a Failed or Errored result's, no
/// covered files, and every verdict annotation short. (A result is never updated: the daemons'
/// admission policy admits creates only, so its metadata is the whole of what it says, but for a
/// log in its data, which a Succeeded result never has.)
pub fn decided_by_annotations(annotations: &BTreeMap<String, String>) -> bool {
    const UNDECIDED: [&str; 10] = [
        names::CHANGES_ANNOTATION,
        names::REALTIME_ANNOTATION,
        names::ACCEPTED_ANNOTATION,
        names::LOG_ERROR_ANNOTATION,
        names::EXIT_CODE_ANNOTATION,
        names::FILES_ADDED_ANNOTATION,
        names::FILES_CHANGED_ANNOTATION,
        names::FILES_REMOVED_ANNOTATION,
        names::COMPRESSED_ANNOTATION,
        names::COVERED_FILES_ANNOTATION,
    ];
    UNDECIDED.iter().all(|k| !annotations.contains_key(*k))
        && VERDICT_ANNOTATIONS.iter().all(|k| {
            annotations
                .get(*k)
                .is_none_or(|v| v.len() <= MAX_VERDICT_VALUE)
        })
}

/// A decimal as the daemon writes it: digits only (no sign, no spaces, no leading `+`).
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests;
