//! File integrity scanning compatible with AIDE, and the pieces the Kubernetes operator and its
//! per-node daemon are built from.

pub mod attr;
pub mod compare;
pub mod config;
pub mod database;
pub mod entry;
pub mod options;
pub mod report;
pub mod select;
