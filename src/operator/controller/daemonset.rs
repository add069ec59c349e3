//! The scan DaemonSet `aide-<fi>`: one daemon pod per selected node, the node's root filesystem
//! at `/hostroot`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, Container, EnvVar, EnvVarSource, ExecAction,
    HostPathVolumeSource, ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SELinuxOptions, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Resource, ResourceExt};

use fio_api::aideconf::HOSTROOT;
use fio_api::daemon_args::{DaemonArgs, DEFAULT_INTERVAL};
use fio_api::{names, FileIntegrity};

/// Annotation on the DaemonSet: SHA-256 of the spec we rendered, so that an unchanged
/// FileIntegrity causes no write.
pub const SPEC_HASH_ANNOTATION: &str = "file-integrity.openshift.io/spec-hash";

/// The capabilities the daemon starts with (everything else is dropped by the runtime), and
/// why. `crate::harden` uses the first and third to confine itself and keeps only the second;
/// `tests/harden.rs` hardens with exactly this set.
pub const DAEMON_CAPABILITIES: [&str; 3] = [
    // Its own mount namespace, the read-only bind of the host root, the writable database bind.
    "SYS_ADMIN",
    // Reading files and directories it does not own: kept for the scan.
    "DAC_READ_SEARCH",
    // Dropping capabilities from the bounding set.
    "SETPCAP",
];

/// Not `privileged`: the capabilities above, nothing else, and a read-only root filesystem.
/// `allowPrivilegeEscalation` stays unset because the API refuses `false` next to SYS_ADMIN; the
/// daemon sets no_new_privs itself. Seccomp is the runtime's default profile (it allows mount
/// and unshare to holders of SYS_ADMIN); AppArmor is unconfined because the runtime's default
/// AppArmor profile denies every mount, and the daemon's own Landlock ruleset and seccomp filter
/// are narrower than it once hardened. On SELinux nodes the container type is `spc_t`, the type
/// a privileged container gets, without which container_t could not read the host's files.
fn security_context() -> SecurityContext {
    SecurityContext {
        privileged: Some(false),
        run_as_user: Some(0),
        run_as_non_root: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            add: Some(DAEMON_CAPABILITIES.map(String::from).to_vec()),
            drop: Some(vec!["ALL".into()]),
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        app_armor_profile: Some(AppArmorProfile {
            type_: "Unconfined".into(),
            ..AppArmorProfile::default()
        }),
        se_linux_options: Some(SELinuxOptions {
            type_: Some("spc_t".into()),
            ..SELinuxOptions::default()
        }),
        ..SecurityContext::default()
    }
}

/// The daemon's arguments ([`DaemonArgs`]: the spelling is upstream's).
pub fn daemon_args(fi: &FileIntegrity, namespace: &str) -> DaemonArgs {
    let c = &fi.spec.config;
    DaemonArgs {
        // Both clamped: the interval to at least 10 s, backups to at least 0.
        interval: u64::try_from(c.scan_interval()).unwrap_or(DEFAULT_INTERVAL),
        max_backups: u64::try_from(c.max_backups).unwrap_or(0),
        debug: fi.spec.debug,
        no_realtime: !fi.spec.realtime_enabled(),
        no_attribution: !fi.spec.attribution(),
        ..DaemonArgs::new(&fi.name_any(), namespace)
    }
}

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpu.to_owned())),
        ("memory".to_owned(), Quantity(memory.to_owned())),
    ])
}

