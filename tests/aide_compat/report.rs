//! Plain `report_url` output, parsed: added / removed / changed paths and the summary counts.

#![allow(dead_code)] // each test uses a part

use super::*;

/// A parsed plain-format AIDE report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// "AIDE found NO differences between database and filesystem. Looks okay!!"
    pub no_differences: bool,
    /// "AIDE found differences between database and filesystem!!"
    pub found_differences: bool,
    /// "AIDE successfully initialized database."
    pub initialized: bool,
    /// `Total number of entries:` (differences) or `Number of entries:` (clean / init).
    pub total_entries: Option<u64>,
    pub added_count: Option<u64>,
    pub removed_count: Option<u64>,
    pub changed_count: Option<u64>,
    /// path -> 18-char summary string (e.g. `f+++++++++++++++++`).
    pub added: BTreeMap<Vec<u8>, String>,
    pub removed: BTreeMap<Vec<u8>, String>,
    pub changed: BTreeMap<Vec<u8>, String>,
    /// `Entry <path> in databases has different attributes: <attrs>` lines.
    pub different_attributes: BTreeMap<Vec<u8>, String>,
}

const DASHES: &[u8] = b"---------------------------------------------------";

#[derive(Clone, Copy, PartialEq)]
enum Section {
    None,
    Added,
    Removed,
    Changed,
    Other,
}

impl Report {
    pub fn added_set(&self) -> BTreeSet<Vec<u8>> {
        self.added.keys().cloned().collect()
    }
    pub fn removed_set(&self) -> BTreeSet<Vec<u8>> {
        self.removed.keys().cloned().collect()
    }
    pub fn changed_set(&self) -> BTreeSet<Vec<u8>> {
        self.changed.keys().cloned().collect()
    }

    /// The exit code AIDE derives from this report (1 added | 2 removed | 4 changed).
    pub fn implied_exit_code(&self) -> i32 {
        (!self.added.is_empty()) as i32
            | ((!self.removed.is_empty()) as i32) << 1
            | ((!self.changed.is_empty()) as i32) << 2
    }

    pub fn parse(raw: &[u8]) -> Result<Report, String> {
        let lines: Vec<&[u8]> = raw.split(|&b| b == b'\n').collect();
        let mut r = Report::default();
        let mut section = Section::None;
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let lossy = String::from_utf8_lossy(line);
            // Section headline: dashes / title / dashes
            if line == DASHES && i + 2 < lines.len() && lines[i + 2] == DASHES {
                section = match lines[i + 1] {
                    b"Added entries:" => Section::Added,
                    b"Removed entries:" => Section::Removed,
                    b"Changed entries:" => Section::Changed,
                    _ => Section::Other,
                };
                i += 3;
                continue;
            }
            if let Some(rest) = line.strip_prefix(b"Entry ") {
                const MID: &[u8] = b" in databases has different attributes: ";
                if let Some(pos) = find(rest, MID) {
                    let path = unescape_report_path(&rest[..pos]);
                    let attrs = String::from_utf8_lossy(&rest[pos + MID.len()..]).into_owned();
                    r.different_attributes.insert(path, attrs);
                    i += 1;
                    continue;
                }
            }
            if lossy.starts_with("AIDE found NO differences") {
                r.no_differences = true;
            } else if lossy.starts_with("AIDE found differences") {
                r.found_differences = true;
            } else if lossy.starts_with("AIDE successfully initialized database") {
                r.initialized = true;
            }
            let count = |prefix: &str| -> Option<u64> {
                let t = lossy.trim_start();
                let rest = t.strip_prefix(prefix)?;
                rest.trim().parse().ok()
            };
            if section == Section::None {
                if let Some(n) = count("Total number of entries:") {
                    r.total_entries = Some(n);
                } else if let Some(n) = count("Number of entries:") {
                    r.total_entries = Some(n);
                } else if let Some(n) = count("Added entries:") {
                    r.added_count = Some(n);
                } else if let Some(n) = count("Removed entries:") {
                    r.removed_count = Some(n);
                } else if let Some(n) = count("Changed entries:") {
                    r.changed_count = Some(n);
                }
            }
            let map = match section {
                Section::Added => Some(&mut r.added),
                Section::Removed => Some(&mut r.removed),
                Section::Changed => Some(&mut r.changed),
                _ => None,
            };
            if let Some(map) = map {
                if !line.is_empty() {
                    // "<18 summary chars>: <path>"
                    if line.len() < 21 || &line[18..20] != b": " || !line[..18].is_ascii() {
                        return Err(format!(
                            "unexpected line in an entry list (expected '<18-char summary>: \
                             <path>'): {:?}",
                            lossy
                        ));
                    }
                    let summary = String::from_utf8(line[..18].to_vec()).unwrap();
                    let path = unescape_report_path(&line[20..]);
                    if map.insert(path.clone(), summary).is_some() {
                        return Err(format!("path listed twice: {}", show(&path)));
                    }
                }
            }
            i += 1;
        }
        Ok(r)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Undo AIDE's plain-report escaping of names: control characters are printed as `\ooo`
/// (3 octal digits; a backslash that would be ambiguous is printed as `\134`); all other bytes
/// (including non-UTF-8 ones) are printed raw.
pub fn unescape_report_path(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 3 < s.len()
            && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (s[i + 1] - b'0') as u32 * 64
                + (s[i + 2] - b'0') as u32 * 8
                + (s[i + 3] - b'0') as u32;
            if v <= 255 {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Printable form of a raw path for messages.
pub fn show(p: &[u8]) -> String {
    p.escape_ascii().to_string()
}

/// One path per line (at most 40, then a count), for assertion messages.
pub fn show_set<'a>(s: impl IntoIterator<Item = &'a Vec<u8>>) -> String {
    let all: Vec<&Vec<u8>> = s.into_iter().collect();
    if all.is_empty() {
        return "  (none)".into();
    }
    let mut v: Vec<String> = all
        .iter()
        .take(40)
        .map(|p| format!("  {}", show(p)))
        .collect();
    if all.len() > 40 {
        v.push(format!("  ... and {} more", all.len() - 40));
    }
    v.join("\n")
}

/// Describe the difference of two path sets (for assertion messages).
pub fn set_diff(
    left_name: &str,
    left: &BTreeSet<Vec<u8>>,
    right_name: &str,
    right: &BTreeSet<Vec<u8>>,
) -> String {
    format!(
        "only in {left_name}:\n{}\nonly in {right_name}:\n{}",
        show_set(left.difference(right)),
        show_set(right.difference(left))
    )
}
