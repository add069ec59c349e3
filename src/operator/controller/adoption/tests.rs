use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use std::collections::BTreeMap;

fn entry(manager: &str, subresource: Option<&str>) -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        manager: Some(manager.into()),
        operation: Some("Update".into()),
        subresource: subresource.map(str::to_owned),
        ..ManagedFieldsEntry::default()
    }
}

fn ds(name: &str, labels: &[(&str, &str)], managers: Vec<ManagedFieldsEntry>) -> DaemonSet {
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            managed_fields: Some(managers),
            ..ObjectMeta::default()
        },
        ..DaemonSet::default()
    }
}

fn cm(name: &str, keys: &[&str], managers: Vec<ManagedFieldsEntry>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            managed_fields: Some(managers),
            ..ObjectMeta::default()
        },
        data: Some(
            keys.iter()
                .map(|k| ((*k).to_owned(), "#!/bin/sh\n".to_owned()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..ConfigMap::default()
    }
}

#[test]
fn a_daemonset_is_upstreams_when_its_controller_wrote_its_fields() {
    let upstream = entry(names::UPSTREAM_FIELD_MANAGER, None);
    let status = entry("kube-controller-manager", Some("status"));
    let ours = ManagedFieldsEntry {
        operation: Some("Apply".into()),
        ..entry(super::super::context::MANAGER, None)
    };
    assert!(written_by_upstream(&ds(
        "aide-fi",
        &[],
        vec![upstream.clone(), status.clone()]
    )));
    // Ours, with the DaemonSet controller's status: not replaced again and again.
    assert!(!written_by_upstream(&ds(
        "aide-fi",
        &[],
        vec![ours.clone(), status]
    )));
    // Upstream's manager on the status subresource only is not its controller's spec.
    let upstream_status = entry(names::UPSTREAM_FIELD_MANAGER, Some("status"));
    assert!(!written_by_upstream(&ds(
        "aide-fi",
        &[],
        vec![ours, upstream_status]
    )));
    // A take-over that stopped after the replace: the API server's record of what was there.
    assert!(written_by_upstream(&ds(
        "aide-fi",
        &[],
        vec![entry("before-first-apply", None)]
    )));
    // An administrator's `kubectl edit` is not upstream's.
    assert!(!written_by_upstream(&ds(
        "aide-fi",
        &[],
        vec![entry("kubectl-edit", None)]
    )));
}

#[test]
fn upstreams_other_daemonsets_are_leftovers_and_ours_is_not() {
    let reinit = ds(
        "aide-ini-fi",
        &[(names::UPSTREAM_REINIT_OWNER_LABEL, "fi")],
        vec![],
    );
    assert!(upstream_leftover_daemonset(&reinit));
    let legacy = ds("aide-ds-fi", &[(names::OWNER_LABEL, "fi")], vec![]);
    assert!(upstream_leftover_daemonset(&legacy));
    let ours = ds("aide-fi", &[(names::OWNER_LABEL, "fi")], vec![]);
    assert!(!upstream_leftover_daemonset(&ours));
    // A FileIntegrity named `ds-fi` has the scan DaemonSet `aide-ds-fi`: ours, not a leftover.
    let ds_named = ds("aide-ds-fi", &[(names::OWNER_LABEL, "ds-fi")], vec![]);
    assert!(!upstream_leftover_daemonset(&ds_named));
    // Another FileIntegrity's: not this name.
    let other = ds("aide-ds-fi", &[(names::OWNER_LABEL, "other")], vec![]);
    assert!(!upstream_leftover_daemonset(&other));
}

#[test]
fn upstreams_script_configmaps_are_recognised_by_name_and_key() {
    assert!(upstream_script_config_map(&cm(
        "aide-reinit",
        &["aide.sh"],
        vec![]
    )));
    assert!(upstream_script_config_map(&cm(
        "aide-pause",
        &["pause.sh"],
        vec![]
    )));
    // The name alone is not enough: an administrator's ConfigMap of that name stays.
    assert!(!upstream_script_config_map(&cm(
        "aide-pause",
        &["notes"],
        vec![]
    )));
    assert!(!upstream_script_config_map(&cm(
        "aide-reinit",
        &["aide.sh", "mine"],
        vec![]
    )));
    let upstream = entry(names::UPSTREAM_FIELD_MANAGER, None);
    assert!(upstream_script_config_map(&cm(
        "aide-script-fi",
        &["aide.sh"],
        vec![upstream]
    )));
    assert!(!upstream_script_config_map(&cm(
        "aide-script-fi",
        &["aide.sh"],
        vec![entry("kubectl-create", None)]
    )));
}
