//! AIDE's exit status: what scripts, the daemon and the operator read from a scan. One enum
//! instead of numbers, so that no code writes 17 or 18 by hand.

use std::fmt;

/// The exit status of one AIDE run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// No error. The check found these kinds of differences (all false: none, or not a check).
    Differences {
        added: bool,
        removed: bool,
        changed: bool,
    },
    /// 14: a database, report or log could not be written.
    Write,
    /// 15: a bad command line.
    InvalidArgument,
    /// 16: something AIDE has but this scanner does not implement.
    Unimplemented,
    /// 17: a configuration line AIDE rejects.
    InvalidConfig,
    /// 18: reading failed; also a missing, truncated or corrupt database.
    Io,
    /// 19: a database of another version.
    VersionMismatch,
    /// 20: an `@@x_include` program failed.
    Exec,
    /// 21: the database or a report is locked by another run.
    Lock,
}

impl Exit {
    pub const OK: Exit = Exit::Differences {
        added: false,
        removed: false,
        changed: false,
    };

    /// The status for these counts of added, removed and changed entries.
    pub fn from_counts(added: u64, removed: u64, changed: u64) -> Exit {
        Exit::Differences {
            added: added > 0,
            removed: removed > 0,
            changed: changed > 0,
        }
    }

    /// The process exit code: 0-7 as bit flags (1 added, 2 removed, 4 changed), 14-21 errors.
    pub fn code(self) -> u8 {
        match self {
            Exit::Differences {
                added,
                removed,
                changed,
            } => u8::from(added) | (u8::from(removed) << 1) | (u8::from(changed) << 2),
            Exit::Write => 14,
            Exit::InvalidArgument => 15,
            Exit::Unimplemented => 16,
            Exit::InvalidConfig => 17,
            Exit::Io => 18,
            Exit::VersionMismatch => 19,
            Exit::Exec => 20,
            Exit::Lock => 21,
        }
    }

    /// The status with this exit code, if AIDE has one.
    pub fn from_code(code: u8) -> Option<Exit> {
        Some(match code {
            0..=7 => Exit::Differences {
                added: code & 1 != 0,
                removed: code & 2 != 0,
                changed: code & 4 != 0,
            },
            14 => Exit::Write,
            15 => Exit::InvalidArgument,
            16 => Exit::Unimplemented,
            17 => Exit::InvalidConfig,
            18 => Exit::Io,
            19 => Exit::VersionMismatch,
            20 => Exit::Exec,
            21 => Exit::Lock,
            _ => return None,
        })
    }

    /// True for 14-21: the run did not complete.
    pub fn is_error(self) -> bool {
        !matches!(self, Exit::Differences { .. })
    }

    /// AIDE's name for an error status (upstream's `GetAideErrorMessage`).
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Differences { .. } => "no error",
            Exit::Write => "Error writing error",
            Exit::InvalidArgument => "Invalid argument error",
            Exit::Unimplemented => "Unimplemented function error",
            Exit::InvalidConfig => "Invalid configureline error",
            Exit::Io => "IO error",
            Exit::VersionMismatch => "Version mismatch error",
            Exit::Exec => "Exec error",
            Exit::Lock => "File lock error",
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_unknown_codes_are_none() {
        for code in 0..=255u8 {
            match Exit::from_code(code) {
                Some(e) => assert_eq!(e.code(), code),
                None => assert!((8..14).contains(&code) || code > 21, "{code}"),
            }
        }
        assert_eq!(Exit::from_counts(1, 0, 3).code(), 5);
        assert!(!Exit::OK.is_error());
        assert!(Exit::Io.is_error());
    }
}
