//! AIDE configuration files (being written).
