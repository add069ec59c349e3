//! Silence is noticed: a node whose daemon stops reporting (crash loop, hang, a result that
//! cannot be delivered) must not stay Succeeded forever. The operator marks its node status
//! Errored with a message saying since when it has heard nothing ([`mark_silent`]), once the
//! last result is older than [`allowance`] of the scan interval; the node's next result
//! replaces the mark as any result does. Likewise a node its FileIntegrity no longer selects
//! ([`mark_unselected`]): nobody scans it, so its last verdict must not stand.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use fio_api::{FileIntegrityNodeCondition, FileIntegrityNodeStatus, FileIntegrityScanResult};

/// How every silence mark starts (the rest names the node and the times).
pub const SILENCE: &str = "no scan result from the daemon";

/// How long a node may go without a result: a scan every `interval` seconds (counted from the
/// end of the previous one), so two intervals, plus half an interval (at least 30 s) for the
/// scans themselves.
pub fn allowance(interval: i64) -> Duration {
    let i = interval.max(1) as u64;
    Duration::from_secs(2 * i + (i / 2).max(30))
}

/// Whether `r` is a silence mark rather than something the node reported.
pub fn is_silence(r: &FileIntegrityScanResult) -> bool {
    r.condition == FileIntegrityNodeCondition::Errored && r.error_message.starts_with(SILENCE)
}

/// When `st` turns silent (its last result plus the allowance); `None` once it is marked.
pub fn silent_at(st: &FileIntegrityNodeStatus, interval: i64) -> Option<Timestamp> {
    let last = &st.spec.last_result;
    if is_silence(last) {
        return None;
    }
    let limit = k8s_openapi::jiff::SignedDuration::try_from(allowance(interval)).ok()?;
    last.last_probe_time.0.checked_add(limit).ok()
}

/// `st` with a silence mark at `now` as its last result (the latest Errored one, as a result
/// of the node would be).
pub fn mark_silent(
    st: &FileIntegrityNodeStatus,
    interval: i64,
    now: Timestamp,
) -> FileIntegrityNodeStatus {
    let last = st.spec.last_result.last_probe_time.0;
    let mut mark = FileIntegrityScanResult::new(Time(now), FileIntegrityNodeCondition::Errored);
    mark.error_message = format!(
        "{SILENCE} on node {} since {last} (scans every {interval} s; allowed {} s): is its daemon pod running?",
        st.spec.node_name,
        allowance(interval).as_secs()
    );
    let mut out = st.clone();
    out.spec.record(mark);
    out
}

/// How the mark of a node that its FileIntegrity no longer selects starts.
pub const UNSELECTED: &str = "no longer selected";

/// Whether `r` is the mark of [`mark_unselected`].
pub fn is_unselected(r: &FileIntegrityScanResult) -> bool {
    r.condition == FileIntegrityNodeCondition::Errored && r.error_message.starts_with(UNSELECTED)
}

/// `st` of a node that `fi` no longer selects (relabelled, or the selector changed): its daemon
/// is gone and nobody scans it, so its last verdict must not stand as a current `Succeeded`.
/// An Errored result at `now` saying so; the status itself is kept (the record of what the node
/// reported, as the seed keeps earlier failures).
pub fn mark_unselected(
    st: &FileIntegrityNodeStatus,
    fi: &str,
    now: Timestamp,
) -> FileIntegrityNodeStatus {
    let mut mark = FileIntegrityScanResult::new(Time(now), FileIntegrityNodeCondition::Errored);
    mark.error_message = format!(
        "{UNSELECTED} by FileIntegrity {fi} (spec.nodeSelector): node {} is not scanned any more; \
         its last result was {} at {}",
        st.spec.node_name,
        st.spec.last_result.condition.as_str(),
        st.spec.last_result.last_probe_time.0
    );
    let mut out = st.clone();
    out.spec.record(mark);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fio_api::FileIntegrityNodeStatusFields;

    fn status(at: i64, condition: FileIntegrityNodeCondition) -> FileIntegrityNodeStatus {
        let t = Time(Timestamp::from_second(at).unwrap());
        let r = FileIntegrityScanResult::new(t, condition);
        FileIntegrityNodeStatus::new(
            "fi-n1",
            FileIntegrityNodeStatusFields {
                node_name: "n1".into(),
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

    #[test]
    fn a_node_is_silent_after_two_intervals_and_a_half_then_marked_once() {
        assert_eq!(allowance(900), Duration::from_secs(2250));
        assert_eq!(allowance(10), Duration::from_secs(50));
        let st = status(1_000, FileIntegrityNodeCondition::Failed);
        let at = silent_at(&st, 10).unwrap();
        assert_eq!(at.as_second(), 1_050);
        let marked = mark_silent(&st, 10, at);
        let last = &marked.spec.last_result;
        assert!(is_silence(last), "{last:?}");
        assert!(
            last.error_message
                .contains("on node n1 since 1970-01-01T00:16:40Z"),
            "{}",
            last.error_message
        );
        // The Failed result stays among the results (its report is still the latest failure).
        assert_eq!(marked.spec.results.len(), 2);
        assert_eq!(silent_at(&marked, 10), None, "marked once");
        // A node that reports an error itself is not a silence.
        assert!(!is_silence(
            &status(1, FileIntegrityNodeCondition::Errored)
                .spec
                .last_result
        ));
    }
}
