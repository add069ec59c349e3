//! End to end against a real control plane (kube-apiserver, etcd, controller-manager, scheduler,
//! kwok; `scripts/testenv.sh`): `fio-operator run` and one `fio-operator daemon --owner ...` per
//! simulated node run as local processes with the tokens of their service accounts, over small
//! node roots (see the fio-harness crate, `tests/harness`). Issue 3, section 5; names and the re-init protocol as
//! in NOTES.md ("Operator (issue 3)").
//!
//! The scan interval is gracePeriod 10 (the minimum) everywhere, so a node reports every ~10 s.
//! `FIO_TEST_KEEP=1` keeps namespaces, nodes, node roots and logs; on a failure the tails of the
//! operator's and daemons' logs and the namespace's objects are printed.

use fio_harness as cluster;
// The real AIDE, for node databases made as upstream's daemon makes them.
use fio_harness::aide;
mod support;

mod adoption;
mod config;
mod lifecycle;
mod machine_config;
mod metrics;
mod reinit;
mod trust;
mod upstream;
