//! OLM installs, upgrades and uninstalls the operator for real, as upstream's users do it: OLM's
//! olm-operator and catalog-operator (`scripts/testenv.sh olm`), a file-based catalog of two
//! bundles generated from this tree (N = the workspace version, N+1 replacing it) served by
//! `opm serve`, the bundles unpacked by OLM's Jobs on the real kubelet nodes from images imported
//! there (no registry), the operator as a real pod and its daemons on both real nodes, every
//! image named by digest as a disconnected cluster mirrors them; the install monitored as the
//! ServiceMonitor says (tests/olm/monitoring.rs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::cluster::real::{
    clear_real_nodes, kubectl, kubectl_try, real_nodes, wait_gone, wait_node_condition, wait_until,
    RealNodes, AIDE_CONF, IMAGE_TAG,
};
use crate::cluster::{block_on_side, env, install_fixture_crds, secs};
use crate::monitoring::{scrape_as_the_service_monitor, serving_cert};
use crate::tools::{bundle_py, olm_bin, repo, run_tool};
use fio_api::names;

const NS: &str = "fio-olm";
const CATALOG_NS: &str = "olm";
const CATALOG: &str = "fio-e2e";
const PACKAGE: &str = "file-integrity-operator";
const FI: &str = "olm-fileintegrity";
const DS: &str = "aide-olm-fileintegrity";
const PRODUCT: &str = "quay.io/file-integrity-operator/file-integrity-operator";
const BUNDLE: &str = "localhost/fio-e2e/file-integrity-operator-bundle";
/// The operator image of bundle N+1: the product image with N+1's version label (so another
/// digest), so that the upgrade changes the operator's and the daemons' image as a real one does.
const NEXT_TAG: &str = "e2e-next";
const N1: &str = "real-1";
const N2: &str = "real-2";

fn kn(args: &[&str]) -> String {
    let mut all = vec!["-n", NS];
    all.extend_from_slice(args);
    kubectl(&all)
}

fn get(args: &[&str], jsonpath: &str) -> Result<String, String> {
    let mut all = args.to_vec();
    let jp = format!("jsonpath={jsonpath}");
    all.extend_from_slice(&["-o", &jp]);
    kubectl_try(&all)
}

fn apply_json(value: serde_json::Value, dir: &Path, name: &str) {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, value.to_string()).expect("write a manifest");
    kubectl(&["apply", "-f", file.to_str().expect("utf-8")]);
}

/// `opm serve` of the catalog, stopped when dropped.
struct CatalogServer(Child);

impl Drop for CatalogServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `ctr ARGS` against every real node's containerd (the kubelet's namespace).
fn ctr(real: &RealNodes, args: &[&str]) {
    for node in real.all() {
        let sock = real.root(node).join("run/containerd/containerd.sock");
        let mut all = vec!["--address", sock.to_str().expect("utf-8"), "-n", "k8s.io"];
        all.extend_from_slice(args);
        run_tool(Path::new("ctr"), &all);
    }
}

fn import(real: &RealNodes, archive: &Path) {
    let archive = archive.to_str().expect("utf-8");
    ctr(real, &["images", "import", "--no-unpack", archive]);
}

/// Another name for an imported image (`ctr import --digests` would name it import-DATE@DIGEST;
/// OLM pulls bundles by NAME@DIGEST).
fn tag(real: &RealNodes, from: &str, to: &str) {
    ctr(real, &["images", "tag", "--force", from, to]);
}

fn next_patch(version: &str) -> String {
    let mut parts: Vec<u64> = version
        .split('.')
        .map(|p| p.parse().expect("a numeric workspace version"))
        .collect();
    *parts.last_mut().expect("a version") += 1;
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The digest `scripts/image.py` wrote beside an image archive (`<stem>.oci.tar`).
fn digest_of(archive: &Path) -> String {
    let file = archive.with_file_name(
        archive
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".oci.tar"))
            .map(|stem| format!("{stem}.digest"))
            .expect("an .oci.tar archive"),
    );
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .to_owned()
}

