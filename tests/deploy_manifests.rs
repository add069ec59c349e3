//! The install manifests under `deploy/`: generated CRDs up to date, every file parses as the
//! Kubernetes type its kind names, kustomizations complete, RBAC as least-privileged as intended,
//! sample FileIntegrity read with upstream's defaults.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use fio_api::{self as api, names, FileIntegrity};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

const REGENERATE: &str = "cargo run --bin fio-operator -- crds --out deploy/crds";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn fio_operator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fio-operator"))
}

fn rel(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every `.yaml`/`.yml` file under `dir`, sorted; not the OLM bundle, catalog and install
/// objects, which `scripts/bundle.py` generates from the others (tests/olm/ checks them).
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let olm = ["bundle", "catalog", "olm"].map(|d| deploy_dir().join(d));
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if olm.contains(&path) {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents of a (multi-document) YAML file.
fn docs(path: &Path) -> Vec<Value> {
    serde_saphyr::from_multiple(&read(path))
        .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", rel(path)))
}

/// All documents of all manifests under deploy/ (kustomizations excluded), with their file.
fn all_objects() -> Vec<(String, Value)> {
    yaml_files(&deploy_dir())
        .into_iter()
        .filter(|p| !is_kustomization(p))
        .flat_map(|p| docs(&p).into_iter().map(move |d| (rel(&p), d)))
        .collect()
}

fn is_kustomization(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == "kustomization.yaml" || n == "kustomization.yml")
}

fn typed<T: DeserializeOwned>(file: &str, doc: &Value) -> T {
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {}: {e}", doc["kind"]))
}

fn find<T: DeserializeOwned>(kind: &str, name: &str) -> T {
    let matches: Vec<_> = all_objects()
        .into_iter()
        .filter(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(matches.len(), 1, "exactly one {kind} {name} under deploy/");
    typed(&matches[0].0, &matches[0].1)
}

// ---- (a) generated CRDs -------------------------------------------------------------------------

#[test]
fn committed_crds_match_the_generator() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fio_operator()
        .args(["crds", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fio-operator crds --out failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let crd_dir = deploy_dir().join("crds");
    let generated: BTreeSet<_> = yaml_files(tmp.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let committed: BTreeSet<_> = yaml_files(&crd_dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        committed, generated,
        "deploy/crds/ does not hold exactly the generated CRD files; regenerate with `{REGENERATE}`"
    );
    for name in &generated {
        let want = read(&tmp.path().join(name));
        let have = read(&crd_dir.join(name));
        assert!(
            have == want,
            "deploy/crds/{name} is not what the Rust types generate (src/api changed?); \
             regenerate with `{REGENERATE}` and commit the result"
        );
    }

    // Without --out: the same documents as one multi-document stream on stdout.
    let out = fio_operator().arg("crds").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let concatenated: String = generated
        .iter()
        .map(|n| format!("---\n{}", read(&crd_dir.join(n))))
        .collect();
    assert_eq!(stdout, concatenated);
    let docs: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&stdout).unwrap();
    let names: Vec<_> = docs
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "fileintegrities.fileintegrity.openshift.io",
            "fileintegritynodestatuses.fileintegrity.openshift.io"
        ]
    );
    assert_eq!(docs, api::crds());
}

#[test]
fn cli_usage() {
    let out = fio_operator().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("crds [--out DIR]"));
    for args in [&["frobnicate"][..], &[], &["crds", "--bogus"], &["--bogus"]] {
        let out = fio_operator().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "fio-operator {args:?}");
        assert!(out.stdout.is_empty(), "fio-operator {args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Usage: fio-operator"),
            "fio-operator {args:?}"
        );
    }
}

// ---- (b) every manifest parses; kustomizations complete -----------------------------------------

