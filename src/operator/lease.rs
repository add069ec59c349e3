//! Leader election with a `coordination.k8s.io` Lease, as controller-runtime does it: one
//! operator reconciles; another replica (an upgrade's new pod, a second replica) waits until
//! the holder stops renewing. Two operators fighting over the DaemonSet and the configuration
//! hash would re-initialise every node on each flip.
//!
//! Expiry is judged by how long the record has stayed unchanged as this process observed it
//! (not by comparing clocks with the holder's `renewTime`). [`decide`] is the rule; [`Lock`]
//! does the reads and writes.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;

/// The Lease's name in the operator's namespace.
pub const LEASE_NAME: &str = "file-integrity-operator-lock";
/// How long a holder that stopped renewing keeps the lease.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews, and a candidate looks.
pub const RETRY: Duration = Duration::from_secs(3);

/// What to do with the lease as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// There is none: create it.
    Create,
    /// Ours: renew it.
    Renew,
    /// Another holder's, unchanged for longer than its duration (or released): take it.
    TakeOver,
    /// Another holder's, live.
    Wait,
}

/// The rule: `unchanged_for` is how long the record has been the same as this process saw it.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, unchanged_for: Duration) -> Decision {
    let Some(spec) = spec else {
        return Decision::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(h) if h == me => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) => {
            // The record's duration is whoever wrote it last's word: a holder that stopped
            // renewing keeps the lease at most for our own constant, whatever it wrote.
            let duration = spec
                .lease_duration_seconds
                .map_or(LEASE_DURATION, |s| Duration::from_secs(s.max(1) as u64))
                .min(LEASE_DURATION);
            if unchanged_for > duration {
                Decision::TakeOver
            } else {
                Decision::Wait
            }
        }
    }
}

/// This process's side of the election.
pub struct Lock {
    api: Api<Lease>,
    me: String,
    /// The record last seen (holder, renew time) and since when.
    seen: Option<(Option<String>, Option<Timestamp>, Instant)>,
}

impl Lock {
    pub fn new(api: Api<Lease>, me: String) -> Lock {
        Lock {
            api,
            me,
            seen: None,
        }
    }

    /// Wait until this process holds the lease.
    pub async fn acquire(&mut self) {
        let mut waiting = false;
        loop {
            match self.try_hold().await {
                Ok(true) => {
                    tracing::info!("leader election: {} holds lease {LEASE_NAME}", self.me);
                    return;
                }
                Ok(false) if !waiting => {
                    tracing::info!("leader election: waiting for lease {LEASE_NAME}");
                    waiting = true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("leader election: lease {LEASE_NAME}: {e}"),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Renew until the lease is lost (another holder took it, or renewals failed for longer
    /// than its duration); returns then, and the process must stop reconciling.
    pub async fn hold(mut self) -> String {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(RETRY).await;
            match self.try_hold().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => return format!("lease {LEASE_NAME} taken by another operator"),
                Err(e) if renewed.elapsed() > LEASE_DURATION => {
                    return format!("lease {LEASE_NAME} not renewed for {LEASE_DURATION:?}: {e}")
                }
                Err(e) => tracing::warn!("leader election: renewing lease {LEASE_NAME}: {e}"),
            }
        }
    }

    /// One look: create, renew or take over the lease when the rule says so. `Ok(true)` when
    /// this process holds it afterwards; a write that lost a race is `Ok(false)`.
    async fn try_hold(&mut self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(LEASE_NAME).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let record = (
            spec.and_then(|s| s.holder_identity.clone()),
            spec.and_then(|s| s.renew_time.as_ref().map(|t| t.0)),
        );
        let unchanged_for = match &self.seen {
            Some((h, r, at)) if (h, r) == (&record.0, &record.1) => at.elapsed(),
            _ => {
                self.seen = Some((record.0.clone(), record.1, Instant::now()));
                Duration::ZERO
            }
        };
        let now = MicroTime(Timestamp::now());
        let write = match decide(spec, &self.me, unchanged_for) {
            Decision::Wait => return Ok(false),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(LEASE_NAME.into()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec_from(None, &now)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            d => {
                let mut lease = current.unwrap_or_default();
                let mut spec = self.spec_from(lease.spec.as_ref(), &now);
                if d == Decision::TakeOver {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                lease.spec = Some(spec);
                // At the resourceVersion read: a competing write makes this one fail (409).
                self.api
                    .replace(LEASE_NAME, &PostParams::default(), &lease)
                    .await
            }
        };
        match write {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn spec_from(&self, old: Option<&LeaseSpec>, now: &MicroTime) -> LeaseSpec {
        let mut spec = old.cloned().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.me.as_str()) {
            spec.acquire_time = Some(now.clone());
        }
        spec.holder_identity = Some(self.me.clone());
        spec.lease_duration_seconds = Some(LEASE_DURATION.as_secs() as i32);
        spec.renew_time = Some(now.clone());
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(h: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(h.into()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn one_holder_at_a_time_until_it_stops_renewing() {
        let s = Duration::from_secs;
        assert_eq!(decide(None, "a", s(0)), Decision::Create);
        assert_eq!(decide(Some(&held_by("a")), "a", s(100)), Decision::Renew);
        assert_eq!(decide(Some(&held_by("b")), "a", s(14)), Decision::Wait);
        assert_eq!(decide(Some(&held_by("b")), "a", s(16)), Decision::TakeOver);
        assert_eq!(decide(Some(&held_by("")), "a", s(0)), Decision::TakeOver);
    }

    #[test]
    fn a_record_claiming_a_huge_duration_keeps_the_lease_no_longer_than_ours() {
        let s = Duration::from_secs;
        let squatter = LeaseSpec {
            lease_duration_seconds: Some(i32::MAX),
            ..held_by("b")
        };
        assert_eq!(decide(Some(&squatter), "a", s(14)), Decision::Wait);
        assert_eq!(
            decide(Some(&squatter), "a", LEASE_DURATION + s(1)),
            Decision::TakeOver
        );
        let short = LeaseSpec {
            lease_duration_seconds: Some(5),
            ..held_by("b")
        };
        assert_eq!(decide(Some(&short), "a", s(6)), Decision::TakeOver);
    }
}
