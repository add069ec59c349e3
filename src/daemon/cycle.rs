//! What the daemon does next, decided from what it has read: its FileIntegrity, the node's
//! daemon files (whose they are, the last re-init completed) and the AIDE configuration. Pure:
//! the I/O loop in `lib.rs` reads, asks [`next`], acts, and asks again; the tests feed objects.
//!
//! One cycle, once the FileIntegrity followed exists: paused by the holdoff annotation → wait until
//! released (no scan, no re-init: the operator requests the re-init in the write that ends the
//! pause); otherwise read the node's files and the configuration, then refuse (another
//! FileIntegrity holds the files), wait for the configuration (none yet, or a re-init request
//! made for a configuration not published yet), or scan, initialising first when a re-init is
//! due (requested and not completed, or files taken over from a deleted owner).

use fio_api::accept::{AcceptPath, AcceptRequests};
use fio_api::result::{ScanCondition, ScanReport};
use fio_api::{aideconf, FileIntegrity, Holdoff, ReinitRequests};
use kube::ResourceExt;

/// Whose the node's daemon files are, for the FileIntegrity followed (see [`crate::claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    /// Claimed by a FileIntegrity that no longer exists: take them over.
    Gone,
    /// Another FileIntegrity's: the message of the Errored result.
    Held(String),
}

/// What a cycle read from the node and the cluster, once it knows it will scan or refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub ownership: Ownership,
    /// The re-init id this node completed for this FileIntegrity (0: none).
    pub completed: i64,
    /// The acceptance request id this node completed for this FileIntegrity (0: none).
    pub accepted: i64,
    /// The rendered AIDE configuration (empty: not published yet).
    pub config: String,
}

/// The next thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Paused by the holdoff annotation: wait until it is lifted.
    Pause,
    /// Read the node's files and the configuration ([`Read`]), then ask again.
    Read,
    /// The files belong to another FileIntegrity that exists: report Errored with this
    /// message, and wait an interval.
    Refuse(String),
    /// The configuration ConfigMap is missing or empty.
    AwaitConfig,
    /// Re-init `wanted` was requested for a configuration not published yet: its
    /// configuration comes in a moment (the operator writes it first).
    AwaitRequestedConfig {
        wanted: i64,
    },
    Scan(Scan),
}

/// A scan, and the initialisation before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub init: Init,
    /// The re-init id the result reports unless this scan completes one.
    pub completed: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// Only a node without a database is initialised (its first baseline).
    IfMissing,
    /// A re-initialisation, recorded as completing `id` once done.
    Reinit {
        id: i64,
        /// The files come from a deleted owner: claim them once re-initialised.
        take_over: bool,
        /// Keep every backup: re-inits nobody asked for (a node update's, a take-over).
        keep_every_backup: bool,
    },
    /// The baseline moved for these paths only (issue 28), recorded as completing acceptance
    /// `id` once done.
    Accept { id: i64, paths: Vec<AcceptPath> },
}

/// The step after reading `fi` (the object followed) and, once asked for, `read`.
pub fn next(fi: &FileIntegrity, node: &str, read: Option<&Read>) -> Step {
    if Holdoff::of(fi).holds(node) {
        return Step::Pause;
    }
    let Some(read) = read else {
        return Step::Read;
    };
    let take_over = match &read.ownership {
        Ownership::Ours => false,
        Ownership::Gone => true,
        Ownership::Held(message) => return Step::Refuse(message.clone()),
    };
    if read.config.is_empty() {
        return Step::AwaitConfig;
    }
    let requests = ReinitRequests::in_force(fi).unwrap_or_default();
    let wanted = requests.requested(node);
    let requested = wanted > read.completed;
    if requested && requests.config != aideconf::config_hash(&read.config) {
        return Step::AwaitRequestedConfig { wanted };
    }
    // A re-init takes everything in: an acceptance waits for the cycle after it.
    let acceptance = (!requested && !take_over)
        .then(|| requested_acceptance(fi, node, read.accepted))
        .flatten();
    let init = if requested || take_over {
        Init::Reinit {
            id: wanted,
            take_over,
            keep_every_backup: take_over || (requested && requests.keeps_backups(node, wanted)),
        }
    } else if let Some(r) = acceptance {
        Init::Accept {
            id: r.id,
            paths: r.paths,
        }
    } else {
        Init::IfMissing
    };
    Step::Scan(Scan {
        init,
        completed: read.completed,
    })
}

/// Whether a finished scan's result is reported, given the object as it is now: not when
/// scans were paused while it ran (the update may have changed files under it already),
/// unless it took a baseline, which the operator must learn of.
pub fn keeps_result(fi_now: Option<&FileIntegrity>, node: &str, initialized: bool) -> bool {
    initialized || !fi_now.is_some_and(|fi| Holdoff::of(fi).holds(node))
}

/// The acceptance request for `node` newer than the one it `accepted`, if any (a record that
/// does not parse asks nothing: the operator writes it, and says so).
fn requested_acceptance(
    fi: &FileIntegrity,
    node: &str,
    accepted: i64,
) -> Option<fio_api::accept::AcceptRequest> {
    AcceptRequests::of(fi)
        .ok()
        .flatten()?
        .for_node(node)
        .filter(|r| r.id > accepted)
        .cloned()
}

/// Whether `fi` ends the wait between scans early: a re-init or acceptance request for `node`
/// newer than the one it `completed` or `accepted`, or a pause for a node update (the pause
/// then names what the update writes, see `Daemon::hold_while_paused`).
pub fn wakes_early(fi: &FileIntegrity, node: &str, completed: i64, accepted: i64) -> bool {
    ReinitRequests::in_force(fi).is_some_and(|r| r.requested(node) > completed)
        || requested_acceptance(fi, node, accepted).is_some()
        || Holdoff::of(fi).holds(node)
}

/// The Errored result of a cycle in which the daemon refused to scan (`message` says why).
pub fn refused(
    fi: &FileIntegrity,
    node: &str,
    message: String,
    reinit_id: Option<i64>,
) -> ScanReport {
    ScanReport {
        owner: fi.name_any(),
        node: node.to_owned(),
        condition: ScanCondition::Errored {
            exit: None,
            message,
        },
        reinit_id,
        database: None,
        initialized: false,
        figures: None,
        superseded: 0,
        view: None,
        realtime: None,
        accepted: None,
    }
}

#[cfg(test)]
mod tests;
