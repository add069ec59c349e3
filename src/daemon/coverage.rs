//! What the realtime watcher covered, as each result reports it: watching or not and why not
//! everything, and the gaps (from, to, cause) during which it saw nothing. Pure: the daemon
//! opens gaps (its start, a gap the watcher reported) and closes them with the result of the
//! full scan that follows; the tests feed times.

use std::collections::VecDeque;

use fio_api::{CoverageState, RealtimeCoverage, RealtimeGap, MAX_GAPS};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The cause of the gap every daemon starts with: what happened since the node's previous
/// result is not known to it (the operator dates the gap from that result).
pub const STARTED: &str = fio_api::names::REALTIME_START_GAP;

#[derive(Debug, Clone)]
pub struct Coverage {
    /// Why not watching at all (`None`: watching).
    off: Option<String>,
    /// Why watching is partial (filesystems not watched, directories not mapped).
    partial: Vec<String>,
    /// Newest first, at most [`MAX_GAPS`].
    gaps: VecDeque<RealtimeGap>,
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

impl Coverage {
    /// A daemon that watches (`off` is `None`) or not, started at `started`: its first gap
    /// opens then.
    pub fn new(off: Option<String>, partial: Vec<String>, started: Timestamp) -> Coverage {
        let mut c = Coverage {
            off,
            partial,
            gaps: VecDeque::new(),
        };
        if c.off.is_none() {
            c.open(started, STARTED.to_owned());
        }
        c
    }

    /// Why some of the tree is not watched now (replacing the previous reasons of that kind).
    pub fn set_partial(&mut self, partial: Vec<String>) {
        self.partial = partial;
    }

    /// A gap opened at `from`; while one is open, a new cause adds nothing (the full scan that
    /// closes it covers both).
    pub fn open(&mut self, from: Timestamp, cause: String) {
        if self.gaps.front().is_some_and(|g| g.to.is_none()) {
            return;
        }
        self.gaps.push_front(RealtimeGap {
            from: time(from),
            to: None,
            cause: fio_core::changes::cut(&cause, RealtimeCoverage::MAX_TEXT),
        });
        self.gaps.truncate(MAX_GAPS);
    }

    /// A full scan reported at `at`: the open gap closes.
    pub fn scanned(&mut self, at: Timestamp) {
        if let Some(g) = self.gaps.front_mut().filter(|g| g.to.is_none()) {
            g.to = Some(time(at));
        }
    }

    /// What a result says (`None` when realtime detection was turned off by the spec, which
    /// the operator knows).
    pub fn report(&self) -> RealtimeCoverage {
        let open = self.gaps.front().is_some_and(|g| g.to.is_none());
        let (state, reason) = match (&self.off, open || !self.partial.is_empty()) {
            (Some(why), _) => (CoverageState::Off, why.clone()),
            (None, true) => (CoverageState::Partial, self.partial.join("; ")),
            (None, false) => (CoverageState::Full, String::new()),
        };
        RealtimeCoverage {
            state,
            reason: fio_core::changes::cut(&reason, RealtimeCoverage::MAX_TEXT),
            gaps: self.gaps.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn a_gap_opens_at_start_and_on_overflow_and_closes_with_the_next_full_scan() {
        let mut c = Coverage::new(None, Vec::new(), at(0));
        let r = c.report();
        assert_eq!(r.state, CoverageState::Partial, "the start gap is open");
        assert_eq!(r.gaps[0].cause, STARTED);
        c.scanned(at(5));
        let r = c.report();
        assert_eq!(r.state, CoverageState::Full);
        assert_eq!(r.gaps[0].to, Some(Time(at(5))));

        c.open(at(10), "the kernel's event queue overflowed".into());
        c.open(at(11), "more".into());
        let r = c.report();
        assert_eq!((r.state, r.gaps.len()), (CoverageState::Partial, 2));
        assert_eq!(r.gaps[0].cause, "the kernel's event queue overflowed");
        c.scanned(at(12));
        assert_eq!(c.report().gaps[0].to, Some(Time(at(12))));
        assert_eq!(c.report().gaps[1].cause, STARTED, "newest first");

        for i in 0..20 {
            c.open(at(20 + i), format!("gap {i}"));
            c.scanned(at(20 + i));
        }
        assert_eq!(c.report().gaps.len(), MAX_GAPS, "bounded");
        assert!(c.report().bounded());
    }

    #[test]
    fn off_and_partial_say_why() {
        let off = Coverage::new(Some("no fanotify".into()), Vec::new(), at(0));
        let r = off.report();
        assert_eq!(
            (r.state, r.reason.as_str()),
            (CoverageState::Off, "no fanotify")
        );
        assert!(r.gaps.is_empty());
        let mut p = Coverage::new(None, vec!["/hostroot/boot: EOPNOTSUPP".into()], at(0));
        p.scanned(at(1));
        assert_eq!(p.report().state, CoverageState::Partial);
        p.set_partial(Vec::new());
        assert_eq!(p.report().state, CoverageState::Full);
    }
}
