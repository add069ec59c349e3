//! File integrity scanning compatible with AIDE, and the pieces the Kubernetes operator and its
//! per-node daemon are built from.

pub mod api;
pub mod attr;
pub mod compare;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod database;
pub mod entry;
pub mod harden;
pub mod hash;
pub mod measure;
pub mod metrics;
pub mod options;
pub mod reinit;
pub mod report;
pub mod scan;
pub mod select;
pub mod timefmt;
pub mod walk;
pub mod xattr;
