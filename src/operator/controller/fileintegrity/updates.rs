//! The selected nodes' MachineConfig updates: which nodes to pause, which to resume with the
//! update's window (the update is over and, where the MachineConfigPool API exists, its pool
//! confirms it: the changes it made are accepted per path, issue 28), which to resume without
//! one (the node's word alone, a hostile node's way of moving its
//! own baseline), and which pauses have lasted too long. Pure: fed by [`super::plan`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::machine_config::{confirms, pools_rolled_out, NodeUpdate, Pool};
use fio_api::accept::UpdateWindow;
use fio_api::Holdoff;
use fio_api::NodePause;

/// The operator's settings for following updates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// How long a node may stay paused before it is reported.
    pub max_pause: Duration,
    /// Without the pool API, re-initialise on the node's own annotations (upstream).
    pub trust_annotations: bool,
}

/// What the reconcile needs of a node.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub labels: BTreeMap<String, String>,
    /// Where it is in a MachineConfig update (`None`: not managed by the machine-config daemon).
    pub update: Option<NodeUpdate>,
    /// Its `currentConfig` annotation.
    pub current_config: Option<String>,
}

/// Nodes by name.
pub type Nodes = BTreeMap<String, NodeInfo>;

/// What following the updates decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeUpdates {
    pub holdoff: Holdoff,
    /// The pause records after this look (the FileIntegrity's `status.nodePauses`).
    pub pauses: BTreeMap<String, NodePause>,
    /// Nodes whose update began now.
    pub paused: Vec<String>,
    /// Update over and confirmed: resume, and judge the node's next check by the update's
    /// window.
    pub resumed: Vec<String>,
    /// The windows of the nodes resumed (`listed_all_before` left to the caller, who reads
    /// the node statuses).
    pub windows: BTreeMap<String, UpdateWindow>,
    /// Update over but not confirmed: resume without a re-init, and why.
    pub released: Vec<(String, String)>,
    /// Pauses that have just outlasted the bound (reported once each).
    pub overdue: Vec<String>,
    /// When the next pause outlasts the bound.
    pub next_due: Option<Duration>,
}