/// `have` (the typed object serialised again) contains every field of `want` (the manifest) with
/// the same value: catches misspelt or misplaced fields, which the typed deserialisers ignore.
fn assert_contains(have: &Value, want: &Value, at: &str) {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => {
            for (k, wv) in w {
                let hv = h
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}.{k}: unknown field (typo?)"));
                assert_contains(hv, wv, &format!("{at}.{k}"));
            }
        }
        (Value::Array(h), Value::Array(w)) => {
            assert_eq!(h.len(), w.len(), "{at}: list length");
            for (i, (hv, wv)) in h.iter().zip(w).enumerate() {
                assert_contains(hv, wv, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(have, want, "{at}"),
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(file: &str, doc: &Value) {
    let object: T = typed(file, doc);
    let again = serde_json::to_value(&object).unwrap();
    assert_contains(
        &again,
        doc,
        &format!("{file}: {} {}", doc["kind"], doc["metadata"]["name"]),
    );
}

#[test]
fn every_manifest_parses_as_its_kind() {
    let objects = all_objects();
    assert!(objects.len() >= 10, "{objects:?}");
    let namespaced = [
        "Service",
        "Secret",
        "PrometheusRule",
        "ServiceMonitor",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
        "FileIntegrity",
    ];
    for (file, doc) in &objects {
        let kind = doc["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: document without kind"));
        assert!(
            doc["apiVersion"].is_string(),
            "{file}: {kind} without apiVersion"
        );
        assert!(
            doc["metadata"]["name"].is_string(),
            "{file}: {kind} without metadata.name"
        );
        if namespaced.contains(&kind) {
            assert_eq!(
                doc["metadata"]["namespace"],
                names::DEFAULT_NAMESPACE,
                "{file}: {kind} namespace"
            );
        }
        match kind {
            "CustomResourceDefinition" => round_trip::<CustomResourceDefinition>(file, doc),
            "Namespace" => round_trip::<Namespace>(file, doc),
            "ServiceAccount" => round_trip::<ServiceAccount>(file, doc),
            "Role" => round_trip::<Role>(file, doc),
            "RoleBinding" => round_trip::<RoleBinding>(file, doc),
            "ClusterRole" => round_trip::<ClusterRole>(file, doc),
            "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(file, doc),
            "ValidatingAdmissionPolicy" => round_trip::<ValidatingAdmissionPolicy>(file, doc),
            "ValidatingAdmissionPolicyBinding" => {
                round_trip::<ValidatingAdmissionPolicyBinding>(file, doc)
            }
            "Deployment" => round_trip::<Deployment>(file, doc),
            "FileIntegrity" => round_trip::<FileIntegrity>(file, doc),
            "Service" => round_trip::<Service>(file, doc),
            "Secret" => round_trip::<Secret>(file, doc),
            // No Rust type: the operator's own parser (it applies these at start) must read them.
            "PrometheusRule" | "ServiceMonitor" => {
                let objects =
                    fio_operator::controller::manifests::objects(names::DEFAULT_NAMESPACE)
                        .expect("the operator parses deploy/monitoring");
                assert!(
                    objects
                        .iter()
                        .any(|o| o.types.as_ref().is_some_and(|t| t.kind == kind)),
                    "{file}: {kind} not among the operator's monitoring objects"
                );
            }
            other => panic!(
                "{file}: no typed check for kind {other}: add one to tests/deploy_manifests.rs"
            ),
        }
    }
}

/// Files (and nested kustomization directories' files) listed by `dir/kustomization.yaml`.
fn kustomization_files(dir: &Path, listed: &mut BTreeSet<PathBuf>) {
    let path = dir.join("kustomization.yaml");
    let doc = &docs(&path)[0];
    assert_eq!(doc["kind"], "Kustomization", "{}", rel(&path));
    let resources = doc["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no resources", rel(&path)));
    for r in resources {
        let r = r.as_str().unwrap();
        let target = dir.join(r);
        if target.is_dir() {
            assert!(
                target.join("kustomization.yaml").is_file(),
                "{}: {r} is a directory without kustomization",
                rel(&path)
            );
            kustomization_files(&target, listed);
        } else {
            assert!(
                target.is_file(),
                "{}: lists {r}, which does not exist",
                rel(&path)
            );
            assert!(
                listed.insert(target.canonicalize().unwrap()),
                "{}: {r} listed twice",
                rel(&path)
            );
        }
    }
}

#[test]
fn kustomizations_list_exactly_the_manifests() {
    let deploy = deploy_dir();
    let mut installed = BTreeSet::new();
    kustomization_files(&deploy, &mut installed);
    let mut samples = BTreeSet::new();
    kustomization_files(&deploy.join("samples"), &mut samples);
    assert!(
        installed.is_disjoint(&samples),
        "deploy/kustomization.yaml must not install the samples"
    );
    // Only for clusters with the Prometheus operator: not in the plain install.
    let mut monitoring = BTreeSet::new();
    kustomization_files(&deploy.join("monitoring"), &mut monitoring);
    assert!(
        installed.is_disjoint(&monitoring),
        "deploy/kustomization.yaml must not need the Prometheus operator's CRDs"
    );
    samples.extend(monitoring);

    let manifests: BTreeSet<_> = yaml_files(&deploy)
        .into_iter()
        .filter(|p| !is_kustomization(p))
        .map(|p| p.canonicalize().unwrap())
        .collect();
    let listed: BTreeSet<_> = installed.union(&samples).cloned().collect();
    let unlisted: Vec<_> = manifests.difference(&listed).map(|p| rel(p)).collect();
    assert!(
        unlisted.is_empty(),
        "manifests no kustomization.yaml lists: {unlisted:?}"
    );

    // What `kubectl apply -k deploy/` installs.
    let kinds: BTreeSet<String> = installed
        .iter()
        .flat_map(|p| docs(p))
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "CustomResourceDefinition",
        "Namespace",
        "ServiceAccount",
        "Role",
        "ClusterRole",
        "Deployment",
    ] {
        assert!(
            kinds.contains(kind),
            "deploy/kustomization.yaml installs no {kind}"
        );
    }
    assert!(
        !kinds.contains("FileIntegrity"),
        "the operator install must not create FileIntegrity objects"
    );
}

