//! The reference AIDE, shared by the AIDE-comparison tests and the end-to-end tests that make
//! node databases as upstream's daemon does (`aide --init`).

use std::path::PathBuf;

/// The real AIDE 0.18.3. Missing AIDE is a test failure, never a silent pass.
pub fn aide_bin() -> PathBuf {
    let p = PathBuf::from(std::env::var_os("AIDE_BIN").unwrap_or_else(|| "/usr/bin/aide".into()));
    if !p.is_file() {
        panic!(
            "the reference AIDE binary {} is missing: this test needs the real \
             AIDE 0.18.3 (Debian: `apt-get install aide`, or set AIDE_BIN=/path/to/aide); \
             .ci/run installs it",
            p.display()
        );
    }
    p
}
