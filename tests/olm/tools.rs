//! The operator framework's programs (built by `scripts/testenv.sh build` from testenv/olm) and
//! the bundle generator, as the tests run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn testenv(args: &[&str]) -> Result<String, String> {
    let out = Command::new(repo().join("scripts/testenv.sh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("scripts/testenv.sh: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "scripts/testenv.sh {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The directory with olm, catalog, cpb, opm and operator-verify; built when missing (Go from
/// the module proxy, as the control plane; `.ci/run` installs Go).
pub fn olm_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = testenv(&["olm-bin"]).or_else(|_| {
            testenv(&["build"])?;
            testenv(&["olm-bin"])
        });
        PathBuf::from(dir.unwrap_or_else(|e| panic!("OLM's tools are not built: {e}")))
    })
}

/// Runs `program args`: its stdout and stderr together, or a panic with both.
pub fn run_tool(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {} failed ({}):\n{text}",
        program.display(),
        args.join(" "),
        out.status
    );
    text
}

/// `python3 scripts/bundle.py ARGS` (PyYAML: Debian's python3-yaml).
pub fn bundle_py(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(repo().join("scripts/bundle.py"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("python3 (Debian's python3 and python3-yaml): {e}"));
    assert!(
        out.status.success(),
        "scripts/bundle.py {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
