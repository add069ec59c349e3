//! Delivering results as upstream's daemons do and the seed says: each scan's result is created
//! as the ConfigMap `aide-<fi>-<node>`, and the operator deletes it once processed. While the
//! previous one is still there (the operator is down, restarting or busy) the create is refused
//! (409) and the newest result waits here, replacing an older waiting one: a node holds at most
//! one unprocessed result per FileIntegrity, and the node's newest verdict wins. Replaced results
//! are counted in the one delivered (annotation `results-superseded`), never lost silently. The
//! daemon only creates: it may not read, update or delete any ConfigMap but its configuration.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kube::Api;
use tokio::sync::Notify;

use fio_api::result::ScanReport;

/// A result waiting for delivery, and the uid of the FileIntegrity that owns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub report: ScanReport,
    pub owner_uid: String,
}

/// The one slot of results waiting (pure: what replaces what).
#[derive(Debug, Default)]
pub struct Slot {
    waiting: Option<Waiting>,
}

impl Slot {
    /// A new result: it replaces the one waiting, counting it (and what that one replaced).
    pub fn put(&mut self, mut new: Waiting) {
        if let Some(old) = self.waiting.take() {
            new.report.superseded += 1 + old.report.superseded;
            tracing::warn!(
                "the result waiting for delivery ({}) is replaced by a newer one ({}): the \
                 operator has not processed the previous result yet",
                old.report.condition.as_str(),
                new.report.condition.as_str()
            );
        }
        self.waiting = Some(new);
    }

    /// A result whose delivery failed goes back, unless a newer one arrived meanwhile: then that
    /// one replaces it.
    pub fn put_back(&mut self, failed: Waiting) {
        match &mut self.waiting {
            Some(newer) => newer.report.superseded += 1 + failed.report.superseded,
            None => self.waiting = Some(failed),
        }
    }

    pub fn take(&mut self) -> Option<Waiting> {
        self.waiting.take()
    }
}

/// The daemon's side of delivery: [`Outbox::send`] never waits; a task creates the ConfigMaps.
#[derive(Clone)]
pub struct Outbox {
    slot: Arc<Mutex<Slot>>,
    wake: Arc<Notify>,
}

/// How long the delivery waits between tries: from the first retry up to the longest.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Outbox {
    /// Starts the delivery task, creating results in `cms` (the FileIntegrity's namespace).
    pub fn start(cms: Api<ConfigMap>, namespace: String) -> Outbox {
        let outbox = Outbox {
            slot: Arc::new(Mutex::new(Slot::default())),
            wake: Arc::new(Notify::new()),
        };
        let o = outbox.clone();
        tokio::spawn(async move { o.deliver(cms, namespace).await });
        outbox
    }

    pub fn send(&self, report: ScanReport, owner_uid: String) {
        self.with_slot(|s| s.put(Waiting { report, owner_uid }));
        self.wake.notify_one();
    }

    fn with_slot<T>(&self, f: impl FnOnce(&mut Slot) -> T) -> T {
        // A panic while holding the lock cannot leave the slot half-changed: keep using it.
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut slot)
    }

    async fn deliver(self, cms: Api<ConfigMap>, namespace: String) {
        let pp = PostParams::default();
        loop {
            self.wake.notified().await;
            let mut delay = RETRY_FIRST;
            while let Some(w) = self.with_slot(Slot::take) {
                let cm = w.report.to_config_map(&namespace, &w.owner_uid);
                let name = cm.metadata.name.clone().unwrap_or_default();
                match cms.create(&pp, &cm).await {
                    Ok(_) => {
                        tracing::debug!(
                            "reported {} in ConfigMap {name}",
                            w.report.condition.as_str()
                        );
                        break;
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        if delay == RETRY_FIRST {
                            tracing::info!(
                                "ConfigMap {name}: the previous result is not processed yet; \
                                 delivering when it is"
                            );
                        }
                    }
                    Err(e) => tracing::warn!("reporting the scan result in ConfigMap {name}: {e}"),
                }
                self.with_slot(|s| s.put_back(w));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fio_api::result::ScanCondition;

    fn waiting(condition: ScanCondition) -> Waiting {
        Waiting {
            report: ScanReport {
                owner: "fi".into(),
                node: "n1".into(),
                condition,
                reinit_id: Some(0),
                database: None,
                initialized: false,
                figures: None,
                superseded: 0,
                view: None,
                realtime: None,
                accepted: None,
            },
            owner_uid: "uid".into(),
        }
    }

    /// The newest verdict wins, and every result it replaced is counted in it.
    #[test]
    fn the_newest_result_waits_counting_the_ones_it_replaced() {
        let mut slot = Slot::default();
        slot.put(waiting(ScanCondition::Succeeded));
        let failed = ScanCondition::Errored {
            exit: None,
            message: "x".into(),
        };
        slot.put(waiting(failed.clone()));
        let first = slot.take().expect("one waiting");
        assert_eq!(
            (first.report.condition.clone(), first.report.superseded),
            (failed, 1)
        );
        assert!(slot.take().is_none());
        // Its delivery fails while two newer ones arrive: the newest carries all three.
        slot.put(waiting(ScanCondition::Succeeded));
        slot.put(waiting(ScanCondition::Succeeded));
        slot.put_back(first);
        let w = slot.take().expect("the newest");
        // newer 1, the first, and the one the first had replaced
        assert_eq!(w.report.superseded, 3);
        // A failed delivery with nothing newer is tried again as it is.
        slot.put_back(w.clone());
        assert_eq!(slot.take(), Some(w));
    }
}
