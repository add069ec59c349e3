//! The plain-text report (`report_plain.c`).

use super::values::{self, plain_escape};
use super::{
    config_values, database_values, detail_order, detail_values, epoch_secs, report_option_values,
    Model, Node, NodeKind, Report, AIDE_VERSION,
};
use crate::attr::AttrSet;
use crate::entry::Entry;
use crate::options::ReportLevel;

/// Width of the left column of detail lines (`MAX_WIDTH_DETAILS_STRING`).
const NAME_WIDTH: usize = 10;
/// Width of a value column: (80 - (4 + 10)) / 2.
const COLUMN: usize = 33;

fn headline(out: &mut Vec<u8>, title: &str) {
    out.extend_from_slice(b"\n\n---------------------------------------------------\n");
    out.extend_from_slice(title.as_bytes());
    out.extend_from_slice(b":\n---------------------------------------------------\n");
}

fn pad(out: &mut Vec<u8>, s: &[u8], width: usize) {
    out.extend_from_slice(s);
    out.resize(out.len() + width.saturating_sub(s.len()), b' ');
}

/// The `k`-th 32-byte piece of a value, as `%.*s` of `&value[c]` when `len - c > 0`.
fn chunk(v: &[u8], k: usize) -> &[u8] {
    let c = k * (COLUMN - 1);
    if v.len() > c {
        &v[c..v.len().min(c + COLUMN - 1)]
    } else {
        b""
    }
}

/// One attribute's lines (`_print_attribute`): old and new values side by side, long values
/// continued on further lines in 32-byte pieces. The number of pieces follows AIDE's loop
/// condition `len - 33*k >= 0`, which drops the tail of some lengths (e.g. the 65th byte) and
/// prints an extra empty piece for others, exactly like AIDE.
pub(super) fn attribute_lines(out: &mut Vec<u8>, name: &str, old: &[Vec<u8>], new: &[Vec<u8>]) {
    let (on, nn) = (old.len(), new.len());
    let mut i = 0;
    while i < on || i < nn {
        let ov = if i < on {
            plain_escape(&old[i])
        } else {
            Vec::new()
        };
        let nv = if i < nn {
            plain_escape(&new[i])
        } else {
            Vec::new()
        };
        let (olen, nlen) = (ov.len() as i64, nv.len() as i64);
        let mut k = 0usize;
        while olen - (COLUMN * k) as i64 >= 0 || nlen - (COLUMN * k) as i64 >= 0 {
            let first = i + k == 0;
            out.push(b' ');
            pad(out, if first { name.as_bytes() } else { b"" }, NAME_WIDTH);
            out.push(if first { b':' } else { b' ' });
            out.push(b' ');
            if on == 0 {
                pad(out, b" ", COLUMN);
                out.extend_from_slice(b"  ");
                out.extend_from_slice(chunk(&nv, k));
            } else if nn == 0 {
                out.extend_from_slice(chunk(&ov, k));
            } else {
                pad(out, chunk(&ov, k), COLUMN);
                out.extend_from_slice(b"| ");
                out.extend_from_slice(chunk(&nv, k));
            }
            out.push(b'\n');
            k += 1;
        }
        i += 1;
    }
}

/// A detail block (`print_report_dbline_attributes_plain`).
fn detail_block(
    out: &mut Vec<u8>,
    report: &Report,
    old: Option<&Entry>,
    new: Option<&Entry>,
    attrs: AttrSet,
) {
    if attrs.is_empty() {
        return;
    }
    let Some(line) = new.or(old) else { return };
    let opts = report.options;
    out.push(b'\n');
    if let Some(word) = values::file_type_word(line.perm) {
        out.extend_from_slice(word.as_bytes());
        out.extend_from_slice(b": ");
    }
    out.extend_from_slice(&plain_escape(&line.name));
    out.push(b'\n');
    for a in detail_order(attrs) {
        let (ov, nv) = detail_values(a, old, new, opts);
        attribute_lines(out, values::detail_name(a), &ov, &nv);
    }
}