/// The image `name:tag` on the nodes also as `name@digest` (what a pull by digest finds), and
/// that reference.
fn by_digest(real: &RealNodes, name: &str, tag_name: &str, digest: &str) -> String {
    let pinned = format!("{name}@{digest}");
    tag(real, &format!("{name}:{tag_name}"), &pinned);
    pinned
}

/// The bundle names the operator's image by digest only: no reference to it by tag anywhere.
fn assert_pinned(bundle_dir: &Path, image: &str) {
    let mut seen = 0;
    for entry in std::fs::read_dir(bundle_dir.join("manifests")).expect("manifests/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("a manifest");
        for (at, _) in text.match_indices(PRODUCT) {
            let rest = &text[at + PRODUCT.len()..];
            if rest.starts_with('-') {
                continue; // another image's name (the bundle's), not this one
            }
            assert!(
                rest.starts_with(&image[PRODUCT.len()..]),
                "{} names {PRODUCT} otherwise than by digest: {}",
                path.display(),
                &text[at..(at + 120).min(text.len())]
            );
            seen += 1;
        }
    }
    // containerImage, the Deployment, RELATED_IMAGE_OPERATOR, the image Role, relatedImages
    assert!(
        seen >= 5,
        "the bundle names the operator's image {seen} times"
    );
}

/// One bundle directory and its image (imported on the nodes): the catalog's reference to it.
fn bundle(real: &RealNodes, dir: &Path, version: &str, replaces: &str, image: &str) -> String {
    let bundle_dir = dir.join(format!("bundle-{version}"));
    let images = dir.join(format!("images-{version}"));
    let b = bundle_dir.to_str().expect("utf-8");
    bundle_py(&[
        "bundle",
        "--out",
        b,
        "--version",
        version,
        "--replaces",
        replaces,
        "--image",
        image,
    ]);
    assert_pinned(&bundle_dir, image);
    bundle_py(&[
        "image",
        "--bundle",
        b,
        "--name",
        BUNDLE,
        "--tag",
        &format!("v{version}"),
        "--out",
        images.to_str().expect("utf-8"),
    ]);
    let stem = BUNDLE.rsplit('/').next().expect("a name");
    import(real, &images.join(format!("{stem}.oci.tar")));
    let digest = std::fs::read_to_string(images.join(format!("{stem}.digest"))).expect("digest");
    let by_digest = format!("{BUNDLE}@{}", digest.trim());
    tag(real, &format!("{BUNDLE}:v{version}"), &by_digest);
    format!("{b}={by_digest}")
}

fn install_plan_for(csv: &str) -> String {
    wait_until(
        &format!("an InstallPlan for {csv} waiting for approval"),
        secs(180),
        || {
            let out = get(
                &["-n", NS, "get", "installplans"],
                "{range .items[*]}{.metadata.name} {.status.phase} {.spec.clusterServiceVersionNames}{\"\\n\"}{end}",
            )?;
            out.lines()
                .find(|l| l.contains(csv) && l.contains("RequiresApproval"))
                .and_then(|l| l.split(' ').next())
                .map(str::to_owned)
                .ok_or(format!("install plans:\n{out}"))
        },
    )
}

fn approve(plan: &str) {
    kn(&[
        "patch",
        "installplan",
        plan,
        "--type=merge",
        "-p",
        r#"{"spec":{"approved":true}}"#,
    ]);
}

fn wait_csv_succeeded(csv: &str) {
    wait_until(&format!("CSV {csv} Succeeded"), secs(300), || {
        let phase = get(&["-n", NS, "get", "csv", csv], "{.status.phase}")?;
        (phase == "Succeeded")
            .then_some(())
            .ok_or(format!("phase {phase:?}"))
    });
}

