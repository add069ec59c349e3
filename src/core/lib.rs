//! File integrity scanning compatible with AIDE 0.18: the configuration language and rule
//! selection, the parallel walk, what is measured and hashed, the database format, the
//! comparison, AIDE's reports and exit codes, re-initialisation with backups, and the
//! node-local runner the daemon drives. No Kubernetes and no async runtime here.

pub mod atomic;
pub mod attr;
pub mod backups;
pub mod changes;
pub mod compare;
pub mod config;
pub mod database;
pub mod entry;
pub mod exit;
pub mod focus;
pub mod hash;
pub mod measure;
pub mod mode;
pub mod options;
pub mod report;
pub mod runner;
pub mod scan;
pub mod select;
pub mod timefmt;
pub mod walk;
pub mod xattr;