/// The control plane's kubectl (`scripts/testenv.sh build` builds it with the rest).
fn kubectl() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/testenv.sh"))
        .arg("bin")
        .output()
        .expect("run scripts/testenv.sh bin");
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("kubectl");
    assert!(
        bin.is_file(),
        "{} not found: build the test control plane with `scripts/testenv.sh build` (needs Go)",
        bin.display()
    );
    bin
}

/// `kubectl kustomize` (offline) builds deploy/ and keeps RELATED_IMAGE_OPERATOR and the
/// operator's image Role equal to the container image.
#[test]
fn kubectl_kustomize_builds_deploy() {
    let out = Command::new(kubectl())
        .arg("kustomize")
        .arg(deploy_dir())
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let installed = all_objects()
        .into_iter()
        .filter(|(f, _)| !f.starts_with("deploy/samples/") && !f.starts_with("deploy/monitoring/"))
        .count();
    assert_eq!(built.len(), installed);
    let deployment = built.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let related = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == names::ENV_RELATED_IMAGE_OPERATOR);
    assert_eq!(related.unwrap()["value"], container["image"]);
    assert_eq!(image_role_names(&built), [container["image"].clone()]);
}

/// The images the installed operator may run DaemonSets with (its Role
/// `file-integrity-operator-image`, the parameter of deploy/rbac/operator_admission_policy.yaml).
fn image_role_names(built: &[Value]) -> Vec<Value> {
    let role = built
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == names::OPERATOR_IMAGE_ROLE)
        .expect("Role file-integrity-operator-image");
    let rules = role["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        rules[0]["resources"],
        serde_json::json!([names::DAEMON_IMAGES])
    );
    assert_eq!(rules[0]["verbs"], serde_json::json!(["use"]));
    rules[0]["resourceNames"]
        .as_array()
        .expect("resourceNames")
        .clone()
}

