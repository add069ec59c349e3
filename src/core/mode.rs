//! What a run of the scanner does: what it reads, what it writes, and so what its report
//! shows (the scan and the report both follow it).

/// What the run did; selects the outline and the sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--init`: a new database was written.
    Init,
    /// `--check`: database against the file system.
    Check,
    /// `--update`: check, and a new database was written.
    Update,
    /// `--compare`: database against `database_new`.
    Compare,
}

impl Mode {
    /// AIDE's `DO_INIT` bit (`--init` and `--update`).
    pub(crate) fn writes_database(self) -> bool {
        matches!(self, Mode::Init | Mode::Update)
    }

    /// AIDE's `DO_COMPARE|DO_DIFF` (everything but `--init`).
    pub(crate) fn compares(self) -> bool {
        !matches!(self, Mode::Init)
    }
}
