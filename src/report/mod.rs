//! AIDE-format reports (being written).
