//! The AIDE configuration and spec changes: a user config (valid, invalid, missing), and
//! gracePeriod and debug changes rolling the DaemonSet.

use std::collections::BTreeSet;

use crate::cluster::{secs, TestNs};
use crate::support::{
    active_scenario, assert_backups, backups, daemon_args, ds_name, reinit_requests,
    start_scenario, FI, INTERVAL,
};
use fio_api::daemon_args::DaemonArgs;
use fio_api::{names, FileIntegrity, FileIntegrityStatusPhase as Phase};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// A user config, as a user writes it for the host (paths without /hostroot).
pub(crate) const USER_CONFIG: &str = "\
@@define DBDIR /etc/kubernetes
@@define LOGDIR /etc/kubernetes
database_in=file:@@{DBDIR}/aide.db.gz
database_out=file:@@{DBDIR}/aide.db.gz.new
gzip_dbout=yes
report_url=file:@@{LOGDIR}/aide.log.new
report_url=stdout
CONTENT_EX = sha512+ftype+p+u+g+n+acl+selinux+xattrs
/etc/ CONTENT_EX
!/etc/kubernetes/aide.*
/usr/bin/ CONTENT_EX
";
/// Line of the invalid attribute in [`bad_user_config`].
const BAD_LINE: usize = 9;

fn bad_user_config() -> String {
    let mut lines: Vec<&str> = USER_CONFIG.lines().collect();
    lines.insert(
        BAD_LINE - 1,
        "NORMAL = p+i+n+u+g+s+m+c+acl+selinux+xattrs+sha513+md5+XXXXXX",
    );
    lines.join("\n") + "\n"
}

pub(crate) fn user_config_map(name: &str, text: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "data": {"aide.conf": text}
    }))
    .expect("ConfigMap")
}

/// Invalid user config: phase Error with the line, nothing rolled out; fixed: Active again, and
/// the config change re-initialises every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_user_config_is_an_error_until_fixed() {
    let t = TestNs::new("badconf", 3).await;
    let cms = t.api::<ConfigMap>();
    cms.create(
        &PostParams::default(),
        &user_config_map("user-aide-conf", USER_CONFIG),
    )
    .await
    .expect("create the user config");
    let mut fi = t.file_integrity(FI);
    fi.spec.config.name = "user-aide-conf".into();
    fi.spec.config.namespace = t.ns.clone();
    fi.spec.config.key = "aide.conf".into();
    let s = start_scenario(t, fi).await;
    let t = &s.t;

    let conf = |cm: Option<ConfigMap>| -> String {
        cm.and_then(|c| c.data)
            .and_then(|d| d.get(names::DEFAULT_CONFIG_DATA_KEY).cloned())
            .unwrap_or_default()
    };
    let good = conf(t.get_configmap(FI).await);
    assert!(good.contains("/hostroot/etc/ CONTENT_EX"), "{good}");
    assert!(good.contains("!/hostroot/etc/kubernetes/aide.*"), "{good}");
    assert!(good.contains("/hostroot/usr/bin/ CONTENT_EX"), "{good}");
    assert!(
        good.contains("@@define DBDIR /hostroot/etc/kubernetes"),
        "{good}"
    );
    assert!(!good.lines().any(|l| l.starts_with("/etc/")), "{good}");

    // Break it.
    cms.patch(
        "user-aide-conf",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"aide.conf": bad_user_config()}})),
    )
    .await
    .expect("patch the user config");
    let fi = t.wait_phase(FI, Phase::Error, secs(30)).await;
    let msg = fi.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        msg.contains(&format!(":{BAD_LINE}:")) || msg.contains(&format!("line {BAD_LINE}")),
        "status.message names line {BAD_LINE}: {msg:?}"
    );
    assert!(msg.contains("sha513"), "status.message: {msg:?}");
    s.op.wait_metric(
        "file_integrity_operator_error_total",
        &[("error", "InvalidConfig")],
        1.0,
    )
    .await;
    // Nothing rolled out: the last good config stays, no node re-initialises.
    t.holds_for("the last good config kept", secs(INTERVAL), async || {
        let now = conf(t.get_configmap(FI).await);
        if now != good {
            return Err(format!("config changed to:\n{now}"));
        }
        for (n, root) in &s.roots {
            if !backups(root).0.is_empty() {
                return Err(format!("{n} re-initialised"));
            }
        }
        Ok(())
    })
    .await;

    // Fix it (with a difference from the first version): Active, all nodes re-initialised.
    let fixed = format!("{USER_CONFIG}# fixed\n");
    let at = Timestamp::now();
    cms.patch(
        "user-aide-conf",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"aide.conf": fixed}})),
    )
    .await
    .expect("patch the user config");
    let fi = t.wait_phase(FI, Phase::Active, secs(60)).await;
    assert!(
        fi.status
            .and_then(|s| s.message)
            .is_none_or(|m| !m.contains("sha513")),
        "stale error message"
    );
    assert!(conf(t.get_configmap(FI).await).contains("# fixed"));
    s.wait_reinit_confirmed(&t.nodes, at, secs(90)).await;
    t.wait_phase(FI, Phase::Active, secs(30)).await;
    for root in s.roots.values() {
        assert_backups(root, 1);
    }
    let text = s.op.metrics().await;
    assert_eq!(
        fio_operator::metrics::sample(
            &text,
            "file_integrity_operator_reinit_total",
            &[("by", "config"), ("node", "")]
        ),
        Some(1.0),
        "{text}"
    );
}

