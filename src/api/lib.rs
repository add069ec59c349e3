//! The operator's Kubernetes API: the `fileintegrity.openshift.io/v1alpha1` custom resources
//! (same group, kinds, fields and defaults as the upstream File Integrity Operator), the
//! well-known names ([`names`]), the CRD manifests generated from the Rust types, and the
//! contract between daemon and operator ([`result`], [`reinit`], [`holdoff`], [`daemon_args`]).
//!
//! The CRD files in `deploy/crds/` are generated, never edited:
//!
//! ```text
//! cargo run --bin fio-operator -- crds --out deploy/crds
//! ```
//!
//! and `tests/deploy_manifests.rs` fails when they differ from what the types generate.

#![forbid(unsafe_code)]

pub mod accept;
pub mod aideconf;
pub mod daemon_args;
pub mod expected;
mod fileintegrity;
pub mod holdoff;
pub mod names;
mod nodestatus;
pub mod reinit;
pub mod result;

pub use fileintegrity::{
    default_tolerations, FileIntegrity, FileIntegrityConfig, FileIntegritySpec,
    FileIntegrityStatus, FileIntegrityStatusPhase, RealtimeSpec,
};
pub use holdoff::{Holdoff, NodePause};
pub use nodestatus::{
    AcceptedChange, AttributeChange, ChangeKind, CoverageState, FileChange,
    FileIntegrityNodeCondition, FileIntegrityNodeStatus, FileIntegrityNodeStatusFields,
    FileIntegrityScanResult, FoundBy, NodeBaseline, RealtimeCoverage, RealtimeGap, Writer,
    WriterPod, WriterState, MAX_ACCEPTED, MAX_GAPS, MAX_WRITERS,
};
pub use reinit::ReinitRequests;
pub use result::{ContractError, DatabaseId, FileCounts, Log, ScanCondition, ScanReport};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The command that regenerates `deploy/crds/` (written into each generated file).
pub const CRD_GENERATE_COMMAND: &str = "cargo run --bin fio-operator -- crds --out deploy/crds";

/// Both CustomResourceDefinitions, FileIntegrity first.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut fi = FileIntegrity::crd();
    spec_defaulted(&mut fi);
    vec![fi, FileIntegrityNodeStatus::crd()]
}

/// A FileIntegrity without `spec` (upstream's CRD accepts one; `oc create` of a bare object
/// makes it) is given the default spec by the API server, on every read of a stored object
/// too, instead of being invalid under our schema, which would stop OLM from upgrading the CRD
/// (it validates the stored objects against the new schema first). The spec's own defaults
/// (gracePeriod, maxBackups, tolerations, ...) then apply inside it.
fn spec_defaulted(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        if let Some(required) = schema.required.as_mut() {
            required.retain(|r| r != "spec");
            if required.is_empty() {
                schema.required = None;
            }
        }
        if let Some(spec) = schema.properties.as_mut().and_then(|p| p.get_mut("spec")) {
            spec.default = Some(
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON(
                    serde_json::json!({"config": {}}),
                ),
            );
        }
    }
}

/// One generated CRD manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrdFile {
    /// File name, upstream's: `<group>_<plural>.yaml`.
    pub file_name: String,
    /// The YAML document, starting with a "generated" comment, ending with a newline.
    pub yaml: String,
}

/// The CRD manifests as written to `deploy/crds/`.
pub fn crd_files() -> Result<Vec<CrdFile>, serde_saphyr::SerializeError> {
    crds()
        .iter()
        .map(|crd| {
            let file_name = format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural);
            let mut yaml =
                format!("# Generated from src/api by `{CRD_GENERATE_COMMAND}`. Do not edit.\n");
            yaml.push_str(&serde_saphyr::to_string(crd)?);
            if !yaml.ends_with('\n') {
                yaml.push('\n');
            }
            Ok(CrdFile { file_name, yaml })
        })
        .collect()
}