/// The DaemonSet for `fi`, without its spec hash. `priority_class` is the FileIntegrity's
/// priority class when it exists (upstream cleared the user's spec field instead).
pub fn build(
    fi: &FileIntegrity,
    namespace: &str,
    image: &str,
    priority_class: Option<String>,
) -> DaemonSet {
    let fi_name = fi.name_any();
    let name = names::daemonset_name(&fi_name);
    let selector = BTreeMap::from([(names::APP_LABEL.to_owned(), name.clone())]);
    let mut pod_labels = selector.clone();
    pod_labels.insert(names::POD_LABEL.into(), String::new());
    pod_labels.insert(names::OWNER_LABEL.into(), fi_name.clone());
    let hostroot_mount = VolumeMount {
        name: "hostroot".into(),
        mount_path: HOSTROOT.into(),
        // CSI and other mounts made on the host after the pod started must be seen too
        // (OCPBUGS-14947).
        mount_propagation: Some("HostToContainer".into()),
        ..VolumeMount::default()
    };
    let container = Container {
        name: "daemon".into(),
        image: Some(image.to_owned()),
        command: Some(vec!["fio-operator".into()]),
        args: Some(daemon_args(fi, namespace).to_argv()),
        env: Some(vec![EnvVar {
            name: names::ENV_NODE_NAME.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        security_context: Some(security_context()),
        // The daemon's heartbeat (fio_daemon::liveness): restarted when a scan hangs.
        liveness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(
                    std::iter::once("fio-operator".to_owned())
                        .chain(
                            DaemonArgs {
                                probe: true,
                                ..daemon_args(fi, namespace)
                            }
                            .to_argv(),
                        )
                        .collect(),
                ),
            }),
            initial_delay_seconds: Some(30),
            period_seconds: Some(60),
            timeout_seconds: Some(10),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("40m", "40Mi")),
            limits: Some(quantities("300m", "600Mi")),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(vec![
            hostroot_mount,
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };
    let spec = fi.spec.clone();
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(names::OWNER_LABEL.into(), fi_name)])),
            owner_references: fi.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(names::DAEMON_SERVICE_ACCOUNT.into()),
                    node_selector: (!spec.node_selector.is_empty()).then_some(spec.node_selector),
                    tolerations: Some(spec.tolerations),
                    priority_class_name: priority_class,
                    // Naming the writer of a change needs the host's pids (issue 27).
                    host_pid: fi.spec.attribution().then_some(true),
                    containers: vec![container],
                    volumes: Some(vec![
                        Volume {
                            name: "hostroot".into(),
                            host_path: Some(HostPathVolumeSource {
                                path: "/".into(),
                                ..HostPathVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: "tmp".into(),
                            empty_dir: Some(Default::default()),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DaemonSetSpec::default()
        }),
        status: None,
    }
}

/// Ready as upstream's `DaemonSetIsReady` and not `DaemonSetIsUpdating`, and the controller has
/// seen the latest spec.
pub fn is_ready(ds: &DaemonSet) -> bool {
    let Some(st) = &ds.status else { return false };
    let desired = st.desired_number_scheduled;
    let available = st.number_available.unwrap_or(0);
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let unavailable = st.number_unavailable.unwrap_or(0);
    let observed = st.observed_generation.unwrap_or(0) >= ds.metadata.generation.unwrap_or(0);
    let updating = updated > 0 && (updated < desired || unavailable > 0);
    observed && desired > 0 && desired == available && !updating
}

/// What the daemons of `fi` may do besides `deploy/rbac/daemon_role.yaml` (which lets them
/// create ConfigMaps and read none): get its configuration ConfigMap, by name. Nothing to
/// update, patch or delete: a node can neither read another node's kept report or another
/// FileIntegrity's configuration, nor rewrite any ConfigMap (results are created, and deleted by
/// the operator). A Role and its binding to the daemon service account, both `aide-<fi>`, owned
/// by `fi`.
pub fn daemon_role(fi: &FileIntegrity, namespace: &str) -> (Role, RoleBinding) {
    let name = names::daemonset_name(&fi.name_any());
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([(
            names::OWNER_LABEL.to_owned(),
            fi.name_any(),
        )])),
        owner_references: fi.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    };
    let rule = |verb: &str, resource_names: Vec<String>| PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["configmaps".into()]),
        resource_names: Some(resource_names),
        verbs: vec![verb.into()],
        ..PolicyRule::default()
    };
    let rules = vec![rule("get", vec![fi.name_any()])];
    let role = Role {
        metadata: meta.clone(),
        rules: Some(rules),
    };
    let binding = RoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names::DAEMON_SERVICE_ACCOUNT.into(),
            namespace: Some(namespace.to_owned()),
            ..Subject::default()
        }]),
    };
    (role, binding)
}
