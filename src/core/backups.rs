//! Backups of the database and log, kept by every initialisation as AIDE's users and the
//! operator expect: write the new database first, then keep the old database and log as
//! timestamped backups (never overwriting one), move the new database into place, start an
//! empty log, and prune the oldest backups.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

impl BackupError {
    pub fn exit(&self) -> crate::exit::Exit {
        crate::exit::Exit::Write
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// `backup-YYYYMMDDTHH_MM_SS`, the suffix upstream's daemon uses (local time).
pub fn backup_suffix(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = crate::timefmt::local_fields(crate::timefmt::epoch_secs(t));
    format!("backup-{y:04}{m:02}{d:02}T{hh:02}_{mm:02}_{ss:02}")
}

/// Delete the oldest `<file>.backup-*` until at most `keep` remain. The timestamp in the name
/// sorts chronologically, so the name decides, not the mtime (which a copy could change).
pub fn prune_backups(file: &Path, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    prune_backups_except(file, keep, None)
}

/// [`prune_backups`], never deleting `spare` (the backup a rotation just took): neither a clock
/// set back nor backup names with future timestamps planted on the node can make a re-init
/// delete the database it replaced, and `keep = 0` still leaves that one.
fn prune_backups_except(
    file: &Path,
    keep: usize,
    spare: Option<&Path>,
) -> Result<Vec<PathBuf>, BackupError> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(base) = file.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(vec![]);
    };
    let prefix = format!("{base}.backup-");
    let mut backups: Vec<String> = std::fs::read_dir(dir)
        .map_err(io_err(dir, "list backups"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .filter(|n| spare.and_then(Path::file_name) != Some(std::ffi::OsStr::new(n)))
        .collect();
    backups.sort();
    let keep = keep.saturating_sub(usize::from(spare.is_some()));
    let mut removed = Vec::new();
    while backups.len() > keep {
        let p = dir.join(backups.remove(0));
        std::fs::remove_file(&p).map_err(io_err(&p, "remove old backup"))?;
        removed.push(p);
    }
    Ok(removed)
}

/// What a rotation did, for logs and tests.
#[derive(Debug, Default)]
pub struct Rotation {
    pub backups: Vec<PathBuf>,
    pub pruned: Vec<PathBuf>,
}

/// Put a freshly written database `new_db` in place of `db`, backing up `db` and `log` first.
/// The new log is an empty 0644 file. Call only after `new_db` was written completely.
///
/// Crash-safe at every step: the backups are hard links taken while `db` and `log` stay in
/// place, and each is then replaced by a rename, so a process killed anywhere in between leaves
/// the node with the old database or the new one under `db` (never none: a daemon that found
/// none would initialise a baseline from whatever the files are now), and every backup whole.
/// Each step is made durable (directory fsync) before the next; an fsync error is an error.
pub fn rotate(
    new_db: &Path,
    db: &Path,
    log: Option<&Path>,
    max_backups: usize,
) -> Result<Rotation, BackupError> {
    rotate_in_steps(new_db, db, log, max_backups, &mut |_| {})
}

/// [`rotate`], calling `done` after each step that changes the directory (the tests stop it
/// there, as a crash would).
fn rotate_in_steps(
    new_db: &Path,
    db: &Path,
    log: Option<&Path>,
    max_backups: usize,
    done: &mut dyn FnMut(&'static str),
) -> Result<Rotation, BackupError> {
    let now = SystemTime::now();
    let mut r = Rotation::default();
    let db_backup = link_to_backup(db, now)?;
    done("database backed up");
    r.backups.extend(db_backup.clone());
    let mut log_backup = None;
    if let Some(log) = log {
        log_backup = link_to_backup(log, now)?;
        done("log backed up");
        r.backups.extend(log_backup.clone());
    }
    sync_dir(db)?;
    std::fs::rename(new_db, db).map_err(io_err(db, "move new database into place"))?;
    done("new database in place");
    sync_dir(db)?;
    if let Some(log) = log {
        crate::atomic::replace_file(log, b"", 0o644).map_err(io_err(log, "start empty log"))?;
        done("empty log");
    }
    r.pruned
        .extend(prune_backups_except(db, max_backups, db_backup.as_deref())?);
    done("database backups pruned");
    if let Some(log) = log {
        r.pruned.extend(prune_backups_except(
            log,
            max_backups,
            log_backup.as_deref(),
        )?);
        done("log backups pruned");
    }
    sync_dir(db)?;
    Ok(r)
}

/// Hard-link `file` as `<file>.backup-<time>` (never replacing an existing backup; on a clash
/// the next free second), leaving `file` where it is. None if `file` does not exist.
fn link_to_backup(file: &Path, now: SystemTime) -> Result<Option<PathBuf>, BackupError> {
    if std::fs::symlink_metadata(file).is_err() {
        return Ok(None);
    }
    for i in 0..3600 {
        let target = PathBuf::from(format!(
            "{}.{}",
            file.display(),
            backup_suffix(now + Duration::from_secs(i))
        ));
        match std::fs::hard_link(file, &target) {
            Ok(()) => return Ok(Some(target)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(file, "back up")(e)),
        }
    }
    Err(io_err(file, "back up")(io::Error::other(
        "no free backup name",
    )))
}

/// Make the directory entries of `file`'s directory durable (renames, links, removals).
fn sync_dir(file: &Path) -> Result<(), BackupError> {
    crate::atomic::sync_parent(file).map_err(io_err(file, "fsync its directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 22: a re-init stopped after any of its steps (a crash) leaves the old database or
    /// the new one in place, never none, and every backup whole; once the new one is in place,
    /// the old one is a backup.
    #[test]
    fn a_rotation_stopped_at_any_step_leaves_a_baseline_and_whole_backups() {
        let mut stop_at = 0;
        loop {
            let d = tempfile::tempdir().unwrap();
            let (db, log, new) = (
                d.path().join("aide.db.gz"),
                d.path().join("aide.log"),
                d.path().join("aide.db.gz.new"),
            );
            std::fs::write(&db, "old").unwrap();
            std::fs::write(&log, "old log").unwrap();
            std::fs::write(
                d.path().join("aide.db.gz.backup-20000101T00_00_00"),
                "older",
            )
            .unwrap();
            std::fs::write(&new, "new").unwrap();
            let mut steps = 0;
            let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rotate_in_steps(&new, &db, Some(&log), 1, &mut |step| {
                    steps += 1;
                    if steps > stop_at {
                        panic!("stopped after {step}");
                    }
                })
            }))
            .is_err();
            let read = |p: &Path| std::fs::read_to_string(p).unwrap();
            let now = read(&db);
            assert!(
                now == "old" || now == "new",
                "step {stop_at}: database {now:?}"
            );
            let backups: Vec<(String, String)> = std::fs::read_dir(d.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().contains(".backup-"))
                .map(|p| {
                    (
                        p.file_name().unwrap().to_string_lossy().into_owned(),
                        read(&p),
                    )
                })
                .collect();
            for (name, content) in &backups {
                let whole = if name.starts_with("aide.db.gz") {
                    ["old", "older"].contains(&content.as_str())
                } else {
                    content == "old log"
                };
                assert!(whole, "step {stop_at}: {name} holds {content:?}");
            }
            if now == "new" {
                assert!(
                    backups
                        .iter()
                        .any(|(n, c)| n.starts_with("aide.db.gz") && c == "old"),
                    "step {stop_at}: the replaced baseline is not kept: {backups:?}"
                );
            }
            if !stopped {
                assert_eq!(now, "new");
                break;
            }
            stop_at += 1;
        }
        assert!(stop_at >= 6, "only {stop_at} steps observed");
    }

    /// Issue 11, point 4: backups planted with future timestamps (or a clock set back) sort
    /// after the real one; the re-init still keeps the database it replaced, even at keep 0.
    #[test]
    fn a_rotation_never_prunes_the_backup_it_took() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("aide.db.gz");
        std::fs::write(&db, "trusted").unwrap();
        for i in 0..3 {
            std::fs::write(
                d.path()
                    .join(format!("aide.db.gz.backup-2999010{i}T00_00_00")),
                "planted",
            )
            .unwrap();
        }
        let new = d.path().join("aide.db.gz.new");
        for keep in [1, 0] {
            std::fs::write(&new, "new").unwrap();
            let r = rotate(&new, &db, None, keep).unwrap();
            let taken = &r.backups[0];
            assert_eq!(
                std::fs::read_to_string(taken).unwrap(),
                "trusted",
                "keep {keep}"
            );
            assert!(!r.pruned.contains(taken), "keep {keep}: {:?}", r.pruned);
            std::fs::write(&db, "trusted").unwrap();
            std::fs::remove_file(taken).unwrap();
        }
    }

    #[test]
    fn backups_never_overwrite_and_are_pruned() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("aide.db.gz");
        let log = d.path().join("aide.log");
        for i in 0..4 {
            let new = d.path().join("aide.db.gz.new");
            std::fs::write(&new, format!("db {i}")).unwrap();
            std::fs::write(&log, format!("log {i}")).unwrap();
            rotate(&new, &db, Some(&log), 2).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&db).unwrap(), "db 3");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let db_backups: Vec<_> = names
            .iter()
            .filter(|n| n.starts_with("aide.db.gz.backup-"))
            .collect();
        let log_backups: Vec<_> = names
            .iter()
            .filter(|n| n.starts_with("aide.log.backup-"))
            .collect();
        assert_eq!(db_backups.len(), 2, "{names:?}");
        assert_eq!(log_backups.len(), 2, "{names:?}");
        // The kept backups are the newest: db 1 and db 2 (db 0 was pruned), none overwritten.
        let kept: Vec<String> = db_backups
            .iter()
            .map(|n| std::fs::read_to_string(d.path().join(n)).unwrap())
            .collect();
        assert_eq!(kept, ["db 1", "db 2"]);
        let suffix = &db_backups[0]["aide.db.gz.".len()..];
        assert!(
            suffix.len() == "backup-20200917T15_07_38".len() && suffix.as_bytes()[15] == b'T',
            "{suffix}"
        );
    }
}