/// A user ConfigMap that does not exist: the defaults stay, nothing re-initialises, Active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_user_configmap_keeps_the_defaults() {
    let s = active_scenario("missingcm", 3, |_| {}).await;
    let t = &s.t;
    let default = t
        .get_configmap(FI)
        .await
        .and_then(|c| c.data)
        .expect("config ConfigMap data");
    let (seq, _) = reinit_requests(&s.fi().await);
    t.merge_patch_fi(
        FI,
        json!({"spec": {"config": {"name": "fooconf", "namespace": t.ns, "key": "fookey"}}}),
    )
    .await;
    let fis = t.api::<FileIntegrity>();
    t.holds_for(
        "Active with the default config, no re-init",
        secs(2 * INTERVAL + 5),
        async || {
            let fi = fis.get(FI).await.map_err(|e| e.to_string())?;
            let phase = fi.status.clone().unwrap_or_default().phase;
            if phase != Some(Phase::Active) {
                return Err(format!("phase {phase:?} ({:?})", fi.status));
            }
            if reinit_requests(&fi).0 != seq {
                return Err(format!("re-init requested: {:?}", fi.metadata.annotations));
            }
            let data = t.get_configmap(FI).await.and_then(|c| c.data);
            if data.as_ref() != Some(&default) {
                return Err(format!("config changed: {data:?}"));
            }
            for (n, root) in &s.roots {
                if !backups(root).0.is_empty() {
                    return Err(format!("{n} re-initialised"));
                }
            }
            Ok(())
        },
    )
    .await;
}

/// Waits until the DaemonSet's args contain `arg`, it is rolled out, and none of `old` pods
/// is left (the pods were replaced). Returns the new pods by node.
async fn wait_rolled_with(
    t: &TestNs,
    arg: &str,
    with: impl Fn(&DaemonArgs) -> bool,
    old: &BTreeSet<String>,
) -> BTreeSet<String> {
    let api = t.api::<DaemonSet>();
    let ds = ds_name();
    t.wait(
        &format!("DaemonSet {ds} rolled out with {arg}, every pod replaced"),
        secs(90),
        async || {
            let d = api.get(&ds).await.map_err(|e| e.to_string())?;
            let args = daemon_args(&d)?;
            if !with(&args) {
                return Err(format!("args {args:?}"));
            }
            let st = d.status.clone().unwrap_or_default();
            let n = t.nodes.len() as i32;
            if st.observed_generation != d.metadata.generation
                || st.updated_number_scheduled != Some(n)
                || st.number_ready != n
            {
                return Err(format!("status {st:?}"));
            }
            let all = t
                .api::<Pod>()
                .list(&ListParams::default().labels(&format!("{}={ds}", names::APP_LABEL)))
                .await
                .map_err(|e| e.to_string())?;
            let uids: BTreeSet<String> = all
                .items
                .iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            let running = t.running_pods(&ds).await?;
            if uids.is_disjoint(old) && running.len() == t.nodes.len() {
                Ok(uids)
            } else {
                Err(format!(
                    "pods {uids:?} (old {old:?}), running on {:?}",
                    running.keys().collect::<Vec<_>>()
                ))
            }
        },
    )
    .await
}

/// gracePeriod and debug changes roll the DaemonSet (new args, every pod replaced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_and_debug_changes_roll_the_daemonset() {
    let s = active_scenario("roll", 3, |_| {}).await;
    let t = &s.t;
    let (ds, pods) = t.wait_daemonset_rolled_out(&ds_name(), secs(30)).await;
    let args = daemon_args(&ds).expect("the daemon's args");
    assert_eq!((args.interval, args.debug), (INTERVAL, false), "{args:?}");
    let old: BTreeSet<String> = pods
        .values()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();

    t.merge_patch_fi(FI, json!({"spec": {"config": {"gracePeriod": 20}}}))
        .await;
    let old = wait_rolled_with(t, "--interval=20", |a| a.interval == 20, &old).await;
    t.wait_phase(FI, Phase::Active, secs(60)).await;

    t.merge_patch_fi(FI, json!({"spec": {"debug": true}})).await;
    wait_rolled_with(t, "--debug=true", |a| a.debug, &old).await;
    let ds = t
        .api::<DaemonSet>()
        .get(&ds_name())
        .await
        .expect("DaemonSet");
    assert_eq!(daemon_args(&ds).map(|a| a.interval), Ok(20));
    t.wait_phase(FI, Phase::Active, secs(60)).await;
}
