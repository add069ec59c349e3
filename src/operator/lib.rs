//! The operator: the controllers ([`controller`]), the metrics they publish ([`metrics`]) and
//! the leader election that lets one replica run them ([`lease`]).

#![forbid(unsafe_code)]

pub mod controller;
pub mod kubectl;
pub mod lease;
pub mod metrics;