/// A node is paused when its update starts and resumed only when it was paused and its update
/// is over: however many Node events arrive, at most one window per update. Paused nodes that
/// are no longer selected are released without a re-init. A hand-set `""` (everything paused)
/// is left alone.
pub fn follow(
    holdoff: &Holdoff,
    pauses: &BTreeMap<String, NodePause>,
    selected: &BTreeSet<String>,
    nodes: &Nodes,
    pools: Option<&[Pool]>,
    now: Timestamp,
    settings: Settings,
) -> NodeUpdates {
    let Settings {
        max_pause,
        trust_annotations,
    } = settings;
    let mut out = NodeUpdates {
        holdoff: holdoff.clone(),
        pauses: pauses.clone(),
        ..NodeUpdates::default()
    };
    let mut held = match holdoff {
        Holdoff::All => return out,
        Holdoff::None => BTreeSet::new(),
        Holdoff::Nodes(n) => n.clone(),
    };
    for n in selected {
        let Some(info) = nodes.get(n) else { continue };
        match info.update {
            Some(NodeUpdate::Updating) if !held.contains(n) => {
                held.insert(n.clone());
                out.paused.push(n.clone());
                out.pauses.insert(
                    n.clone(),
                    NodePause {
                        since: Time(now),
                        from_config: info.current_config.clone(),
                        pool_rolled_out: pools_rolled_out(pools, &info.labels),
                        overdue: false,
                    },
                );
            }
            Some(NodeUpdate::Finished) if held.remove(n) => {
                let pause = out.pauses.remove(n);
                let current = info.current_config.as_deref();
                match confirms(
                    pools,
                    trust_annotations,
                    &info.labels,
                    current,
                    pause.as_ref(),
                ) {
                    Ok(()) => {
                        out.resumed.push(n.clone());
                        let by = format!(
                            "node update {} -> {}",
                            pause
                                .as_ref()
                                .and_then(|p| p.from_config.as_deref())
                                .unwrap_or("?"),
                            current.unwrap_or("?")
                        );
                        let window = UpdateWindow {
                            from: pause.map_or(Time(now), |p| p.since),
                            to: Time(now),
                            by,
                            listed_all_before: false,
                        };
                        out.windows.insert(n.clone(), window);
                    }
                    Err(why) => out.released.push((n.clone(), why)),
                }
            }
            _ => {}
        }
    }
    held.retain(|n| selected.contains(n));
    out.pauses.retain(|n, _| held.contains(n));
    for n in &held {
        // Held without a record (the annotation written, the status not yet, or a hand edit):
        // recorded now, with the config the node is leaving if it is still updating.
        out.pauses.entry(n.clone()).or_insert_with(|| {
            let info = nodes.get(n);
            let updating = info.and_then(|i| i.update) == Some(NodeUpdate::Updating);
            NodePause {
                since: Time(now),
                from_config: info
                    .filter(|_| updating)
                    .and_then(|i| i.current_config.clone()),
                pool_rolled_out: info
                    .filter(|_| updating)
                    .and_then(|i| pools_rolled_out(pools, &i.labels)),
                overdue: false,
            }
        });
    }
    for (n, pause) in out.pauses.iter_mut().filter(|(_, p)| !p.overdue) {
        let due = pause.since.0 + max_pause;
        if due <= now {
            pause.overdue = true;
            out.overdue.push(n.clone());
        } else if let Ok(left) = Duration::try_from(now.duration_until(due)) {
            let left = left + Duration::from_secs(1);
            out.next_due = Some(out.next_due.map_or(left, |d| d.min(left)));
        }
    }
    out.holdoff = if held.is_empty() {
        Holdoff::None
    } else {
        Holdoff::Nodes(held)
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn settings(trust_annotations: bool) -> Settings {
        Settings {
            max_pause: HOUR,
            trust_annotations,
        }
    }

    fn node(current: &str, desired: &str, state: &str) -> NodeInfo {
        let ann = BTreeMap::from([
            (
                super::super::machine_config::MC_CURRENT_CONFIG.to_owned(),
                current.to_owned(),
            ),
            (
                super::super::machine_config::MC_DESIRED_CONFIG.to_owned(),
                desired.to_owned(),
            ),
            (
                super::super::machine_config::MC_STATE.to_owned(),
                state.to_owned(),
            ),
        ]);
        NodeInfo {
            labels: BTreeMap::from([("role".to_owned(), "worker".to_owned())]),
            update: NodeUpdate::of(&ann),
            current_config: Some(current.to_owned()),
        }
    }

    /// A pool targeting `target` that has rolled `rolled_out` out to all its machines.
    fn pools(target: &str, rolled_out: &str) -> Vec<Pool> {
        vec![Pool::from_json(&serde_json::json!({
            "metadata": {"name": "worker"},
            "spec": {"nodeSelector": {"matchLabels": {"role": "worker"}},
                     "configuration": {"name": target}},
            "status": {"configuration": {"name": rolled_out}}
        }))]
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    /// A real update: paused while its pool rolls r2 out, resumed with a re-init when it runs
    /// r2. A node playing Working -> Done on its own while its pool is settled, or anywhere
    /// without the pool API: resumed without a re-init, with the reason.
    #[test]
    fn only_a_confirmed_update_reinitialises() {
        let selected = BTreeSet::from(["n1".to_owned()]);
        let pools = pools("r2", "r1");
        let pools_settled = self::pools("r2", "r2");
        let working = Nodes::from([("n1".to_owned(), node("r1", "r2", "Working"))]);
        let u = follow(
            &Holdoff::None,
            &BTreeMap::new(),
            &selected,
            &working,
            Some(&pools),
            at(100),
            settings(false),
        );
        assert_eq!(u.paused, ["n1"]);
        assert_eq!(u.pauses["n1"].from_config.as_deref(), Some("r1"));
        assert_eq!(u.pauses["n1"].pool_rolled_out.as_deref(), Some("r1"));
        assert_eq!(u.next_due, Some(HOUR + Duration::from_secs(1)));
        let done = Nodes::from([("n1".to_owned(), node("r2", "r2", "Done"))]);
        let after = follow(
            &u.holdoff,
            &u.pauses,
            &selected,
            &done,
            Some(&pools),
            at(200),
            settings(false),
        );
        assert_eq!(
            (after.resumed.as_slice(), after.holdoff.clone()),
            (&["n1".to_owned()][..], Holdoff::None)
        );
        assert!(after.pauses.is_empty());
        let w = &after.windows["n1"];
        assert_eq!(
            (w.from.0, w.to.0, w.by.as_str()),
            (at(100), at(200), "node update r1 -> r2"),
            "the window runs from the pause to the confirmation"
        );

        // The attack: the pool has settled at r2; the node claims Working from a made-up
        // config towards r2, then Done at r2.
        let settled = pools_settled;
        let fake = Nodes::from([("n1".to_owned(), node("made-up", "r2", "Working"))]);
        let u = follow(
            &Holdoff::None,
            &BTreeMap::new(),
            &selected,
            &fake,
            Some(&settled),
            at(300),
            settings(false),
        );
        assert_eq!(u.paused, ["n1"]);
        let back = follow(
            &u.holdoff,
            &u.pauses,
            &selected,
            &done,
            Some(&settled),
            at(301),
            settings(false),
        );
        assert!(back.resumed.is_empty() && back.windows.is_empty());
        assert_eq!(back.released.len(), 1);
        assert!(
            back.released[0].1.contains("already"),
            "{:?}",
            back.released
        );
        assert_eq!(back.holdoff, Holdoff::None);
        // Without the pool API, the annotations decide only if the operator trusts them
        // (upstream's behaviour, --trust-node-annotations).
        let plain = |trust| {
            follow(
                &u.holdoff,
                &u.pauses,
                &selected,
                &done,
                None,
                at(301),
                settings(trust),
            )
        };
        let refused = plain(false);
        assert!(refused.resumed.is_empty());
        assert!(refused.released[0].1.contains("no MachineConfigPool API"));
        assert_eq!(plain(true).resumed, ["n1"]);
    }

    /// A node left at Working: reported once when the pause outlasts the bound.
    #[test]
    fn a_long_pause_is_reported_once() {
        let selected = BTreeSet::from(["n1".to_owned()]);
        let working = Nodes::from([("n1".to_owned(), node("r1", "r2", "Working"))]);
        let u = follow(
            &Holdoff::None,
            &BTreeMap::new(),
            &selected,
            &working,
            None,
            at(0),
            settings(false),
        );
        let later = follow(
            &u.holdoff,
            &u.pauses,
            &selected,
            &working,
            None,
            at(3_600),
            settings(false),
        );
        assert_eq!(later.overdue, ["n1"]);
        assert!(later.pauses["n1"].overdue);
        assert_eq!(later.next_due, None);
        let again = follow(
            &later.holdoff,
            &later.pauses,
            &selected,
            &working,
            None,
            at(7_200),
            settings(false),
        );
        assert!(again.overdue.is_empty());
        // A pause the annotation holds without a record (operator crash) gets one now.
        let held = Holdoff::Nodes(BTreeSet::from(["n1".to_owned()]));
        let rec = follow(
            &held,
            &BTreeMap::new(),
            &selected,
            &working,
            None,
            at(50),
            settings(false),
        );
        assert_eq!(rec.pauses["n1"].since, Time(at(50)));
        assert_eq!(rec.pauses["n1"].from_config.as_deref(), Some("r1"));
    }

    #[test]
    fn one_pause_and_one_window_per_machine_config_update() {
        let node = |u: Option<NodeUpdate>| NodeInfo {
            update: u,
            ..NodeInfo::default()
        };
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let selected = set(&["n1", "n2", "plain"]);
        let nodes = |n1, n2| -> Nodes {
            BTreeMap::from([
                ("n1".to_owned(), node(Some(n1))),
                ("n2".to_owned(), node(Some(n2))),
                ("plain".to_owned(), node(None)),
            ])
        };
        let f = |h: &Holdoff, p: &BTreeMap<String, NodePause>, sel: &BTreeSet<String>, n: Nodes| {
            follow(h, p, sel, &n, None, at(0), settings(true)) // no pool API, trusting annotations (upstream)
        };
        let none = BTreeMap::new();
        use NodeUpdate::{Finished, Other, Updating};
        // n1 starts updating: paused once, however often it is seen.
        let u = f(&Holdoff::None, &none, &selected, nodes(Updating, Finished));
        assert_eq!(
            (u.paused.as_slice(), u.resumed.len()),
            (&["n1".to_owned()][..], 0)
        );
        let h = u.holdoff.clone();
        assert_eq!(h, Holdoff::Nodes(set(&["n1"])));
        let again = f(&h, &u.pauses, &selected, nodes(Updating, Finished));
        assert!(again.paused.is_empty() && again.resumed.is_empty() && again.holdoff == h);
        // In between (Done, a newer config desired): still paused, nothing else.
        let between = f(&h, &u.pauses, &selected, nodes(Other, Finished));
        assert!(between.paused.is_empty() && between.resumed.is_empty() && between.holdoff == h);
        // Over: resumed with a window once; n2 was never updated: no window.
        let over = f(&h, &u.pauses, &selected, nodes(Finished, Finished));
        assert_eq!(over.resumed, ["n1"]);
        assert_eq!(over.windows.keys().collect::<Vec<_>>(), ["n1"]);
        assert_eq!(over.holdoff, Holdoff::None);
        let again = f(
            &over.holdoff,
            &over.pauses,
            &selected,
            nodes(Finished, Finished),
        );
        assert!(
            again.resumed.is_empty() && again.windows.is_empty() && again.holdoff == Holdoff::None
        );
        // A paused node that is no longer selected is released without a re-init.
        let gone = f(&h, &u.pauses, &set(&["n2"]), nodes(Finished, Finished));
        assert!(gone.resumed.is_empty() && gone.holdoff == Holdoff::None && gone.pauses.is_empty());
        // Everything paused by hand stays so.
        let all = f(&Holdoff::All, &none, &selected, nodes(Finished, Updating));
        assert!(all.holdoff == Holdoff::All && all.paused.is_empty() && all.resumed.is_empty());
    }
}