/// The install of the VM test and the real-node tests (`nix/vm-test`): deploy/ through its
/// relative `deploy` link, and the test image's tag in every image field (the base's replacement
/// runs before an overlay's `images`, so the overlay must copy the image again).
#[test]
fn vm_test_kustomization_installs_the_e2e_image_everywhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let link = root.join("nix/vm-test/deploy");
    assert_eq!(
        std::fs::read_link(&link).ok(),
        Some(PathBuf::from("../../deploy")),
        "{} must be a relative link to deploy/",
        link.display()
    );
    let out = Command::new(kubectl())
        .arg("kustomize")
        .arg(root.join("nix/vm-test"))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize nix/vm-test: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let deployment = built.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let want = "quay.io/file-integrity-operator/file-integrity-operator:e2e";
    assert_eq!(container["image"], want);
    let related = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == names::ENV_RELATED_IMAGE_OPERATOR);
    assert_eq!(related.unwrap()["value"], want);
    assert_eq!(image_role_names(&built), [Value::from(want)]);
}

/// The VM test's Python script passes pyflakes (Debian's pyflakes3), with the names that
/// nix/k3s-test.nix and the NixOS test driver define declared first.
#[test]
fn vm_test_script_passes_pyflakes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = read(&root.join("nix/vm-test/test_script.py"));
    let nix = read(&root.join("nix/k3s-test.nix"));
    let mut prelude = String::from("from typing import Any\nstart_all: Any = None\nsubtest: Any = None\nserver: Any = None\nagent: Any = None\n");
    for name in ["NS", "FI", "INSTALL", "SAMPLE"] {
        assert!(
            nix.contains(&format!("    {name} = \"${{")),
            "nix/k3s-test.nix does not define {name}"
        );
        prelude.push_str(&format!("{name} = \"\"\n"));
    }
    let dir = std::env::temp_dir().join(format!("fio-pyflakes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("test_script.py");
    std::fs::write(&file, format!("{prelude}{script}")).unwrap();
    let out = Command::new("pyflakes3")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("pyflakes3: {e} (install Debian's pyflakes3; .ci/run does)"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "pyflakes on nix/vm-test/test_script.py (line numbers + 9):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- (c) the sample -----------------------------------------------------------------------------

#[test]
fn sample_fileintegrity_gets_upstream_defaults() {
    let path = deploy_dir().join("samples/worker-fileintegrity.yaml");
    let fi: FileIntegrity =
        serde_saphyr::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", rel(&path)));
    assert_eq!(fi.metadata.name.as_deref(), Some("worker-fileintegrity"));
    assert_eq!(
        fi.metadata.namespace.as_deref(),
        Some(names::DEFAULT_NAMESPACE)
    );
    assert_eq!(
        fi.spec
            .node_selector
            .get("node-role.kubernetes.io/worker")
            .map(String::as_str),
        Some("")
    );
    assert_eq!(fi.spec.config.grace_period, names::DEFAULT_GRACE_PERIOD);
    assert_eq!(fi.spec.config.grace_period, 900);
    assert_eq!(fi.spec.config.max_backups, 5);
    assert_eq!(fi.spec.config.initial_delay, 0);
    assert_eq!(fi.spec.config.data_key(), "aide.conf");
    assert_eq!(fi.spec.tolerations, api::default_tolerations());
    assert!(!fi.spec.debug);
    assert!(fi.status.is_none());
}

// ---- RBAC and Deployment ------------------------------------------------------------------------

fn allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    let has = |list: &Option<Vec<String>>, want: &str| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|x| x == want || x == "*"))
    };
    rules.iter().any(|r| {
        has(&r.api_groups, group)
            && has(&r.resources, resource)
            && r.verbs.iter().any(|v| v == verb || v == "*")
    })
}

const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

