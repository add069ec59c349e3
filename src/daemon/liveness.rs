//! The daemon's liveness, for the kubelet's probe: the daemon keeps a heartbeat file in its state
//! directory saying by when it will write the next one (before a wait: the wait plus slack;
//! before a scan or an initialisation: the longest a scan may take). The probe (`fio-operator
//! daemon ... --probe`, an exec probe in the same container) fails once that time has passed:
//! a daemon stuck in a scan (a read that never returns) or in its runtime is restarted, while a
//! long interval between scans is not mistaken for a hang. The operator's own check (no result
//! for 2.5 intervals: node status Errored) covers the case where the daemon is alive but its
//! results do not arrive.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Added to every wait: the probe's period and the time to write the next heartbeat.
pub const SLACK: Duration = Duration::from_secs(120);
/// The longest a scan or an initialisation may take before the daemon counts as hung.
pub const MAX_SCAN: Duration = Duration::from_secs(3600);

/// The heartbeat file in the daemon's state directory.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    path: PathBuf,
}

impl Heartbeat {
    pub fn in_dir(state: &Path) -> Heartbeat {
        Heartbeat {
            path: state.join("heartbeat"),
        }
    }

    /// The next heartbeat comes within `within`. Failing to write it is logged, not fatal: the
    /// probe then restarts a daemon that cannot even write its own tmpfs.
    pub fn expect_within(&self, within: Duration) {
        let deadline = SystemTime::now() + within;
        let secs = deadline
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        // Renamed into place (no fsync: it only matters while the pod lives).
        let tmp = self.path.with_extension("tmp");
        let r = fs::write(&tmp, format!("{secs}\n")).and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(e) = r {
            tracing::warn!("writing the heartbeat {}: {e}", self.path.display());
        }
    }

    /// The probe: `Ok` while the deadline the daemon last wrote has not passed.
    pub fn probe(&self, now: SystemTime) -> Result<(), String> {
        let text = fs::read_to_string(&self.path)
            .map_err(|e| format!("no heartbeat {}: {e}", self.path.display()))?;
        let deadline: u64 = text
            .trim()
            .parse()
            .map_err(|e| format!("heartbeat {}: {e}: {text:?}", self.path.display()))?;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if now > deadline {
            return Err(format!(
                "the daemon missed its heartbeat by {} s ({})",
                now - deadline,
                self.path.display()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_fails_once_the_promised_heartbeat_is_late() {
        let dir = tempfile::tempdir().unwrap();
        let hb = Heartbeat::in_dir(dir.path());
        assert!(hb
            .probe(SystemTime::now())
            .unwrap_err()
            .contains("no heartbeat"));
        hb.expect_within(Duration::from_secs(60));
        assert_eq!(hb.probe(SystemTime::now()), Ok(()));
        let later = SystemTime::now() + Duration::from_secs(120);
        assert!(hb
            .probe(later)
            .unwrap_err()
            .contains("missed its heartbeat"));
        fs::write(dir.path().join("heartbeat"), "garbage").unwrap();
        assert!(hb.probe(SystemTime::now()).is_err());
    }
}