/// Both CRDs as one multi-document YAML stream (what `fio-operator crds` prints).
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for file in crd_files()? {
        out.push_str("---\n");
        out.push_str(&file.yaml);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use serde_json::{json, Value};

    fn crd_json(crd: &CustomResourceDefinition) -> Value {
        serde_json::to_value(crd).unwrap()
    }

    #[test]
    fn api_names_match_upstream() {
        assert_eq!(FileIntegrity::group(&()), names::GROUP);
        assert_eq!(FileIntegrity::version(&()), names::VERSION);
        assert_eq!(FileIntegrity::api_version(&()), names::API_VERSION);
        assert_eq!(FileIntegrity::kind(&()), names::FILE_INTEGRITY_KIND);
        assert_eq!(FileIntegrity::plural(&()), names::FILE_INTEGRITY_PLURAL);
        assert_eq!(
            FileIntegrityNodeStatus::api_version(&()),
            names::API_VERSION
        );
        assert_eq!(FileIntegrityNodeStatus::kind(&()), names::NODE_STATUS_KIND);
        assert_eq!(
            FileIntegrityNodeStatus::plural(&()),
            names::NODE_STATUS_PLURAL
        );
        assert_eq!(
            FileIntegrity::crd_name(),
            "fileintegrities.fileintegrity.openshift.io"
        );
        assert_eq!(
            FileIntegrityNodeStatus::crd_name(),
            "fileintegritynodestatuses.fileintegrity.openshift.io"
        );
        let files: Vec<_> = crd_files()
            .unwrap()
            .into_iter()
            .map(|f| f.file_name)
            .collect();
        assert_eq!(
            files,
            [
                "fileintegrity.openshift.io_fileintegrities.yaml",
                "fileintegrity.openshift.io_fileintegritynodestatuses.yaml"
            ]
        );
    }

    #[test]
    fn fileintegrity_crd_schema() {
        let crd = crd_json(&crds()[0]);
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["fi"]));
        let v = &crd["spec"]["versions"][0];
        assert_eq!(v["name"], "v1alpha1");
        assert_eq!(
            (v["served"].as_bool(), v["storage"].as_bool()),
            (Some(true), Some(true))
        );
        assert_eq!(v["subresources"], json!({"status": {}}));
        let cols: Vec<_> = v["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
            .collect();
        assert_eq!(
            cols,
            [
                ("Phase", ".status.phase"),
                ("Age", ".metadata.creationTimestamp")
            ]
        );
        let schema = &v["schema"]["openAPIV3Schema"];
        assert!(schema.get("required").is_none(), "{}", schema["required"]);
        let spec = &schema["properties"]["spec"];
        assert_eq!(spec["default"], json!({"config": {}}));
        assert_eq!(spec["required"], json!(["config"]));
        let config = &spec["properties"]["config"];
        assert!(config.get("required").is_none(), "{config}");
        assert_eq!(config["properties"]["gracePeriod"]["default"], 900);
        assert_eq!(config["properties"]["maxBackups"]["default"], 5);
        assert!(config["properties"]["initialDelay"]
            .get("default")
            .is_none());
        for key in ["name", "namespace", "key"] {
            assert_eq!(config["properties"][key]["type"], "string");
        }
        assert_eq!(
            spec["properties"]["tolerations"]["default"],
            json!([
                {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node-role.kubernetes.io/infra", "operator": "Exists", "effect": "NoSchedule"}
            ])
        );
        assert_eq!(
            spec["properties"]["nodeSelector"]["additionalProperties"]["type"],
            "string"
        );
        assert_eq!(spec["properties"]["debug"]["type"], "boolean");
        assert_eq!(spec["properties"]["priorityClassName"]["type"], "string");
        assert_eq!(
            schema["properties"]["status"]["properties"]["phase"]["enum"],
            json!(["Initializing", "Active", "Pending", "Error"])
        );
    }

    #[test]
    fn nodestatus_crd_schema_has_no_spec() {
        let crd = crd_json(&FileIntegrityNodeStatus::crd());
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(
            crd["spec"]["names"]["shortNames"],
            json!(["fins", "finodestatus"])
        );
        let v = &crd["spec"]["versions"][0];
        assert!(
            v.get("subresources").is_none(),
            "no status subresource: {}",
            v["subresources"]
        );
        let cols: Vec<_> = v["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
            .collect();
        assert_eq!(
            cols,
            [
                ("Node", ".nodeName"),
                ("Status", ".lastResult.condition"),
                ("Added", ".lastResult.filesAdded"),
                ("Changed", ".lastResult.filesChanged"),
                ("Removed", ".lastResult.filesRemoved"),
                ("Last Probe", ".lastResult.lastProbeTime"),
                ("First Change", ".lastResult.changes[0].path"),
                ("Age", ".metadata.creationTimestamp"),
            ]
        );
        let schema = &v["schema"]["openAPIV3Schema"];
        let props = schema["properties"].as_object().unwrap();
        let mut keys: Vec<_> = props.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "acceptId",
                "acceptedChanges",
                "baseline",
                "lastResult",
                "nodeName",
                "reinitId",
                "resultVersion",
                "results"
            ]
        );
        let mut required: Vec<_> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        required.sort_unstable();
        assert_eq!(required, ["lastResult", "nodeName", "results"]);
        let result = &props["lastResult"];
        let mut required: Vec<_> = result["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        required.sort_unstable();
        assert_eq!(required, ["condition", "lastProbeTime"]);
        assert_eq!(result["properties"]["lastProbeTime"]["format"], "date-time");
        assert_eq!(
            result["properties"]["condition"]["enum"],
            json!(["Succeeded", "Failed", "Errored"])
        );
        assert_eq!(
            props["results"]["items"]["properties"],
            result["properties"]
        );
        assert_eq!(props["results"]["items"]["required"], result["required"]);
    }

    #[test]
    fn crds_yaml_is_two_documents() {
        let yaml = crds_yaml().unwrap();
        assert_eq!(yaml.matches("---\n").count(), 2, "{yaml}");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(docs, crds().iter().map(crd_json).collect::<Vec<_>>());
    }
}
