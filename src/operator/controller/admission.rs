//! The daemons' admission policy is a precondition of the trust boundary, not an extra: the
//! daemons share one service account, so only the policy (`deploy/rbac/
//! daemon_admission_policy.yaml`) stops one node's token from creating another node's result.
//! The guard watches the policy and its binding, puts back a deleted or altered one at once, and
//! tells the FileIntegrity controller ([`Admission`]) so that every FileIntegrity is `Error`
//! while the policy is not in force, and after it was restored until each node has reported a
//! result the policy checked (a result created in the gap may be another node's).
//!
//! The policy bounding the operator's own DaemonSets (`deploy/rbac/
//! operator_admission_policy.yaml`) is guarded the same way, except that the operator only
//! creates it when missing: its ClusterRole does not let it patch or delete that one (its own
//! token must not loosen its own bound), so an altered one stays a problem until an
//! administrator deletes or re-applies it. That policy admits only the images the installer's
//! Role grants the operator (`use` on `daemonimages`): the guard also asks the API server whether
//! the operator may use its daemon image, so that a Deployment upgraded without that Role shows
//! as `Error` on every FileIntegrity rather than as DaemonSets that never come.
//!
//! [`judge`] is the rule (pure); [`guard`] reads, repairs and publishes.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::context::MANAGER;
use fio_api::{names, FileIntegrityNodeStatus};

/// What the guard last found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admission {
    /// Why the product's admission is not as it must be now (a policy missing, altered and not
    /// restorable, or not served; the daemon image not granted).
    pub problem: Option<String>,
    /// When it was last restored after a problem, and what the problem was.
    pub restored: Option<(Timestamp, String)>,
}

impl Admission {
    /// Why the phase must be `Error` now, for a FileIntegrity selecting `selected` whose node
    /// statuses are `statuses`; `None` when the policy is in force and every selected node's
    /// last result came after its last restoration.
    pub fn verdict(
        &self,
        selected: &BTreeSet<String>,
        statuses: &[FileIntegrityNodeStatus],
    ) -> Option<String> {
        if let Some(p) = &self.problem {
            return Some(p.clone());
        }
        let (at, why) = self.restored.as_ref()?;
        let waiting: Vec<&str> = selected
            .iter()
            .filter(|n| {
                !statuses
                    .iter()
                    .any(|s| s.spec.node_name == **n && s.spec.last_result.last_probe_time.0 > *at)
            })
            .map(String::as_str)
            .collect();
        (!waiting.is_empty()).then(|| {
            format!(
                "the daemons' admission policy was restored at {at} ({why}): results created \
                 before may be another node's; waiting for a new result from {}",
                waiting.join(", ")
            )
        })
    }
}

