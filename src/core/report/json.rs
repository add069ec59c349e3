//! The JSON report (`report_json.c`), formatted exactly like AIDE's (2-space indentation, key
//! order, AIDE's string escaping).

use super::values::{self, json_escape};
use super::{
    config_values, database_values, detail_order, detail_values, epoch_secs, report_option_values,
    Model, Node, NodeKind, Report, AIDE_VERSION,
};
use crate::attr::{Attr, AttrSet};
use crate::entry::Entry;
use crate::options::ReportLevel;

fn indent(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, b' ');
}

/// `"key": "value"` (value and key already escaped as needed), followed by `tail`.
fn string_field(out: &mut Vec<u8>, n: usize, key: &[u8], value: &[u8], tail: &str) {
    indent(out, n);
    out.push(b'"');
    out.extend_from_slice(key);
    out.extend_from_slice(b"\": \"");
    out.extend_from_slice(value);
    out.push(b'"');
    out.extend_from_slice(tail.as_bytes());
}

fn number_field(out: &mut Vec<u8>, n: usize, key: &str, value: impl std::fmt::Display, tail: &str) {
    indent(out, n);
    out.extend_from_slice(format!("\"{key}\": {value}{tail}").as_bytes());
}

fn object_begin(out: &mut Vec<u8>, n: usize, key: &[u8]) {
    indent(out, n);
    out.push(b'"');
    out.extend_from_slice(key);
    out.extend_from_slice(b"\": {\n");
}

/// `_print_attribute_value`: nothing, one value, or an array of values.
fn attribute_value(out: &mut Vec<u8>, name: &str, a: Attr, vals: &[Vec<u8>], n: usize) {
    match vals.len() {
        0 => {}
        1 => {
            let v = json_escape(&vals[0]);
            if values::json_is_number(a) {
                indent(out, n);
                out.extend_from_slice(format!("\"{name}\": ").as_bytes());
                out.extend_from_slice(&v);
            } else {
                string_field(out, n, name.as_bytes(), &v, "");
            }
        }
        len => {
            indent(out, n);
            out.extend_from_slice(format!("\"{name}\": [\n").as_bytes());
            for (i, v) in vals.iter().enumerate() {
                indent(out, n + 2);
                out.push(b'"');
                out.extend_from_slice(&json_escape(v));
                out.extend_from_slice(if i + 1 < len {
                    b"\",\n".as_slice()
                } else {
                    b"\"\n"
                });
            }
            indent(out, n);
            out.push(b']');
        }
    }
}

fn detail_object(
    out: &mut Vec<u8>,
    report: &Report,
    old: Option<&Entry>,
    new: Option<&Entry>,
    attrs: AttrSet,
    first: &mut bool,
) {
    if attrs.is_empty() {
        return;
    }
    let Some(line) = new.or(old) else { return };
    let opts = report.options;
    if !std::mem::take(first) {
        out.extend_from_slice(b",\n");
    }
    object_begin(out, 4, &json_escape(&line.name));
    for (i, a) in detail_order(attrs).into_iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",\n");
        }
        object_begin(out, 6, values::json_name(a).as_bytes());
        let (ov, nv) = detail_values(a, old, new, opts);
        attribute_value(out, "old", a, &ov, 8);
        if !ov.is_empty() && !nv.is_empty() {
            out.extend_from_slice(b",\n");
        }
        attribute_value(out, "new", a, &nv, 8);
        out.push(b'\n');
        indent(out, 6);
        out.push(b'}');
    }
    out.push(b'\n');
    indent(out, 4);
    out.push(b'}');
}

/// One list: `"added": {` (summary strings or change words) or `"added": [` (names only).
fn entry_list(
    out: &mut Vec<u8>,
    report: &Report,
    m: &Model,
    key: &str,
    filter: impl Fn(&Node) -> bool,
) {
    let opts = report.options;
    let object = opts.summarize_changes || !opts.grouped;
    indent(out, 2);
    out.extend_from_slice(format!("\"{key}\": {}\n", if object { '{' } else { '[' }).as_bytes());
    let mut first = true;
    for node in m.nodes.iter().filter(|n| filter(n)) {
        if !std::mem::take(&mut first) {
            out.extend_from_slice(b",\n");
        }
        let name = json_escape(node.name());
        if opts.summarize_changes {
            string_field(out, 4, &name, m.line_summary(node, opts).as_bytes(), "");
        } else if !opts.grouped {
            let word = match node {
                Node::Added(_) => "added",
                Node::Removed(_) => "removed",
                Node::Changed(_) => "changed",
            };
            string_field(out, 4, &name, word.as_bytes(), "");
        } else {
            indent(out, 4);
            out.push(b'"');
            out.extend_from_slice(&name);
            out.push(b'"');
        }
    }
    out.push(b'\n');
    indent(out, 2);
    out.extend_from_slice(if object { b"},\n".as_slice() } else { b"],\n" });
}

