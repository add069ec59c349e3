//! The operator: the controllers ([`controller`]) and the metrics they publish ([`metrics`]).

pub mod controller;
pub mod metrics;