/// Whether `live` (the object in the cluster, `None` when missing) enforces what `ours` says:
/// every field of ours has the same value there (lists exactly; the server's defaults may add
/// fields), and nothing narrows what it applies to (exclusions, object or namespace selectors
/// beyond ours, parameters).
pub fn judge(ours: &Value, live: Option<&Value>) -> Result<(), String> {
    let kind = ours["kind"].as_str().unwrap_or("object");
    let name = ours["metadata"]["name"].as_str().unwrap_or_default();
    let Some(live) = live else {
        return Err(format!("{kind} {name} is missing"));
    };
    if let Some(path) = differs(&ours["spec"], &live["spec"], "spec") {
        return Err(format!("{kind} {name} was altered: {path}"));
    }
    let narrowing = [
        "/spec/matchConstraints/excludeResourceRules",
        "/spec/matchConstraints/objectSelector/matchLabels",
        "/spec/matchConstraints/objectSelector/matchExpressions",
        "/spec/matchConstraints/namespaceSelector/matchLabels",
        "/spec/matchConstraints/namespaceSelector/matchExpressions",
        "/spec/matchResources/excludeResourceRules",
        "/spec/matchResources/objectSelector/matchLabels",
        "/spec/matchResources/objectSelector/matchExpressions",
        "/spec/paramKind",
        "/spec/paramRef",
    ];
    for p in narrowing {
        let mine = ours.pointer(p).filter(|v| !is_empty(v));
        let theirs = live.pointer(p).filter(|v| !is_empty(v));
        if theirs.is_some() && theirs != mine {
            return Err(format!("{kind} {name} was altered: {p} added"));
        }
    }
    Ok(())
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// The first place where `live` lacks or changes what `ours` says.
fn differs(ours: &Value, live: &Value, at: &str) -> Option<String> {
    match (ours, live) {
        (Value::Object(o), Value::Object(l)) => o.iter().find_map(|(k, v)| {
            let path = format!("{at}.{k}");
            match l.get(k) {
                Some(lv) => differs(v, lv, &path),
                None => Some(format!("{path} missing")),
            }
        }),
        (Value::Array(o), Value::Array(l)) => {
            if o.len() != l.len() {
                return Some(format!("{at} has {} entries, not {}", l.len(), o.len()));
            }
            o.iter()
                .zip(l)
                .enumerate()
                .find_map(|(i, (a, b))| differs(a, b, &format!("{at}[{i}]")))
        }
        (o, l) if o == l => None,
        (o, l) => Some(format!("{at} is {l}, not {o}")),
    }
}

/// How often the guard looks again without an event (a watch can miss nothing, but a failed
/// repair is retried).
const RECHECK: Duration = Duration::from_secs(30);

/// Run the guard for the operator in `namespace` running its daemons with `image`: `objects` are
/// the policies and their bindings as `deploy/` has them. Publishes every change of
/// [`Admission`] on the returned receiver.
pub fn guard(
    client: Client,
    objects: Vec<DynamicObject>,
    namespace: String,
    image: String,
) -> watch::Receiver<Admission> {
    let (tx, rx) = watch::channel(Admission::default());
    tokio::spawn(async move {
        let mut targets = Vec::new();
        for o in objects {
            let gvk = o
                .types
                .as_ref()
                .and_then(|t| GroupVersionKind::try_from(t).ok());
            let found = match &gvk {
                Some(gvk) => pinned_kind(&client, gvk).await.ok(),
                None => None,
            };
            let Some((resource, _)) = found else {
                tx.send_replace(Admission {
                    problem: Some(
                        "the cluster does not serve admissionregistration.k8s.io/v1 \
                         ValidatingAdmissionPolicy (Kubernetes >= 1.30 is required)"
                            .into(),
                    ),
                    restored: None,
                });
                return;
            };
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            targets.push((api, o));
        }
        // Any event on either object wakes a look at both.
        let (wake, mut woken) = mpsc::channel::<()>(1);
        for (api, o) in &targets {
            let (api, wake) = (api.clone(), wake.clone());
            let config =
                watcher::Config::default().fields(&format!("metadata.name={}", o.name_any()));
            tokio::spawn(async move {
                let mut events = watcher::watcher(api, config).boxed();
                while let Some(ev) = events.next().await {
                    if let Err(e) = ev {
                        tracing::warn!("watching the daemons' admission policy: {e}");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    let _ = wake.try_send(());
                }
            });
        }
        loop {
            let mut state = tx.borrow().clone();
            state.problem = None;
            let mut problems = Vec::new();
            for (api, ours) in &targets {
                if let Err(problem) = look(api, ours).await {
                    let problem = format!(
                        "an admission policy of the product is not in force: {problem} ({})",
                        consequence(ours)
                    );
                    match repair(api, ours).await {
                        // Results created while the daemons' policy was away may be another
                        // node's; the operator's own bound vouches for no result.
                        Ok(()) if is_own_bound(ours) => tracing::warn!("{problem}: created"),
                        Ok(()) => {
                            tracing::warn!("{problem}: restored");
                            state.restored = Some((Timestamp::now(), problem));
                        }
                        Err(e) => {
                            tracing::error!("{problem}; restoring it failed: {e}");
                            problems.push(format!("{problem}; restoring it failed: {e}"));
                        }
                    }
                }
            }
            if let Err(problem) = may_use(&client, &namespace, &image).await {
                tracing::error!("{problem}");
                problems.push(problem);
            }
            state.problem = (!problems.is_empty()).then(|| problems.join("; "));
            tx.send_if_modified(|s| {
                let changed = *s != state;
                *s = state;
                changed
            });
            let _ = tokio::time::timeout(RECHECK, woken.recv()).await;
        }
    });
    rx
}

async fn look(api: &Api<DynamicObject>, ours: &DynamicObject) -> Result<(), String> {
    let name = ours.name_any();
    let live = api
        .get_opt(&name)
        .await
        .map_err(|e| format!("reading {name}: {e}"))?;
    let as_json = |o: &DynamicObject| serde_json::to_value(o).unwrap_or_default();
    judge(&as_json(ours), live.as_ref().map(as_json).as_ref())
}

/// Whether the operator's account may run DaemonSets with `image` (the question the policy
/// bounding its DaemonSets asks the authorizer), by a SelfSubjectAccessReview, which every
/// account may create.
async fn may_use(client: &Client, namespace: &str, image: &str) -> Result<(), String> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(names::GROUP.into()),
                resource: Some(names::DAEMON_IMAGES.into()),
                namespace: Some(namespace.into()),
                name: Some(image.into()),
                verb: Some("use".into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| format!("asking whether the operator may use its daemon image: {e}"))?;
    match answer.status {
        Some(s) if s.allowed => Ok(()),
        _ => Err(format!(
            "the operator's Role does not grant it its daemon image {image} (`use` on {}.{} in \
             {namespace}, deploy/rbac/operator_image_role.yaml): the API server refuses every \
             scan DaemonSet of that image",
            names::DAEMON_IMAGES,
            names::GROUP
        )),
    }
}

/// What it means for the product while `ours` is not in force.
fn consequence(ours: &DynamicObject) -> &'static str {
    if is_own_bound(ours) {
        "the operator's own account is not bounded to the product's DaemonSets"
    } else if ours.name_any() == names::ACCEPT_ADMISSION_POLICY {
        "who accepts changes into a baseline cannot be told"
    } else {
        "a node's result cannot be told from another node's"
    }
}