pub(super) fn render(report: &Report, m: &Model) -> Vec<u8> {
    let opts = report.options;
    let level = m.level;
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\n");

    if !m.diffs.is_empty() {
        object_begin(&mut out, 2, b"different_attributes");
        for (i, (name, old, new)) in m.diffs.iter().enumerate() {
            let tail = if i + 1 < m.diffs.len() { ",\n" } else { "\n" };
            string_field(
                &mut out,
                4,
                &json_escape(name),
                values::diff_attributes(*old, *new).as_bytes(),
                tail,
            );
        }
        out.extend_from_slice(b"  },\n");
    }

    let start = epoch_secs(report.start);
    if level >= ReportLevel::Summary {
        string_field(
            &mut out,
            2,
            b"start_time",
            values::time_string(start).as_bytes(),
            ",\n",
        );
        string_field(&mut out, 2, b"aide_version", AIDE_VERSION.as_bytes(), ",\n");
    }
    let tail = if level >= ReportLevel::Summary {
        ",\n"
    } else {
        "\n"
    };
    string_field(
        &mut out,
        2,
        b"outline",
        m.outline(report.mode).as_bytes(),
        tail,
    );

    if level >= ReportLevel::Summary {
        if report.mode.writes_database() {
            if let Some(db) = &report.new_database {
                string_field(&mut out, 2, b"new_database", db.as_bytes(), ",\n");
            }
        }
        for c in config_values(report, level) {
            string_field(
                &mut out,
                2,
                c.key.as_bytes(),
                &json_escape(c.value.as_bytes()),
                ",\n",
            );
        }
    }
    if level >= ReportLevel::ListEntries {
        for c in report_option_values(opts, level) {
            string_field(
                &mut out,
                2,
                c.key.as_bytes(),
                &json_escape(c.value.as_bytes()),
                ",\n",
            );
        }
    }
    if level >= ReportLevel::Summary {
        object_begin(&mut out, 2, b"number_of_entries");
        if report.mode.compares() && m.any() {
            number_field(&mut out, 4, "total", m.ntotal, ",\n");
            number_field(&mut out, 4, "added", m.nadd, ",\n");
            number_field(&mut out, 4, "removed", m.nrem, ",\n");
            number_field(&mut out, 4, "changed", m.nchg, "\n");
        } else {
            number_field(&mut out, 4, "total", m.ntotal, "\n");
        }
        out.extend_from_slice(b"  },\n");
    }
    if level >= ReportLevel::Summary && !report.walk_errors.is_empty() {
        out.extend_from_slice(b"  \"unreadable_entries\": [\n");
        for (i, e) in report.walk_errors.iter().enumerate() {
            out.extend_from_slice(if i > 0 { b",\n    \"" } else { b"    \"" });
            out.extend_from_slice(&json_escape(e.to_string().as_bytes()));
            out.push(b'"');
        }
        out.extend_from_slice(b"\n  ],\n");
    }

    if Model::lists_entries(report) {
        if level >= ReportLevel::ListEntries {
            if opts.grouped {
                let groups = [
                    (m.nadd, "added", NodeKind::Added),
                    (m.nrem, "removed", NodeKind::Removed),
                    (m.nchg, "changed", NodeKind::Changed),
                ];
                for (count, key, kind) in groups {
                    if count > 0 {
                        entry_list(&mut out, report, m, key, |n| n.kind() == kind);
                    }
                }
            } else if m.any() {
                entry_list(&mut out, report, m, "entries", |_| true);
            }
        }
        if m.has_details() {
            object_begin(&mut out, 2, b"details");
            let mut first = true;
            for node in &m.nodes {
                if let Some((old, new, attrs)) = m.detail(node, opts) {
                    detail_object(&mut out, report, old, new, attrs, &mut first);
                }
            }
            out.extend_from_slice(b"\n  },\n");
        }
    }

    if level >= ReportLevel::DatabaseAttributes && !report.databases.is_empty() {
        object_begin(&mut out, 2, b"databases");
        for (i, db) in report.databases.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b",\n");
            }
            object_begin(&mut out, 4, &json_escape(db.path.as_bytes()));
            for (j, (a, v)) in database_values(db, opts.base16).into_iter().enumerate() {
                if j > 0 {
                    out.extend_from_slice(b",\n");
                }
                attribute_value(&mut out, values::json_name(a), a, &[v.into_bytes()], 6);
            }
            out.extend_from_slice(b"\n    }");
        }
        out.extend_from_slice(b"\n  },\n");
    }

    if level >= ReportLevel::Summary {
        let end = epoch_secs(report.end);
        string_field(
            &mut out,
            2,
            b"end_time",
            values::time_string(end).as_bytes(),
            ",\n",
        );
        number_field(&mut out, 2, "run_time_seconds", end - start, "\n");
    }
    out.extend_from_slice(b"}\n");
    out
}