#[test]
fn daemon_can_report_but_not_write_node_statuses() {
    let role: Role = find("Role", names::DAEMON_SERVICE_ACCOUNT);
    let rules = role.rules.unwrap();
    assert!(allows(&rules, "", "configmaps", "create"));
    for verb in ["get", "list", "watch"] {
        assert!(
            allows(&rules, names::GROUP, "fileintegrities", verb),
            "{verb} fileintegrities"
        );
    }
    // No node status at all: the operator judges results against the anchor.
    for verb in WRITE_VERBS.iter().chain(&["get", "list", "watch"]) {
        assert!(
            !allows(&rules, names::GROUP, "fileintegritynodestatuses", verb),
            "daemon may {verb} node statuses"
        );
    }
    for verb in WRITE_VERBS.iter().chain(&["get", "list", "watch"]) {
        assert!(
            !allows(&rules, names::GROUP, "fileintegrities/status", verb),
            "daemon may {verb} FI status"
        );
    }
    for verb in WRITE_VERBS {
        assert!(
            !allows(&rules, names::GROUP, "fileintegrities", verb),
            "daemon may {verb} fileintegrities"
        );
    }
    // No ConfigMap reads here: the operator grants `get` of the one configuration ConfigMap per
    // FileIntegrity (Role aide-<fi>, tests/operator/trust.rs checks it on the API server).
    for verb in ["get", "list", "watch", "update", "patch", "delete"] {
        assert!(
            !allows(&rules, "", "configmaps", verb),
            "daemon may {verb} configmaps"
        );
    }
    assert!(!allows(&rules, "", "secrets", "get"));

    // Nothing else is bound to the daemon's account.
    let mut bindings = 0;
    for (file, doc) in all_objects() {
        let (role_ref, subjects) = match doc["kind"].as_str() {
            Some("RoleBinding") => {
                let b: RoleBinding = typed(&file, &doc);
                (b.role_ref, b.subjects.unwrap_or_default())
            }
            Some("ClusterRoleBinding") => {
                let b: ClusterRoleBinding = typed(&file, &doc);
                (b.role_ref, b.subjects.unwrap_or_default())
            }
            _ => continue,
        };
        if subjects
            .iter()
            .any(|s| s.kind == "ServiceAccount" && s.name == names::DAEMON_SERVICE_ACCOUNT)
        {
            assert_eq!(
                (role_ref.kind.as_str(), role_ref.name.as_str()),
                ("Role", names::DAEMON_SERVICE_ACCOUNT),
                "{file}"
            );
            bindings += 1;
        }
    }
    assert_eq!(bindings, 1);
}