/// The policy (or binding) bounding the operator's own DaemonSets: created, never changed.
fn is_own_bound(o: &DynamicObject) -> bool {
    let name = o.name_any();
    name == names::OPERATOR_ADMISSION_POLICY
}

/// Put ours back: the daemons' policy by server-side apply, forced (the fields someone changed
/// become ours again); the operator's own bound only by creating a missing one.
async fn repair(api: &Api<DynamicObject>, ours: &DynamicObject) -> Result<(), String> {
    if is_own_bound(ours) {
        let exists = api
            .get_opt(&ours.name_any())
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if exists {
            return Err(format!(
                "the operator may not change it (by design): an administrator deletes it (the \
                 operator then creates it again) or applies deploy/rbac/{}",
                "operator_admission_policy.yaml"
            ));
        }
        return match api.create(&PostParams::default(), ours).await {
            // Another operator (another namespace) created it first: judged at the next look.
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e.to_string()),
        };
    }
    api.patch(
        &ours.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(ours),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fio_api::{
        FileIntegrityNodeCondition, FileIntegrityNodeStatusFields, FileIntegrityScanResult,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn binding() -> Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "file-integrity-daemon-results"},
            "spec": {
                "policyName": "file-integrity-daemon-results",
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ns"}}}
            }
        })
    }

    #[test]
    fn only_the_policy_as_deployed_is_in_force() {
        let ours = binding();
        assert!(judge(&ours, None).unwrap_err().contains("missing"));
        // As the server returns it: defaults added, metadata of its own.
        let mut live = ours.clone();
        live["metadata"]["uid"] = json!("u");
        live["spec"]["matchResources"]["matchPolicy"] = json!("Equivalent");
        live["spec"]["matchResources"]["objectSelector"] = json!({});
        assert_eq!(judge(&ours, Some(&live)), Ok(()));
        // Audit only, or Warn beside Deny: not ours.
        let mut warn = live.clone();
        warn["spec"]["validationActions"] = json!(["Warn"]);
        assert!(judge(&ours, Some(&warn))
            .unwrap_err()
            .contains("validationActions"));
        let mut both = live.clone();
        both["spec"]["validationActions"] = json!(["Deny", "Audit"]);
        assert!(judge(&ours, Some(&both)).is_err());
        // Another namespace selected, or objects excluded.
        let mut other = live.clone();
        other["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]
            ["kubernetes.io/metadata.name"] = json!("elsewhere");
        assert!(judge(&ours, Some(&other)).is_err());
        let mut excluded = live.clone();
        excluded["spec"]["matchResources"]["objectSelector"] =
            json!({"matchLabels": {"skip": "yes"}});
        assert!(judge(&ours, Some(&excluded))
            .unwrap_err()
            .contains("objectSelector"));
        let mut exclusions = live.clone();
        exclusions["spec"]["matchResources"]["excludeResourceRules"] =
            json!([{"resources": ["configmaps"]}]);
        assert!(judge(&ours, Some(&exclusions)).is_err());
    }

    fn status(node: &str, at: i64) -> FileIntegrityNodeStatus {
        let r = FileIntegrityScanResult::new(
            Time(Timestamp::from_second(at).unwrap()),
            FileIntegrityNodeCondition::Succeeded,
        );
        FileIntegrityNodeStatus::new(
            &format!("fi-{node}"),
            FileIntegrityNodeStatusFields {
                node_name: node.into(),
                results: vec![r.clone()],
                last_result: r,
                reinit_id: None,
                accept_id: None,
                accepted_changes: Vec::new(),
                baseline: None,
                result_version: None,
            },
        )
    }

    /// Error while the policy is not in force; after it is restored, until every selected node
    /// has a result created after that.
    #[test]
    fn error_until_every_node_reported_under_the_policy() {
        let selected: BTreeSet<String> = ["n1".to_owned(), "n2".to_owned()].into();
        let statuses = [status("n1", 100), status("n2", 100)];
        assert_eq!(Admission::default().verdict(&selected, &statuses), None);
        let problem = "an admission policy of the product is not in force: \
                       ValidatingAdmissionPolicyBinding x is missing";
        let missing = Admission {
            problem: Some(problem.into()),
            restored: None,
        };
        assert_eq!(
            missing.verdict(&selected, &statuses).as_deref(),
            Some(problem)
        );
        let restored = Admission {
            problem: None,
            restored: Some((Timestamp::from_second(150).unwrap(), "x was missing".into())),
        };
        let why = restored.verdict(&selected, &statuses).unwrap();
        assert!(why.contains("n1, n2"), "{why}");
        let one = [status("n1", 160), status("n2", 100)];
        let why = restored.verdict(&selected, &one).unwrap();
        assert!(why.ends_with("from n2"), "{why}");
        let both = [status("n1", 160), status("n2", 170)];
        assert_eq!(restored.verdict(&selected, &both), None);
    }
}
