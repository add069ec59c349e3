//! Which paths are recorded, and with which attributes (being written).
