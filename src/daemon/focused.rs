//! Between scans: what the realtime watcher names is re-measured at once (a focused check from
//! the last comparison) and reported when the verdict or the change list moved. A gap in what
//! the watcher saw ends the wait: the next cycle scans everything.
//!
//! Through an altered view of the host (a mount only the daemon sees, issue 22) a focused check
//! would read what the mount shows: instead the result is `Errored` naming the mount and the
//! paths written meanwhile with their writers, and those paths stay held until a result lists
//! them (found by realtime, with their writers) or the node is back at its baseline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fio_api::result::ScanFigures;
use fio_api::{FileIntegrity, Writer};
use fio_core::focus::Focus;
use fio_core::runner::{say, Verdict};

use super::{cycle, liveness, observe, realtime, sent_digest, small, Daemon, Initialised};

/// Paths written while the view was altered, kept for the result that lists them.
pub const MAX_HELD: usize = fio_core::runner::LISTED_CHANGES;
/// Written paths named in an `Errored` message (then how many more).
const NAMED_IN_MESSAGE: usize = 4;

/// Paths as the watcher named them (below the host root) -> as results list them.
pub(super) fn as_listed(
    paths: Vec<(Vec<u8>, Vec<Writer>)>,
    root: &[u8],
) -> Vec<(String, Vec<Writer>)> {
    paths
        .into_iter()
        .map(|(p, w)| {
            let shown = fio_core::changes::escape_path(fio_core::changes::on_node(&p, root));
            (shown, w)
        })
        .collect()
}

/// The `Errored` message of an altered view, with what was written meanwhile.
pub fn altered_message(view: &str, written: &[(String, Vec<Writer>)]) -> String {
    let mut named: Vec<String> = written
        .iter()
        .take(NAMED_IN_MESSAGE)
        .map(|(p, w)| {
            let who: Vec<String> = w.iter().map(Writer::describe).collect();
            if who.is_empty() {
                p.clone()
            } else {
                format!("{p} by {}", who.join(" and "))
            }
        })
        .collect();
    if written.len() > NAMED_IN_MESSAGE {
        named.push(format!("{} more", written.len() - NAMED_IN_MESSAGE));
    }
    format!(
        "{view}; written meanwhile (seen by realtime): {}",
        named.join(", ")
    )
}

/// `held` with `written` added: a path once, its writers merged, at most [`MAX_HELD`] paths.
pub fn hold(held: &mut Vec<(String, Vec<Writer>)>, written: &[(String, Vec<Writer>)]) {
    for (p, w) in written {
        let n = held.len();
        match held.iter_mut().find(|(h, _)| h == p) {
            Some((_, ws)) => {
                for w in w {
                    if ws.len() < fio_api::MAX_WRITERS && !ws.contains(w) {
                        ws.push(w.clone());
                    }
                }
            }
            None if n < MAX_HELD => held.push((p.clone(), w.clone())),
            None => {}
        }
    }
}

impl Daemon {
    /// Map the directories the scan enters for the watcher (after each full scan: its walk
    /// is what the map must follow).
    pub(super) async fn rewatch(&mut self) -> anyhow::Result<()> {
        let Some(w) = self.watcher.clone() else {
            return Ok(());
        };
        let s = self.scanner.clone();
        let seen = tokio::task::spawn_blocking(move || {
            s.walk().ok().map(|(walk, rules)| w.watch(&walk, rules))
        })
        .await?;
        if let (Some((n, all)), Some(c), Some(w)) = (seen, &mut self.coverage, &self.watcher) {
            tracing::debug!("realtime: {n} directories watched");
            let mut partial = w.unmarked.to_vec();
            if !all {
                partial.push(format!(
                    "more than {} directories: the rest is covered by scans only",
                    realtime::MAX_DIRS
                ));
            }
            c.set_partial(partial);
        }
        Ok(())
    }