fn list_title(m: &Model) -> &'static str {
    match (m.nadd > 0, m.nrem > 0, m.nchg > 0) {
        (true, true, true) => "Added, removed and changed entries",
        (true, true, false) => "Added and removed entries",
        (true, false, true) => "Added and changed entries",
        (false, true, true) => "Removed and changed entries",
        (true, false, false) => "Added entries",
        (false, true, false) => "Removed entries",
        _ => "Changed entries",
    }
}

fn list_line(out: &mut Vec<u8>, report: &Report, m: &Model, node: &Node) {
    out.push(b'\n');
    if report.options.summarize_changes {
        out.extend_from_slice(m.line_summary(node, report.options).as_bytes());
        out.extend_from_slice(b": ");
    } else {
        out.extend_from_slice(match node {
            Node::Added(_) => b"added: ".as_slice(),
            Node::Removed(_) => b"removed: ",
            Node::Changed(_) => b"changed: ",
        });
    }
    out.extend_from_slice(&plain_escape(node.name()));
}

pub(super) fn render(report: &Report, m: &Model) -> Vec<u8> {
    let opts = report.options;
    let mut out = Vec::with_capacity(4096);
    let level = m.level;

    for (name, old, new) in &m.diffs {
        out.extend_from_slice(b"Entry ");
        out.extend_from_slice(&plain_escape(name));
        out.extend_from_slice(b" in databases has different attributes: ");
        out.extend_from_slice(values::diff_attributes(*old, *new).as_bytes());
        out.push(b'\n');
    }

    let start = epoch_secs(report.start);
    if level >= ReportLevel::Summary {
        out.extend_from_slice(
            format!(
                "Start timestamp: {} (AIDE {AIDE_VERSION})\n",
                values::time_string(start)
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(m.outline(report.mode).as_bytes());
    out.push(b'\n');

    if level >= ReportLevel::Summary {
        if report.mode.writes_database() {
            if let Some(db) = &report.new_database {
                out.extend_from_slice(b"New AIDE database written to ");
                out.extend_from_slice(db.as_bytes());
                out.push(b'\n');
            }
        }
        let cfg = config_values(report, level);
        for (i, c) in cfg.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b" | ");
            }
            out.extend_from_slice(c.label.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&plain_escape(c.value.as_bytes()));
        }
        if !cfg.is_empty() {
            out.push(b'\n');
        }
    }

    if level >= ReportLevel::ListEntries {
        for c in report_option_values(opts, level) {
            out.extend_from_slice(format!("{}: {}\n", c.label, c.value).as_bytes());
        }
    }

    if level >= ReportLevel::Summary {
        if report.mode.compares() && m.any() {
            out.extend_from_slice(
                format!(
                    "\nSummary:\n  Total number of entries:\t{}\n  Added entries:\t\t{}\n  Removed entries:\t\t{}\n  Changed entries:\t\t{}",
                    m.ntotal, m.nadd, m.nrem, m.nchg
                )
                .as_bytes(),
            );
        } else {
            out.extend_from_slice(format!("\nNumber of entries:\t{}", m.ntotal).as_bytes());
        }
    }

    if level >= ReportLevel::Summary && !report.walk_errors.is_empty() {
        headline(&mut out, "Entries that could not be read");
        for e in report.walk_errors {
            out.extend_from_slice(&plain_escape(e.to_string().as_bytes()));
            out.push(b'\n');
        }
    }

    if Model::lists_entries(report) {
        if level >= ReportLevel::ListEntries {
            if opts.grouped {
                let groups = [
                    (m.nadd, "Added entries", NodeKind::Added),
                    (m.nrem, "Removed entries", NodeKind::Removed),
                    (m.nchg, "Changed entries", NodeKind::Changed),
                ];
                for (count, title, kind) in groups {
                    if count > 0 {
                        headline(&mut out, title);
                        for node in m.nodes.iter().filter(|n| n.kind() == kind) {
                            list_line(&mut out, report, m, node);
                        }
                    }
                }
            } else if m.any() {
                headline(&mut out, list_title(m));
                for node in &m.nodes {
                    list_line(&mut out, report, m, node);
                }
            }
        }
        if m.has_details() {
            headline(&mut out, "Detailed information about changes");
            for node in &m.nodes {
                if let Some((old, new, attrs)) = m.detail(node, opts) {
                    detail_block(&mut out, report, old, new, attrs);
                }
            }
        }
    }

    if level >= ReportLevel::DatabaseAttributes && !report.databases.is_empty() {
        headline(&mut out, "The attributes of the (uncompressed) database(s)");
        for db in &report.databases {
            out.push(b'\n');
            out.extend_from_slice(&plain_escape(db.path.as_bytes()));
            out.push(b'\n');
            for (a, v) in database_values(db, opts.base16) {
                attribute_lines(&mut out, values::detail_name(a), &[v.into_bytes()], &[]);
            }
        }
    }

    if level >= ReportLevel::Summary {
        let end = epoch_secs(report.end);
        let run = end - start;
        out.extend_from_slice(
            format!(
                "\n\nEnd timestamp: {} (run time: {}m {}s)\n",
                values::time_string(end),
                run / 60,
                run % 60
            )
            .as_bytes(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::Attr;

    fn lines(name: &str, old: &[&[u8]], new: &[&[u8]]) -> String {
        let mut out = Vec::new();
        let o: Vec<Vec<u8>> = old.iter().map(|v| v.to_vec()).collect();
        let n: Vec<Vec<u8>> = new.iter().map(|v| v.to_vec()).collect();
        attribute_lines(&mut out, name, &o, &n);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn column_splitting_follows_aide() {
        assert_eq!(
            lines("SHA256", &[b"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="], &[b"Zmey0aq2oAyqWu5a+K2fFGXlZ6vxwgnRVyfVez6Pbl8="]),
            " SHA256    : 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NM | Zmey0aq2oAyqWu5a+K2fFGXlZ6vxwgnR\n             pJWZG3hSuFU=                     | VyfVez6Pbl8=\n"
        );
        // A 32-byte value fits on one line; 33 bytes need a second one.
        assert_eq!(
            lines("TIGER", &[&[b'a'; 32]], &[]),
            format!(" TIGER     : {}\n", "a".repeat(32))
        );
        assert_eq!(
            lines("X", &[&[b'a'; 33]], &[]),
            format!(" X         : {}\n             a\n", "a".repeat(32))
        );
        // AIDE drops the 65th byte of a 65-byte value.
        assert_eq!(
            lines("X", &[&[b'b'; 65]], &[]),
            format!(
                " X         : {}\n             {}\n",
                "b".repeat(32),
                "b".repeat(32)
            )
        );
        // Added entries: value in the right column, no bar.
        assert_eq!(
            lines("Uid", &[], &[b"0"]),
            format!(" Uid       : {}0\n", " ".repeat(35))
        );
        assert_eq!(lines("Uid", &[], &[]), "");
        // Empty value on the new side of a multi-line value.
        assert_eq!(
            lines("XAttrs", &[b"num=1", b"[1] a = b"], &[b"num=0"]),
            " XAttrs    : num=1                            | num=0\n             [1] a = b                        | \n"
        );
    }

    #[test]
    fn attribute_ordering() {
        let set = AttrSet::of(&[
            Attr::Caps,
            Attr::Sha512,
            Attr::Md5,
            Attr::Perm,
            Attr::Size,
            Attr::Bcount,
            Attr::Ftype,
        ]);
        assert_eq!(
            detail_order(set),
            vec![
                Attr::Ftype,
                Attr::Size,
                Attr::Bcount,
                Attr::Perm,
                Attr::Md5,
                Attr::Sha512,
                Attr::Caps
            ]
        );
    }
}
