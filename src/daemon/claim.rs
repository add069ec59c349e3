//! One FileIntegrity per node: the daemon files in `/etc/kubernetes` (the seed's names:
//! `aide.db.gz`, `aide.log`, their backups, `aide.reinit-id`) belong to the FileIntegrity whose
//! uid is in `aide.owner`. A second FileIntegrity selecting the same node does not share (and
//! re-initialise) them: its daemon refuses with an Errored result naming the owner, until the
//! owner is deleted; then it takes the files over with one re-initialisation (the previous
//! owner's database is kept as a backup). Nodes scanned before the claim existed are claimed by
//! the first daemon that runs there, without a re-initialisation.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use fio_core::atomic::replace_file;

/// The claim file's name in the database directory.
pub const FILE: &str = "aide.owner";

/// Who a claim names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: String,
    pub namespace: String,
    pub name: String,
}

impl Owner {
    fn line(&self) -> String {
        format!("{} {}/{}\n", self.uid, self.namespace, self.name)
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut it = text.split_whitespace();
        let uid = it.next()?.to_owned();
        let (namespace, name) = it.next()?.split_once('/')?;
        (it.next().is_none() && !uid.is_empty() && !name.is_empty()).then(|| Owner {
            uid,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// What the claim file says for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours (already, or just created on a node without one).
    Ours,
    /// Another FileIntegrity's (or unreadable: `None`, treated as another's that is gone).
    Other(Option<Owner>),
}

#[derive(Debug, thiserror::Error)]
#[error("claim file {path}: {source}")]
pub struct ClaimError {
    path: PathBuf,
    source: std::io::Error,
}

pub fn path(db_dir: &Path) -> PathBuf {
    db_dir.join(FILE)
}

/// Claim the files for `me` unless another FileIntegrity holds them. Creation is exclusive, so
/// of two daemons starting on a fresh node exactly one wins.
pub fn claim(db_dir: &Path, me: &Owner) -> Result<Claim, ClaimError> {
    let path = path(db_dir);
    let err = |source| ClaimError {
        path: path.clone(),
        source,
    };
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(me.line().as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(err)?;
            return Ok(Claim::Ours);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(e)),
    }
    // Bounded read: the file is the node's, and a node may be hostile to itself only.
    let mut text = Vec::new();
    fs::File::open(&path)
        .and_then(|f| f.take(1024).read_to_end(&mut text))
        .map_err(err)?;
    let owner = std::str::from_utf8(&text).ok().and_then(Owner::parse);
    Ok(match owner {
        Some(o) if o.uid == me.uid => Claim::Ours,
        other => Claim::Other(other),
    })
}

/// Take the files over from an owner that no longer exists.
pub fn take_over(db_dir: &Path, me: &Owner) -> Result<(), ClaimError> {
    let path = path(db_dir);
    replace_file(&path, me.line().as_bytes(), 0o600).map_err(|source| ClaimError { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str, name: &str) -> Owner {
        Owner {
            uid: uid.into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn the_first_claims_the_second_is_told_who_and_takes_over_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (owner("uid-a", "a"), owner("uid-b", "b"));
        assert_eq!(claim(dir.path(), &a).unwrap(), Claim::Ours);
        assert_eq!(claim(dir.path(), &a).unwrap(), Claim::Ours);
        assert_eq!(
            claim(dir.path(), &b).unwrap(),
            Claim::Other(Some(a.clone()))
        );
        take_over(dir.path(), &b).unwrap();
        assert_eq!(claim(dir.path(), &b).unwrap(), Claim::Ours);
        assert_eq!(claim(dir.path(), &a).unwrap(), Claim::Other(Some(b)));
        fs::write(path(dir.path()), "garbage").unwrap();
        assert_eq!(claim(dir.path(), &a).unwrap(), Claim::Other(None));
    }
}