fn wait_condition(node: &str, want: &str) {
    wait_node_condition(NS, FI, node, want, secs(240));
}

fn backups(real: &RealNodes, node: &str) -> usize {
    std::fs::read_dir(real.root(node).join("etc/kubernetes"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("aide.db.gz.backup-")
                })
                .count()
        })
        .unwrap_or(0)
}

fn uid(args: &[&str]) -> String {
    get(args, "{.metadata.uid}").unwrap_or_else(|e| panic!("{e}"))
}

/// The uids of both nodes' status objects (the same objects across an upgrade, or not).
fn node_status_uids() -> Vec<String> {
    [N1, N2]
        .iter()
        .map(|n| {
            let name = format!("{FI}-{n}");
            uid(&["-n", NS, "get", "fileintegritynodestatuses", &name])
        })
        .collect()
}

/// The operator pod's node and image.
fn operator_pod() -> (String, String) {
    let out = kn(&[
        "get",
        "pods",
        "-lname=file-integrity-operator",
        "--field-selector=status.phase=Running",
        "-o",
        "jsonpath={range .items[*]}{.spec.nodeName} {.spec.containers[0].image}{\"\\n\"}{end}",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one running operator pod:\n{out}");
    let (node, image) = lines[0].split_once(' ').expect("node and image");
    (node.to_owned(), image.to_owned())
}

/// Images of the daemon pods, one line each.
fn daemon_images() -> Result<Vec<String>, String> {
    let out = get(
        &["-n", NS, "get", "pods", &format!("-lapp={DS}")],
        "{range .items[*]}{.spec.containers[0].image} {.status.phase}{\"\\n\"}{end}",
    )?;
    Ok(out.lines().map(str::to_owned).collect())
}

fn clean_olm_objects() {
    let _ = kubectl_try(&[
        "-n",
        CATALOG_NS,
        "delete",
        "catalogsource",
        CATALOG,
        "--ignore-not-found",
    ]);
}

#[test]
fn olm_installs_upgrades_and_uninstalls_the_operator() {
    let real = real_nodes();
    clear_real_nodes(real);
    clean_olm_objects();
    delete_admission_objects();
    let env = env();
    run_tool(
        &repo().join("scripts/testenv.sh"),
        &["olm", env.dir.to_str().expect("utf-8")],
    );
    // The Prometheus operator's API: the operator applies its ServiceMonitor only where it exists.
    block_on_side(install_fixture_crds("monitoring-crds.yaml"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    // -- images on the nodes: OLM's unpack tools, the bundles, the operator under N+1's tag ---
    let olm_images = dir.join("olm-images");
    run_tool(
        Path::new("python3"),
        &[
            repo().join("scripts/image.py").to_str().expect("utf-8"),
            "olm",
            "--bin",
            olm_bin().to_str().expect("utf-8"),
            "--out",
            olm_images.to_str().expect("utf-8"),
        ],
    );
    for image in ["olm-util", "opm"] {
        import(real, &olm_images.join(format!("{image}.oci.tar")));
    }
    let version = env!("CARGO_PKG_VERSION");
    let next = next_patch(version);
    let next_images = dir.join("next-image");
    run_tool(
        Path::new("python3"),
        &[
            repo().join("scripts/image.py").to_str().expect("utf-8"),
            "product",
            "--version",
            &next,
            "--tag",
            NEXT_TAG,
            "--out",
            next_images.to_str().expect("utf-8"),
        ],
    );
    let next_archive = next_images.join("file-integrity-operator.oci.tar");
    import(real, &next_archive);
    let image_n = by_digest(real, PRODUCT, IMAGE_TAG, &digest_of(&real.image));
    let image_next = by_digest(real, PRODUCT, NEXT_TAG, &digest_of(&next_archive));
    assert_ne!(image_n, image_next, "N+1's image must differ from N's");
    let csv_n = format!("{PACKAGE}.v{version}");
    let csv_next = format!("{PACKAGE}.v{next}");
    let entry_n = bundle(real, dir, version, "1.4.0", &image_n);
    let entry_next = bundle(real, dir, &next, version, &image_next);
    let catalog = dir.join("catalog");
    let opm = olm_bin().join("opm");
    bundle_py(&[
        "catalog",
        "--out",
        catalog.to_str().expect("utf-8"),
        "--entry",
        &entry_n,
        "--entry",
        &entry_next,
        "--opm",
        opm.to_str().expect("utf-8"),
    ]);
    run_tool(&opm, &["validate", catalog.to_str().expect("utf-8")]);

    // -- the catalog served by opm, the subscription as an administrator writes it -----------
    let port = free_port();
    let log = std::fs::File::create(dir.join("opm.log")).expect("opm log");
    let mut server = CatalogServer(
        Command::new(&opm)
            .args(["serve", catalog.to_str().expect("utf-8"), "-p"])
            .arg(port.to_string())
            // no profiling endpoint (a fixed port), no /dev/termination-log (not a container)
            .args(["--pprof-addr=", "--termination-log"])
            .arg(dir.join("opm.termination"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start opm serve"),
    );
    apply_json(
        serde_json::json!({
            "apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
                {"apiVersion": "operators.coreos.com/v1alpha1", "kind": "CatalogSource",
                 "metadata": {"name": CATALOG, "namespace": CATALOG_NS},
                 "spec": {"sourceType": "grpc", "address": format!("127.0.0.1:{port}"),
                          "displayName": "File Integrity Operator (e2e)"}},
                {"apiVersion": "operators.coreos.com/v1", "kind": "OperatorGroup",
                 "metadata": {"name": NS, "namespace": NS},
                 "spec": {"targetNamespaces": [NS]}},
                {"apiVersion": "operators.coreos.com/v1alpha1", "kind": "Subscription",
                 "metadata": {"name": PACKAGE, "namespace": NS},
                 "spec": {"channel": "stable", "name": PACKAGE, "source": CATALOG,
                          "sourceNamespace": CATALOG_NS, "installPlanApproval": "Manual",
                          "startingCSV": csv_n}},
            ]
        }),
        dir,
        "subscription",
    );
    let service_ca = serving_cert(NS, dir);
    wait_until("the catalog READY", secs(120), || {
        if let Ok(Some(status)) = server.0.try_wait() {
            let log = std::fs::read_to_string(dir.join("opm.log")).unwrap_or_default();
            panic!("opm serve exited ({status}):\n{log}");
        }
        let s = get(
            &["-n", CATALOG_NS, "get", "catalogsource", CATALOG],
            "{.status.connectionState.lastObservedState}",
        )?;
        (s == "READY").then_some(()).ok_or(format!("state {s:?}"))
    });

    // -- install N: InstallPlan, bundle unpacked on a real node, CSV Succeeded ---------------
    approve(&install_plan_for(&csv_n));
    wait_csv_succeeded(&csv_n);
    let unpacked = kubectl(&[
        "-n",
        CATALOG_NS,
        "get",
        "pods",
        "-loperatorframework.io/bundle-unpack-ref",
        "-o",
        "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase}{\"\\n\"}{end}",
    ]);
    assert!(
        unpacked
            .lines()
            .any(|l| l.starts_with("real-") && l.ends_with("Succeeded")),
        "no bundle-unpack pod succeeded on a real node:\n{unpacked}"
    );
    kn(&[
        "rollout",
        "status",
        "deploy/file-integrity-operator",
        "--timeout=180s",
    ]);
    let (node, image) = operator_pod();
    assert_eq!(
        node, real.control_plane,
        "the CSV's operator must run on the control-plane node only"
    );
    assert_eq!(
        image, image_n,
        "the operator's pod runs the bundle's image by digest"
    );
    let targets = kn(&[
        "get",
        "deploy",
        "file-integrity-operator",
        "-o",
        "jsonpath={.spec.template.metadata.annotations.olm\\.targetNamespaces}",
    ]);
    assert_eq!(
        targets, NS,
        "WATCH_NAMESPACE comes from olm.targetNamespaces"
    );
    // What a bundle cannot carry, the operator creates: the daemons' trust boundary and the
    // bound on its own DaemonSets (deleted before the install, so these are this operator's).
    // The scan DaemonSets below are admitted by the latter only because the CSV's Role names
    // the bundle's image (and, after the upgrade, the next one's).
    for name in [
        names::DAEMON_ADMISSION_POLICY,
        names::OPERATOR_ADMISSION_POLICY,
    ] {
        wait_until(
            &format!("admission policy binding {name}"),
            secs(60),
            || {
                get(
                    &["get", "validatingadmissionpolicybinding", name],
                    "{.spec.policyName}",
                )
                .and_then(|v| (v == name).then_some(()).ok_or(format!("policyName {v:?}")))
            },
        );
    }

    // -- monitored: both endpoints scraped with exactly the ServiceMonitor's credentials -----
    let scraped = scrape_as_the_service_monitor(NS, &service_ca);
    eprintln!("scraped as the ServiceMonitor says: {scraped:?}");

    // -- a FileIntegrity from the CSV's example: Active, both nodes scanned ------------------
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "olm-aide-conf", "namespace": NS},
        "data": {"aide.conf": AIDE_CONF}
    });
    let csv_yaml = std::fs::read_to_string(
        PathBuf::from(entry_n.split('=').next().expect("dir"))
            .join("manifests/file-integrity-operator.clusterserviceversion.yaml"),
    )
    .expect("bundle N's CSV");
    let csv_doc: serde_json::Value = serde_saphyr::from_str(&csv_yaml).expect("CSV parses");
    let examples: serde_json::Value = serde_json::from_str(
        csv_doc["metadata"]["annotations"]["alm-examples"]
            .as_str()
            .expect("alm-examples"),
    )
    .expect("alm-examples is JSON");
    let mut fi = examples[0].clone();
    assert_eq!(fi["kind"], "FileIntegrity");
    fi["metadata"] = serde_json::json!({"name": FI, "namespace": NS});
    fi["spec"]["config"] = serde_json::json!({
        "name": "olm-aide-conf", "namespace": NS, "key": "aide.conf", "gracePeriod": 10
    });
    apply_json(
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [cm, fi]}),
        dir,
        "fileintegrity",
    );
    wait_until("phase Active", secs(240), || {
        let p = get(&["-n", NS, "get", "fileintegrity", FI], "{.status.phase}")?;
        (p == "Active").then_some(()).ok_or(format!("phase {p:?}"))
    });
    wait_condition(N1, "Succeeded");
    wait_condition(N2, "Succeeded");
    std::fs::write(real.root(N1).join("etc/fio-olm-changed.conf"), "changed\n")
        .expect("change a file on real-1");
    wait_condition(N1, "Failed");
    let report = kn(&[
        "get",
        "fileintegritynodestatuses",
        &format!("{FI}-{N1}"),
        "-o",
        "jsonpath={.lastResult.resultConfigMapName}",
    ]);

    // -- upgrade to N+1: nothing re-initialised, statuses and reports kept, one rollout ------
    let status_uids = node_status_uids();
    let report_uid = uid(&["-n", NS, "get", "cm", &report]);
    let backups_before = [backups(real, N1), backups(real, N2)];
    let generation =
        get(&["-n", NS, "get", "ds", DS], "{.metadata.generation}").expect("the DaemonSet");
    approve(&install_plan_for(&csv_next));
    wait_csv_succeeded(&csv_next);
    wait_gone(&csv_n, secs(120), &["-n", NS, "get", "csv", &csv_n]);
    kn(&[
        "rollout",
        "status",
        "deploy/file-integrity-operator",
        "--timeout=180s",
    ]);
    wait_until("the operator pod of N+1", secs(120), || {
        let (_, image) = operator_pod();
        (image == image_next).then_some(()).ok_or(image)
    });
    wait_until("the daemons on N+1's image", secs(240), || {
        let images = daemon_images()?;
        let want = format!("{image_next} Running");
        (images.len() == 2 && images.iter().all(|i| *i == want))
            .then_some(())
            .ok_or(format!("{images:?}"))
    });
    // Scans go on after the upgrade: real-1 still fails on its change, real-2 still succeeds,
    // each with a result newer than the upgrade.
    let upgraded = run_tool(Path::new("date"), &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    let upgraded = upgraded.trim();
    for (node, want) in [(N1, "Failed"), (N2, "Succeeded")] {
        wait_until(
            &format!("{node} {want} after the upgrade"),
            secs(120),
            || {
                let out = get(
                    &[
                        "-n",
                        NS,
                        "get",
                        "fileintegritynodestatuses",
                        &format!("{FI}-{node}"),
                    ],
                    "{.lastResult.lastProbeTime} {.lastResult.condition}",
                )?;
                let (time, condition) = out.split_once(' ').unwrap_or((&out, ""));
                (time > upgraded && condition == want)
                    .then_some(())
                    .ok_or(format!("{out} (upgraded at {upgraded})"))
            },
        );
    }
    // Still monitored after the upgrade (OLM rewrote the bundle's token Secret).
    scrape_as_the_service_monitor(NS, &service_ca);
    let generation_after =
        get(&["-n", NS, "get", "ds", DS], "{.metadata.generation}").expect("the DaemonSet");
    let gen = |g: &str| g.parse::<u64>().expect("a generation");
    assert_eq!(
        gen(&generation_after),
        gen(&generation) + 1,
        "the DaemonSet must roll exactly once on the upgrade"
    );
    assert_eq!(
        [backups(real, N1), backups(real, N2)],
        backups_before,
        "the upgrade re-initialised a node"
    );
    let status_uids_after = node_status_uids();
    assert_eq!(
        status_uids_after, status_uids,
        "node statuses were replaced"
    );
    assert_eq!(
        uid(&["-n", NS, "get", "cm", &report]),
        report_uid,
        "the kept failure report was replaced"
    );

    // -- uninstall (Subscription and CSV): what stays is the user's data ---------------------
    kn(&["delete", "subscription", PACKAGE]);
    kn(&["delete", "csv", &csv_next]);
    wait_gone(
        "the operator Deployment",
        secs(120),
        &["-n", NS, "get", "deploy", "file-integrity-operator"],
    );
    for crd in [
        "fileintegrities.fileintegrity.openshift.io",
        "fileintegritynodestatuses.fileintegrity.openshift.io",
    ] {
        kubectl(&["get", "crd", crd]);
    }
    kn(&["get", "fileintegrity", FI]);
    for n in [N1, N2] {
        kn(&["get", "fileintegritynodestatuses", &format!("{FI}-{n}")]);
    }
    kn(&["get", "cm", &report]);

    // -- clean up for the other real-node tests ----------------------------------------------
    std::fs::remove_file(real.root(N1).join("etc/fio-olm-changed.conf"))
        .expect("remove the changed file");
    clear_real_nodes(real);
    clean_olm_objects();
    // The admission policy this operator created: the next tests install deploy/ with kubectl,
    // which would otherwise share (and conflict on) the operator's atomic fields.
    delete_admission_objects();
}

/// The product's cluster-wide admission policies and bindings (of an earlier test or install),
/// so that the operator installed here creates its own.
fn delete_admission_objects() {
    for name in [
        names::DAEMON_ADMISSION_POLICY,
        names::OPERATOR_ADMISSION_POLICY,
    ] {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            kubectl(&["delete", kind, name, "--ignore-not-found"]);
        }
    }
}
