//! Re-initialisation as the operator does it: write the new database first, then move the old
//! database and log to timestamped backups (never overwriting one), move the new database into
//! place, start an empty log, and prune the oldest backups.

use nix::fcntl::{renameat2, RenameFlags};
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum ReinitError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

impl ReinitError {
    pub fn exit(&self) -> crate::exit::Exit {
        crate::exit::Exit::Write
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> ReinitError + 'a {
    move |source| ReinitError::Io {
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

/// Move `file` to `<file>.backup-<time>` without ever replacing an existing backup: on a clash
/// (two re-inits within a second) the next free second is taken. Returns None if `file` does
/// not exist.
pub fn move_to_backup(file: &Path, now: SystemTime) -> Result<Option<PathBuf>, ReinitError> {
    if std::fs::symlink_metadata(file).is_err() {
        return Ok(None);
    }
    for i in 0..3600 {
        let target = PathBuf::from(format!(
            "{}.{}",
            file.display(),
            backup_suffix(now + Duration::from_secs(i))
        ));
        match renameat2(None, file, None, &target, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(Some(target)),
            Err(nix::errno::Errno::EEXIST) => continue,
            Err(e) => {
                return Err(ReinitError::Io {
                    path: file.into(),
                    op: "move to backup",
                    source: e.into(),
                })
            }
        }
    }
    Err(ReinitError::Io {
        path: file.into(),
        op: "move to backup",
        source: io::Error::other("no free backup name"),
    })
}

/// Delete the oldest `<file>.backup-*` until at most `keep` remain. The timestamp in the name
/// sorts chronologically, so the name decides, not the mtime (which a copy could change).
pub fn prune_backups(file: &Path, keep: usize) -> Result<Vec<PathBuf>, ReinitError> {
    prune_backups_except(file, keep, None)
}

/// [`prune_backups`], never deleting `spare` (the backup a rotation just took): neither a clock
/// set back nor backup names with future timestamps planted on the node can make a re-init
/// delete the database it replaced, and `keep = 0` still leaves that one.
fn prune_backups_except(
    file: &Path,
    keep: usize,
    spare: Option<&Path>,
) -> Result<Vec<PathBuf>, ReinitError> {
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
pub fn rotate(
    new_db: &Path,
    db: &Path,
    log: Option<&Path>,
    max_backups: usize,
) -> Result<Rotation, ReinitError> {
    let now = SystemTime::now();
    let mut r = Rotation::default();
    let db_backup = move_to_backup(db, now)?;
    r.backups.extend(db_backup.clone());
    std::fs::rename(new_db, db).map_err(io_err(db, "move new database into place"))?;
    let mut log_backup = None;
    if let Some(log) = log {
        log_backup = move_to_backup(log, now)?;
        r.backups.extend(log_backup.clone());
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(log)
            .map_err(io_err(log, "create empty log"))?;
    }
    r.pruned
        .extend(prune_backups_except(db, max_backups, db_backup.as_deref())?);
    if let Some(log) = log {
        r.pruned.extend(prune_backups_except(
            log,
            max_backups,
            log_backup.as_deref(),
        )?);
    }
    if let Some(dir) = db.parent() {
        if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }) {
            let _ = d.sync_all();
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

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
