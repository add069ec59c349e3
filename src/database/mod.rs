//! The AIDE database format (being written).