    /// [`Daemon::wait`], checking at once what the watcher reports: a focused check of the
    /// paths it named, or, after a gap, an early return (the next cycle scans everything).
    pub(super) async fn watch(
        &mut self,
        fi: &FileIntegrity,
        timeout: Duration,
        wake: impl Fn(&FileIntegrity) -> bool,
    ) -> anyhow::Result<()> {
        let Some(watcher) = self.watcher.clone() else {
            return self.wait(timeout, wake).await;
        };
        self.hb.expect_within(timeout + liveness::SLACK);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if watcher.has_pending() {
                tokio::time::sleep(realtime::DEBOUNCE).await;
                let pending = watcher.take();
                if let Some((from, cause)) = &pending.gap {
                    self.open_gap(*from, cause);
                    say(&format!(
                        "node {}: realtime gap ({cause}): scanning everything",
                        self.opts.node_name
                    ));
                    // No comparison to start from: the next check is a full scan, even one
                    // after an acceptance.
                    self.standing = None;
                    return Ok(());
                }
                if pending.rebuild {
                    self.rewatch().await?;
                }
                if !pending.paths.is_empty() && !self.realtime_check(fi, pending).await? {
                    return Ok(());
                }
                self.hb.expect_within(
                    deadline.saturating_duration_since(tokio::time::Instant::now())
                        + liveness::SLACK,
                );
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                _ = watcher.changed() => {}
                changed = self.followed.changed() => {
                    anyhow::Context::context(changed, "the FileIntegrity watch ended")?;
                    if self.followed.borrow_and_update().as_deref().is_some_and(&wake) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Record in the coverage a gap in what the watcher saw, from `from`.
    fn open_gap(&mut self, from: std::time::SystemTime, cause: &str) {
        if let (Some(c), Ok(from)) = (
            &mut self.coverage,
            k8s_openapi::jiff::Timestamp::try_from(from),
        ) {
            c.open(from, cause.to_owned());
        }
    }

    /// [`Daemon::wait`] while scans are paused: what the watcher names is held with its
    /// writers for the first result after the pause (a gap is recorded; that result comes
    /// from a full scan anyway).
    pub(super) async fn hold_while_paused(
        &mut self,
        timeout: Duration,
        lifted: impl Fn(&FileIntegrity) -> bool,
    ) -> anyhow::Result<()> {
        let Some(watcher) = self.watcher.clone() else {
            return self.wait(timeout, lifted).await;
        };
        self.hb.expect_within(timeout + liveness::SLACK);
        let deadline = tokio::time::Instant::now() + timeout;
        let root = self.opts.hostroot.as_os_str().as_encoded_bytes().to_vec();
        loop {
            if watcher.has_pending() {
                let pending = watcher.take();
                if let Some((from, cause)) = &pending.gap {
                    self.open_gap(*from, cause);
                }
                if pending.rebuild {
                    self.rewatch().await?;
                }
                hold(
                    &mut self.held,
                    &as_listed(pending.paths.into_iter().collect(), &root),
                );
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                _ = watcher.changed() => {}
                changed = self.followed.changed() => {
                    anyhow::Context::context(changed, "the FileIntegrity watch ended")?;
                    if self.followed.borrow_and_update().as_deref().is_some_and(&lifted) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// A focused check of the paths the watcher named, reported when its verdict or changes
    /// differ from the last result. False: no comparison to start from, scan everything.
    async fn realtime_check(
        &mut self,
        fi: &FileIntegrity,
        pending: realtime::Pending,
    ) -> anyhow::Result<bool> {
        let root = self.opts.hostroot.as_os_str().as_encoded_bytes().to_vec();
        let paths: Vec<Vec<u8>> = pending.paths.keys().cloned().collect();
        let written = as_listed(pending.paths.into_iter().collect(), &root);
        let init = Initialised {
            failed: None,
            database: None,
            completed: self.completed,
            accepted: None,
            moved: Vec::new(),
        };
        // The view first: through an altered one the paths would read what a mount shows.
        if let Err(view) = observe(&self.checker).await? {
            hold(&mut self.held, &written);
            let verdict = Verdict::Errored {
                exit: None,
                message: altered_message(&view, &self.held),
            };
            if self.last_sent.as_ref() != Some(&(verdict.condition(), sent_digest(&verdict))) {
                self.report(fi, verdict, None, None, &init, Some(&written))
                    .await?;
            }
            return Ok(true);
        }
        let Some(standing) = self.standing.take() else {
            hold(&mut self.held, &written);
            return Ok(false);
        };
        if !cycle::keeps_result(
            self.followed.borrow().as_deref(),
            &self.opts.node_name,
            false,
        ) {
            // Paused: named for the first result after the pause.
            hold(&mut self.held, &written);
            self.standing = Some(standing);
            return Ok(true);
        }
        let focus = Arc::new(Focus::new(paths));
        let (s, f) = (self.scanner.clone(), focus.clone());
        let started = Instant::now();
        let c =
            tokio::task::spawn_blocking(move || s.check_focused(f, standing, &|_| Ok(()))).await?;
        self.standing = c.comparison.filter(small);
        let key = (c.verdict.condition(), sent_digest(&c.verdict));
        if self.last_sent.as_ref() == Some(&key) {
            tracing::debug!("realtime check of {} paths: nothing new", focus.len());
            return Ok(true);
        }
        let figures = c.files.map(|files| ScanFigures {
            seconds: started.elapsed().as_secs_f64(),
            files,
        });
        self.report(fi, c.verdict, c.database, figures, &init, Some(&written))
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fio_api::WriterState;

    fn writer(pid: i64) -> Writer {
        Writer {
            state: WriterState::Attributed,
            pid: Some(pid),
            comm: "sh".into(),
            ..Writer::default()
        }
    }

    #[test]
    fn held_paths_merge_their_writers_and_stay_bounded() {
        let mut held = Vec::new();
        hold(&mut held, &[("/etc/a".into(), vec![writer(1)])]);
        hold(
            &mut held,
            &[
                ("/etc/a".into(), vec![writer(1), writer(2)]),
                ("/etc/b".into(), vec![]),
            ],
        );
        assert_eq!(
            held,
            [
                ("/etc/a".to_owned(), vec![writer(1), writer(2)]),
                ("/etc/b".to_owned(), vec![])
            ]
        );
        let many: Vec<_> = (0..2 * MAX_HELD)
            .map(|i| (format!("/etc/f{i}"), vec![]))
            .collect();
        hold(&mut held, &many);
        assert_eq!(held.len(), MAX_HELD);
    }

    #[test]
    fn an_altered_view_names_what_was_written_meanwhile() {
        let view = "view of the host altered: /etc/x mounted only in the daemon's view";
        let m = altered_message(view, &[("/etc/x".into(), vec![writer(7)])]);
        assert_eq!(
            m,
            format!("{view}; written meanwhile (seen by realtime): /etc/x by pid 7 sh")
        );
        let many: Vec<_> = (0..6).map(|i| (format!("/etc/f{i}"), vec![])).collect();
        let m = altered_message(view, &many);
        assert!(
            m.ends_with("/etc/f0, /etc/f1, /etc/f2, /etc/f3, 2 more"),
            "{m}"
        );
    }
}
