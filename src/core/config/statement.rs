//! One line of a configuration as AIDE's lexer reads it, with byte ranges into the line: for
//! tools that rewrite a configuration (the operator moving rule and include paths under the
//! host root) without a second reading of the language, which could disagree with the scanner
//! about what a line is. Each line is lexed on its own, as AIDE does (every line starts in the
//! lexer's initial state).

use std::ops::Range;

use super::lex::{Lexer, Tok};

/// What a line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// Empty or a comment; or a line the lexer refuses, left as written for the parser to
    /// report.
    Nothing,
    /// `@@define NAME VALUE`.
    Define { name: String },
    /// `name = value`: the option's name as written (deprecated spellings too) and its value.
    Option {
        name: Range<usize>,
        value: Range<usize>,
    },
    /// A selection (`/path`), negative (`!/path`) or equals (`=/path`) rule: the marker (empty
    /// for a selection rule) and the path, up to the blank before the attributes.
    Rule {
        marker: Range<usize>,
        path: Range<usize>,
    },
    /// `@@include` or `@@x_include`: the keyword and each blank-separated argument.
    Include {
        keyword: Range<usize>,
        args: Vec<Range<usize>>,
    },
    /// Any other statement (group definitions, conditionals, `@@undef`, `@@x_include_setenv`).
    Other,
}

/// A line, lexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineView {
    pub statement: Statement,
    /// The variables the line reads (`@@{NAME}`), in order.
    pub reads: Vec<String>,
}

/// Read one line (without its line end).
pub fn read_line(line: &str) -> LineView {
    let nothing = LineView {
        statement: Statement::Nothing,
        reads: Vec::new(),
    };
    let body = line.as_bytes();
    let after = body.trim_ascii_start();
    if after.is_empty() || after[0] == b'#' {
        return nothing;
    }
    let Ok(toks) = Lexer::new(body, "").lex_spans(body, &mut Vec::new()) else {
        return nothing;
    };
    let Some((first, first_span)) = toks.first() else {
        return nothing;
    };
    let reads = toks
        .iter()
        .enumerate()
        .filter(|(k, (t, _))| {
            // The name after `@@define`/`@@undef`/`@@x_include_setenv` is written, not read.
            matches!(t, Tok::Var(_))
                && !(*k == 1 && matches!(first, Tok::Define | Tok::Undef | Tok::SetEnv))
        })
        .filter_map(|(_, (t, _))| match t {
            Tok::Var(v) => Some(String::from_utf8_lossy(v).into_owned()),
            _ => None,
        })
        .collect();
    let statement = match first {
        Tok::Define => match toks.get(1) {
            Some((Tok::Var(v), _)) => Statement::Define {
                name: String::from_utf8_lossy(v).into_owned(),
            },
            _ => Statement::Other,
        },
        Tok::Opt(_) => Statement::Option {
            name: first_span.clone(),
            value: joined(toks.iter().skip_while(|(t, _)| *t != Tok::Eq).skip(1))
                .unwrap_or(first_span.end..first_span.end),
        },
        Tok::SelRule | Tok::NegRule | Tok::EquRule => {
            let path = toks[1..]
                .iter()
                .take_while(|(t, _)| matches!(t, Tok::Str(_) | Tok::Var(_)));
            Statement::Rule {
                marker: first_span.clone(),
                path: joined(path).unwrap_or(first_span.end..first_span.end),
            }
        }
        Tok::Include | Tok::XInclude => Statement::Include {
            keyword: first_span.clone(),
            args: toks[1..]
                .split(|(t, _)| *t == Tok::Space)
                .filter_map(|arg| joined(arg.iter()))
                .collect(),
        },
        _ => Statement::Other,
    };
    LineView { statement, reads }
}

/// From the first token's start to the last one's end.
fn joined<'a>(mut toks: impl Iterator<Item = &'a (Tok, Range<usize>)>) -> Option<Range<usize>> {
    let first = toks.next()?.1.clone();
    let end = toks.last().map_or(first.end, |(_, s)| s.end);
    Some(first.start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(line: &'a str, r: &Range<usize>) -> &'a str {
        &line[r.clone()]
    }

    #[test]
    fn rules_options_includes_and_defines_are_found_where_the_lexer_finds_them() {
        let l = "  !/var/log/.*\\ x@@{V}y  p+sha256";
        let LineView { statement, reads } = read_line(l);
        let Statement::Rule { marker, path } = statement else {
            panic!("{statement:?}")
        };
        assert_eq!(
            (at(l, &marker), at(l, &path)),
            ("!", "/var/log/.*\\ x@@{V}y")
        );
        assert_eq!(reads, ["V"]);
        let l = "/etc p";
        let Statement::Rule { marker, path } = read_line(l).statement else {
            panic!()
        };
        assert_eq!((at(l, &marker), at(l, &path)), ("", "/etc"));

        let l = "database = file:@@{DBDIR}/aide.db.gz";
        let Statement::Option { name, value } = read_line(l).statement else {
            panic!()
        };
        assert_eq!(
            (at(l, &name), at(l, &value)),
            ("database", "file:@@{DBDIR}/aide.db.gz")
        );
        assert_eq!(read_line(l).reads, ["DBDIR"]);

        let l = "@@include /etc/aide.d .*\\.conf /pre ";
        let Statement::Include { keyword, args } = read_line(l).statement else {
            panic!()
        };
        assert_eq!(at(l, &keyword), "@@include");
        let args: Vec<&str> = args.iter().map(|a| at(l, a)).collect();
        assert_eq!(args, ["/etc/aide.d", ".*\\.conf", "/pre"]);

        assert_eq!(
            read_line("@@define DBDIR @@{X}/db"),
            LineView {
                statement: Statement::Define {
                    name: "DBDIR".into()
                },
                reads: vec!["X".into()],
            }
        );
        assert_eq!(
            read_line("@@x_include_setenv A b").statement,
            Statement::Other
        );
        assert_eq!(read_line("Group = p+u").statement, Statement::Other);
        assert_eq!(read_line("  # /etc p").statement, Statement::Nothing);
        // Refused by the lexer (tabs around `=`, an unknown option): left to the parser.
        assert_eq!(read_line("database\t= x").statement, Statement::Nothing);
        assert_eq!(read_line("databse = x").statement, Statement::Nothing);
    }
}