#[test]
fn operator_permissions() {
    let role: Role = find("Role", names::OPERATOR_SERVICE_ACCOUNT);
    let rules = role.rules.unwrap();
    for verb in ["get", "list", "watch", "create", "update", "delete"] {
        assert!(
            allows(&rules, names::GROUP, "fileintegritynodestatuses", verb),
            "{verb} node statuses"
        );
        assert!(allows(&rules, "", "configmaps", verb), "{verb} configmaps");
        assert!(
            allows(&rules, "apps", "daemonsets", verb),
            "{verb} daemonsets"
        );
    }
    assert!(allows(
        &rules,
        names::GROUP,
        "fileintegrities/status",
        "update"
    ));
    assert!(allows(&rules, names::GROUP, "fileintegrities", "patch"));
    assert!(
        !allows(&rules, names::GROUP, "fileintegrities", "create"),
        "users own FileIntegrity objects"
    );
    assert!(
        !allows(&rules, names::GROUP, "fileintegrities", "delete"),
        "users own FileIntegrity objects"
    );
    // The daemons' per-FileIntegrity Role; reviews of the metrics endpoint's tokens.
    for verb in ["get", "create", "patch"] {
        for res in ["roles", "rolebindings"] {
            assert!(
                allows(&rules, "rbac.authorization.k8s.io", res, verb),
                "{verb} {res}"
            );
        }
    }
    assert!(!allows(
        &rules,
        "rbac.authorization.k8s.io",
        "roles",
        "escalate"
    ));
    assert!(!allows(
        &rules,
        "rbac.authorization.k8s.io",
        "roles",
        "bind"
    ));
    let cluster: ClusterRole = find("ClusterRole", names::OPERATOR_SERVICE_ACCOUNT);
    let cluster = cluster.rules.unwrap();
    assert!(allows(
        &cluster,
        "authentication.k8s.io",
        "tokenreviews",
        "create"
    ));
    assert!(allows(
        &cluster,
        "authorization.k8s.io",
        "subjectaccessreviews",
        "create"
    ));
    // Leader election: its Lease only.
    assert!(allows(&rules, "coordination.k8s.io", "leases", "create"));
    // Secrets and leases only by name (create cannot be restricted by RBAC).
    for r in &rules {
        let res = r.resources.clone().unwrap_or_default();
        if res.iter().any(|x| x == "secrets" || x == "leases") {
            assert!(
                r.resource_names.is_some() || r.verbs == ["create"],
                "unrestricted {:?} on {res:?}",
                r.verbs
            );
        }
        assert!(!r.verbs.iter().any(|v| v == "*"), "wildcard verb in {r:?}");
        assert!(!res.iter().any(|x| x == "*"), "wildcard resource in {r:?}");
    }

    let cluster: ClusterRole = find("ClusterRole", names::OPERATOR_SERVICE_ACCOUNT);
    let cluster_rules = cluster.rules.unwrap();
    for verb in ["get", "list", "watch"] {
        assert!(allows(&cluster_rules, "", "nodes", verb), "{verb} nodes");
    }
    assert!(allows(
        &cluster_rules,
        "scheduling.k8s.io",
        "priorityclasses",
        "get"
    ));
    // Cluster-wide it reads, creates reviews (which change nothing), and watches and restores
    // the daemons' admission policy (an OLM bundle cannot carry it).
    let reviews = ["tokenreviews", "subjectaccessreviews"];
    let policies = [
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
    ];
    for r in &cluster_rules {
        let only = |names: &[&str]| {
            r.resources
                .iter()
                .flatten()
                .all(|x| names.contains(&x.as_str()))
        };
        let named = |n: &[&str]| {
            r.resource_names
                .as_ref()
                .is_some_and(|rn| !rn.is_empty() && rn.iter().all(|x| n.contains(&x.as_str())))
        };
        let allowed: &[&str] = if only(&reviews) {
            &["create"]
        } else if only(&policies)
            && named(&[
                names::DAEMON_ADMISSION_POLICY,
                names::ACCEPT_ADMISSION_POLICY,
            ])
        {
            // Puts the daemons' and the acceptance policy back; never its own bound.
            &["get", "list", "watch", "patch"]
        } else if only(&policies)
            && named(&[
                names::DAEMON_ADMISSION_POLICY,
                names::OPERATOR_ADMISSION_POLICY,
                names::ACCEPT_ADMISSION_POLICY,
            ])
        {
            &["get", "list", "watch"]
        } else if only(&policies) {
            // RBAC cannot name what a create makes; an admission policy only refuses.
            &["create"]
        } else {
            &["get", "list", "watch"]
        };
        assert!(
            r.verbs.iter().all(|v| allowed.contains(&v.as_str())),
            "cluster-wide write: {r:?}"
        );
    }
    for verb in ["patch", "update", "delete"] {
        for resource in policies {
            let may = cluster_rules.iter().any(|r| {
                r.verbs.iter().any(|v| v == verb)
                    && r.resources.iter().flatten().any(|x| x == resource)
                    && r.resource_names.as_ref().is_none_or(|rn| {
                        rn.is_empty() || rn.iter().any(|x| x == names::OPERATOR_ADMISSION_POLICY)
                    })
            });
            assert!(!may, "the operator may {verb} its own bound ({resource})");
        }
    }

    // User-facing roles: the editor cannot write node statuses, the viewer writes nothing.
    let editor: ClusterRole = find("ClusterRole", "fileintegrity-editor-role");
    let editor = editor.rules.unwrap();
    assert!(allows(&editor, names::GROUP, "fileintegrities", "create"));
    assert!(
        allows(&editor, names::GROUP, "fileintegrities", "patch"),
        "re-init annotation"
    );
    let viewer: ClusterRole = find("ClusterRole", "fileintegrity-viewer-role");
    let viewer = viewer.rules.unwrap();
    for verb in WRITE_VERBS {
        assert!(
            !allows(&editor, names::GROUP, "fileintegritynodestatuses", verb),
            "editor may {verb} node statuses"
        );
        assert!(
            !allows(&viewer, names::GROUP, "fileintegrities", verb),
            "viewer may {verb}"
        );
    }
    assert!(allows(
        &viewer,
        names::GROUP,
        "fileintegritynodestatuses",
        "list"
    ));
}

#[test]
fn bindings_refer_to_existing_roles_and_accounts() {
    let objects = all_objects();
    let exists = |kind: &str, name: &str| {
        objects
            .iter()
            .any(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
    };
    for (file, doc) in &objects {
        let (role_ref, subjects) = match doc["kind"].as_str() {
            Some("RoleBinding") => {
                let b: RoleBinding = typed(file, doc);
                (b.role_ref, b.subjects.unwrap_or_default())
            }
            Some("ClusterRoleBinding") => {
                let b: ClusterRoleBinding = typed(file, doc);
                (b.role_ref, b.subjects.unwrap_or_default())
            }
            _ => continue,
        };
        assert!(
            exists(&role_ref.kind, &role_ref.name),
            "{file}: {} {} not defined",
            role_ref.kind,
            role_ref.name
        );
        assert!(!subjects.is_empty(), "{file}: no subjects");
        for s in subjects {
            assert_eq!(s.kind, "ServiceAccount", "{file}");
            // OpenShift's cluster Prometheus, which scrapes the metrics (deploy/monitoring).
            if s.namespace.as_deref() == Some("openshift-monitoring") && s.name == "prometheus-k8s"
            {
                continue;
            }
            assert!(
                exists("ServiceAccount", &s.name),
                "{file}: ServiceAccount {} not defined",
                s.name
            );
            assert_eq!(
                s.namespace.as_deref(),
                Some(names::DEFAULT_NAMESPACE),
                "{file}"
            );
        }
    }
}

#[test]
fn operator_deployment() {
    let d: Deployment = find("Deployment", names::OPERATOR_DEPLOYMENT);
    let pod = d.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(names::OPERATOR_SERVICE_ACCOUNT)
    );
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some(names::DEFAULT_OPERATOR_IMAGE));
    assert_eq!(c.command.as_deref(), Some(&["fio-operator".to_owned()][..]));
    assert_eq!(c.args.as_deref(), Some(&["run".to_owned()][..]));
    let env: Vec<_> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert_eq!(
        env,
        [
            names::ENV_WATCH_NAMESPACE,
            names::ENV_POD_NAME,
            names::ENV_OPERATOR_NAME,
            names::ENV_RELATED_IMAGE_OPERATOR
        ]
    );
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.privileged, None);
    assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
    let resources = c.resources.clone().unwrap();
    assert!(resources.requests.is_some() && resources.limits.unwrap().contains_key("memory"));
    control_plane_only(&pod, "deploy/operator.yaml");
    // The CSV's copy too (OLM installs that one).
    let csv = docs(
        &deploy_dir().join("bundle/manifests/file-integrity-operator.clusterserviceversion.yaml"),
    )
    .remove(0);
    let csv_pod: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(
        csv["spec"]["install"]["spec"]["deployments"][0]["spec"]["template"]["spec"].clone(),
    )
    .expect("the CSV's operator pod spec");
    control_plane_only(&csv_pod, "the CSV");

    let ns: Namespace = find("Namespace", names::DEFAULT_NAMESPACE);
    let labels = ns.metadata.labels.unwrap();
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            labels[&format!("pod-security.kubernetes.io/{mode}")],
            "privileged"
        );
    }
    assert_eq!(labels["openshift.io/cluster-monitoring"], "true");
}

/// Issue 22: the operator's pod may be scheduled only on a control-plane node (Kubernetes'
/// label or OpenShift's `master`), whose NoSchedule taints it tolerates: every term of its
/// required node affinity names one of those labels, and nothing else places it.
fn control_plane_only(pod: &k8s_openapi::api::core::v1::PodSpec, what: &str) {
    const ROLES: [&str; 2] = [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    ];
    let terms = pod
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.clone())
        .unwrap_or_default();
    assert!(!terms.is_empty(), "{what}: no required node affinity");
    for t in &terms {
        let exprs = t.match_expressions.as_deref().unwrap_or_default();
        assert!(
            exprs
                .iter()
                .any(|e| ROLES.contains(&e.key.as_str()) && e.operator == "Exists"),
            "{what}: a node affinity term that does not require a control-plane label: {t:?}"
        );
    }
    for role in ROLES {
        assert!(
            pod.tolerations.iter().flatten().any(
                |t| t.key.as_deref() == Some(role) && t.effect.as_deref() == Some("NoSchedule")
            ),
            "{what}: {role} NoSchedule not tolerated"
        );
    }
}

/// The alert the operator installs is upstream's, and it watches a metric the operator exports;
/// the ServiceMonitor scrapes the port and path the operator serves.
#[test]
fn monitoring_alert_and_scrape_match_the_metrics() {
    let objects =
        fio_operator::controller::manifests::objects("fio-test").expect("monitoring objects");
    let kind = |k: &str| {
        objects
            .iter()
            .find(|o| o.types.as_ref().is_some_and(|t| t.kind == k))
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let rule = kind("PrometheusRule");
    assert_eq!(rule.metadata.namespace.as_deref(), Some("fio-test"));
    let r = &rule.data["spec"]["groups"][0]["rules"][0];
    assert_eq!(r["alert"], "NodeHasIntegrityFailure");
    let expr = r["expr"].as_str().unwrap();
    assert_eq!(
        expr,
        "file_integrity_operator_node_failed{node=~\".+\"} * on(node) kube_node_info > 0"
    );
    assert_eq!(r["labels"]["namespace"], "fio-test");
    let metrics = fio_operator::metrics::Metrics::new();
    metrics.set_failed("fi", "node-1", true);
    let exported = metrics.encode();
    assert!(
        exported.contains("# TYPE file_integrity_operator_node_failed gauge"),
        "{exported}"
    );

    // Ours: silence is an alert too, on the gauge the operator exports.
    let silent = &rule.data["spec"]["groups"][1]["rules"][0];
    assert_eq!(silent["alert"], "NodeIntegrityScansSilent");
    assert_eq!(silent["expr"], "file_integrity_operator_node_silent > 0");
    assert_eq!(silent["labels"]["namespace"], "fio-test");
    metrics.set_liveness("fi", "node-1", 1.0, true);
    let exported = metrics.encode();
    assert!(
        exported.contains(
            "file_integrity_operator_node_silent{fileintegrity=\"fi\",node=\"node-1\"} 1"
        ),
        "{exported}"
    );

    // Ours: realtime detection partial or off for longer than a scan interval (issue 27).
    let groups = rule.data["spec"]["groups"].as_array().expect("groups");
    let realtime = groups
        .iter()
        .find(|g| g["name"] == "node-realtime")
        .map(|g| &g["rules"][0])
        .expect("the node-realtime group");
    assert_eq!(realtime["alert"], "NodeRealtimeCoverageLost");
    assert_eq!(
        realtime["expr"],
        "file_integrity_operator_node_realtime_covered == 0"
    );
    metrics.set_realtime_covered("fi", "node-1", Some(false));
    assert!(
        metrics.encode().contains(
            "file_integrity_operator_node_realtime_covered{fileintegrity=\"fi\",node=\"node-1\"} 0"
        ),
        "{}",
        metrics.encode()
    );

    // Upstream's two scrape targets: plain /metrics on 8383, HTTPS /metrics-fio on 8585.
    let monitor = kind("ServiceMonitor");
    let eps = &monitor.data["spec"]["endpoints"];
    assert_eq!(eps.as_array().map(Vec::len), Some(2), "{eps}");
    let service: Service = find("Service", "metrics");
    let ports = service.spec.unwrap().ports.unwrap();
    let port_of = |name: &str| {
        ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("Service metrics has no port {name}"))
            .port
    };
    let plain = &eps[0];
    assert_eq!(plain["path"], "/metrics");
    assert_eq!(plain["scheme"], "http");
    assert_eq!(port_of(plain["port"].as_str().expect("port name")), 8383);
    let ep = &eps[1];
    assert_eq!(ep["path"], "/metrics-fio");
    assert_eq!(ep["scheme"], "https");
    assert_eq!(ep["tlsConfig"]["serverName"], "metrics.fio-test.svc");
    assert_eq!(port_of(ep["port"].as_str().expect("port name")), 8585);
}
