//! The grammar of AIDE 0.18's configuration language (`src/conf_yacc.y`): statements, one per
//! line, and `@@if`/`@@else`/`@@endif` blocks. A whole source is parsed before it is evaluated,
//! as AIDE does.

use super::lex::{BoolOp, Lexer, Line, Opt, Tok};
use super::ConfigError;
use crate::select::RuleKind;

/// A piece of a string expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frag {
    Str(Vec<u8>),
    Var(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttrOp {
    First,
    Plus,
    Minus,
}

/// `a+b-c`, evaluated left to right.
pub(crate) type AttrExpr = Vec<(AttrOp, Vec<u8>)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Str(Vec<Frag>),
    Attr(AttrExpr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cond {
    Not(Box<Cond>),
    Func(BoolOp, Vec<Frag>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stmt {
    Option {
        opt: Opt,
        value: Value,
    },
    Group {
        name: Vec<u8>,
        expr: AttrExpr,
    },
    Rule {
        kind: RuleKind,
        path: Vec<Frag>,
        restriction: Option<Vec<Vec<u8>>>,
        attrs: Option<AttrExpr>,
    },
    Define {
        name: Vec<u8>,
        value: Option<Vec<Frag>>,
    },
    Undef {
        name: Vec<u8>,
    },
    SetEnv {
        name: Vec<u8>,
        value: Vec<Frag>,
    },
    Include {
        exec: bool,
        path: Vec<Frag>,
        rx: Option<Vec<Frag>>,
        prefix: Option<Vec<Frag>>,
    },
    If {
        cond: Cond,
        then: Vec<Located>,
        els: Option<Vec<Located>>,
    },
}

/// A statement with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub line: usize,
    pub text: String,
    pub stmt: Stmt,
}

pub(crate) struct Parser<'a> {
    lexer: Lexer<'a>,
    file: &'a str,
    warnings: &'a mut Vec<String>,
}

/// Cursor over the tokens of one line.
struct Toks<'l> {
    line: &'l Line,
    i: usize,
}

impl<'l> Toks<'l> {
    fn peek(&self) -> Option<&'l Tok> {
        self.line.toks.get(self.i)
    }
    fn next(&mut self) -> Option<&'l Tok> {
        let t = self.line.toks.get(self.i);
        self.i += 1;
        t
    }
    fn describe_next(&self) -> String {
        match self.peek() {
            Some(t) => t.describe(),
            None if self.line.has_newline => "new line".to_string(),
            None => "end of file".to_string(),
        }
    }
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a [u8], file: &'a str, warnings: &'a mut Vec<String>) -> Parser<'a> {
        Parser {
            lexer: Lexer::new(src, file),
            file,
            warnings,
        }
    }

    fn syntax(&self, line: usize, msg: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            line,
            msg: format!("syntax error, {}", msg),
        }
    }

    fn unexpected(&self, t: &Toks<'_>, expecting: &str) -> ConfigError {
        let mut msg = format!("unexpected {}", t.describe_next());
        if !expecting.is_empty() {
            msg.push_str(", expecting ");
            msg.push_str(expecting);
        }
        self.syntax(t.line.no, msg)
    }

    /// Parse the whole source.
    pub(crate) fn parse(mut self) -> Result<Vec<Located>, ConfigError> {
        let (stmts, term) = self.block(false)?;
        debug_assert!(term.is_none());
        Ok(stmts)
    }

    fn block(&mut self, in_if: bool) -> Result<(Vec<Located>, Option<Line>), ConfigError> {
        let mut stmts = Vec::new();
        loop {
            let Some(line) = self.lexer.next_line(self.warnings)? else {
                if in_if {
                    return Err(self.syntax(
                        self.lexer.line_no(),
                        "unexpected end of file, expecting @@else or @@endif".into(),
                    ));
                }
                return Ok((stmts, None));
            };
            match line.toks[0] {
                Tok::Else | Tok::Endif => {
                    let name = line.toks[0].describe();
                    if !in_if {
                        return Err(self.syntax(
                            line.no,
                            format!("unexpected {}, expecting end of file", name),
                        ));
                    }
                    if stmts.is_empty() {
                        return Err(self.syntax(line.no, format!("unexpected {}", name)));
                    }
                    return Ok((stmts, Some(line)));
                }
                Tok::If | Tok::IfDef | Tok::IfNDef | Tok::IfHost | Tok::IfNHost => {
                    let cond = self.condition(&line)?;
                    let (then, term) = self.block(true)?;
                    let mut term = term.unwrap_or_else(|| line.clone());
                    self.only_keyword(&term)?;
                    let els = if term.toks[0] == Tok::Else {
                        let (els, t2) = self.block(true)?;
                        term = t2.unwrap_or_else(|| line.clone());
                        if term.toks[0] != Tok::Endif {
                            return Err(self.syntax(
                                term.no,
                                format!("unexpected {}", term.toks[0].describe()),
                            ));
                        }
                        self.only_keyword(&term)?;
                        Some(els)
                    } else {
                        None
                    };
                    stmts.push(Located {
                        line: line.no,
                        text: line.text.clone(),
                        stmt: Stmt::If { cond, then, els },
                    });
                }
                _ => {
                    let stmt = self.statement(&line)?;
                    stmts.push(Located {
                        line: line.no,
                        text: line.text.clone(),
                        stmt,
                    });
                }
            }
        }
    }

    /// `@@else` and `@@endif` lines hold nothing else.
    fn only_keyword(&self, line: &Line) -> Result<(), ConfigError> {
        let t = Toks { line, i: 1 };
        if t.peek().is_some() {
            return Err(self.unexpected(&t, "new line"));
        }
        if line.toks[0] == Tok::Else && !line.has_newline {
            return Err(self.unexpected(&t, "new line"));
        }
        Ok(())
    }

    fn end(&self, t: &Toks<'_>) -> Result<(), ConfigError> {
        if t.peek().is_some() {
            return Err(self.unexpected(t, "new line"));
        }
        Ok(())
    }

    fn string_expr(&self, t: &mut Toks<'_>) -> Result<Vec<Frag>, ConfigError> {
        let mut v = Vec::new();
        while let Some(tok) = t.peek() {
            match tok {
                Tok::Str(s) => v.push(Frag::Str(s.clone())),
                Tok::Var(s) => v.push(Frag::Var(s.clone())),
                _ => break,
            }
            t.next();
        }
        if v.is_empty() {
            return Err(self.unexpected(t, "string or variable name"));
        }
        Ok(v)
    }

    fn attr_expr(&self, t: &mut Toks<'_>) -> Result<AttrExpr, ConfigError> {
        let mut v = Vec::new();
        match t.next() {
            Some(Tok::Expr(s)) => v.push((AttrOp::First, s.clone())),
            _ => {
                t.i -= 1;
                return Err(self.unexpected(t, "group"));
            }
        }
        loop {
            let op = match t.peek() {
                Some(Tok::Plus) => AttrOp::Plus,
                Some(Tok::Minus) => AttrOp::Minus,
                _ => break,
            };
            t.next();
            match t.next() {
                Some(Tok::Expr(s)) => v.push((op, s.clone())),
                _ => {
                    t.i -= 1;
                    return Err(self.unexpected(t, "group"));
                }
            }
        }
        Ok(v)
    }

    fn condition(&self, line: &Line) -> Result<Cond, ConfigError> {
        let mut t = Toks { line, i: 1 };
        let cond = match line.toks[0] {
            Tok::If => self.bool_expr(&mut t)?,
            Tok::IfDef => Cond::Func(BoolOp::Defined, self.string_expr(&mut t)?),
            Tok::IfNDef => Cond::Not(Box::new(Cond::Func(
                BoolOp::Defined,
                self.string_expr(&mut t)?,
            ))),
            Tok::IfHost => Cond::Func(BoolOp::Hostname, self.string_expr(&mut t)?),
            _ => Cond::Not(Box::new(Cond::Func(
                BoolOp::Hostname,
                self.string_expr(&mut t)?,
            ))),
        };
        self.end(&t)?;
        if !line.has_newline {
            return Err(self.unexpected(&t, "new line"));
        }
        Ok(cond)
    }

    fn bool_expr(&self, t: &mut Toks<'_>) -> Result<Cond, ConfigError> {
        match t.next() {
            Some(Tok::Not) => Ok(Cond::Not(Box::new(self.bool_expr(t)?))),
            Some(Tok::BoolFunc(op)) => Ok(Cond::Func(*op, self.string_expr(t)?)),
            _ => {
                t.i -= 1;
                Err(self.unexpected(t, "not or boolean operator or function"))
            }
        }
    }

    fn statement(&self, line: &Line) -> Result<Stmt, ConfigError> {
        let mut t = Toks { line, i: 0 };
        let first = t.next().cloned();
        let stmt = match first {
            Some(Tok::Opt(opt)) => {
                self.expect_eq(&mut t)?;
                let value = match t.peek() {
                    Some(Tok::Expr(_)) => Value::Attr(self.attr_expr(&mut t)?),
                    _ => Value::Str(self.string_expr(&mut t)?),
                };
                Stmt::Option { opt, value }
            }
            Some(Tok::Group(name)) => {
                self.expect_eq(&mut t)?;
                Stmt::Group {
                    name,
                    expr: self.attr_expr(&mut t)?,
                }
            }
            Some(Tok::Define) => {
                let name = self.var_name(&mut t)?;
                let value = if t.peek().is_some() {
                    Some(self.string_expr(&mut t)?)
                } else {
                    None
                };
                Stmt::Define { name, value }
            }
            Some(Tok::Undef) => Stmt::Undef {
                name: self.var_name(&mut t)?,
            },
            Some(Tok::SetEnv) => {
                let name = self.var_name(&mut t)?;
                Stmt::SetEnv {
                    name,
                    value: self.string_expr(&mut t)?,
                }
            }
            Some(Tok::Include) | Some(Tok::XInclude) => {
                let exec = first == Some(Tok::XInclude);
                let mut args = Vec::new();
                loop {
                    if t.peek() != Some(&Tok::Space) {
                        if args.is_empty() {
                            return Err(self.unexpected(&t, "whitespace"));
                        }
                        break;
                    }
                    if args.len() == 3 {
                        return Err(self.unexpected(&t, "new line"));
                    }
                    t.next();
                    args.push(self.string_expr(&mut t)?);
                }
                let mut it = args.into_iter();
                let path = it.next().unwrap_or_default();
                Stmt::Include {
                    exec,
                    path,
                    rx: it.next(),
                    prefix: it.next(),
                }
            }
            Some(Tok::SelRule) | Some(Tok::EquRule) | Some(Tok::NegRule) => {
                let kind = match first {
                    Some(Tok::SelRule) => RuleKind::Selective,
                    Some(Tok::EquRule) => RuleKind::Equals,
                    _ => RuleKind::Negative,
                };
                let path = self.string_expr(&mut t)?;
                self.rule_tail(kind, path, &mut t)?
            }
            Some(_) => {
                t.i -= 1;
                return Err(self.unexpected(&t, ""));
            }
            None => return Err(self.unexpected(&t, "")),
        };
        self.end(&t)?;
        Ok(stmt)
    }

    fn expect_eq(&self, t: &mut Toks<'_>) -> Result<(), ConfigError> {
        if t.peek() == Some(&Tok::Eq) {
            t.next();
            Ok(())
        } else {
            Err(self.unexpected(t, "'='"))
        }
    }

    fn var_name(&self, t: &mut Toks<'_>) -> Result<Vec<u8>, ConfigError> {
        match t.peek() {
            Some(Tok::Var(n)) => {
                t.next();
                Ok(n.clone())
            }
            _ => Err(self.unexpected(t, "variable name")),
        }
    }

    /// `[restriction] [attributes]` after a rule's path, as the LALR(1) grammar decides it.
    fn rule_tail(
        &self,
        kind: RuleKind,
        path: Vec<Frag>,
        t: &mut Toks<'_>,
    ) -> Result<Stmt, ConfigError> {
        let mut restriction = None;
        let mut attrs = None;
        if let Some(Tok::Expr(first)) = t.peek() {
            let after = t.line.toks.get(t.i + 1);
            let is_restriction = match after {
                Some(Tok::Comma) | Some(Tok::Expr(_)) => true,
                Some(Tok::Plus) | Some(Tok::Minus) => false,
                _ => kind == RuleKind::Negative,
            };
            if is_restriction {
                t.next();
                let mut rs = vec![first.clone()];
                while t.peek() == Some(&Tok::Comma) {
                    t.next();
                    match t.next() {
                        Some(Tok::Expr(s)) => rs.push(s.clone()),
                        _ => {
                            t.i -= 1;
                            return Err(self.unexpected(t, "group"));
                        }
                    }
                }
                restriction = Some(rs);
                if kind == RuleKind::Negative {
                    if let Some(Tok::Expr(_)) = t.peek() {
                        return Err(ConfigError::Invalid {
                            file: self.file.to_string(),
                            line: t.line.no,
                            msg: "negative rule must not have an attribute expression".into(),
                        });
                    }
                } else {
                    if !matches!(t.peek(), Some(Tok::Expr(_))) {
                        return Err(self.unexpected(t, "group or ','"));
                    }
                    attrs = Some(self.attr_expr(t)?);
                }
            } else {
                attrs = Some(self.attr_expr(t)?);
            }
        } else if kind != RuleKind::Negative {
            return Err(self.unexpected(t, "group"));
        }
        Ok(Stmt::Rule {
            kind,
            path,
            restriction,
            attrs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<Located>, ConfigError> {
        let mut w = Vec::new();
        Parser::new(s.as_bytes(), "t", &mut w).parse()
    }

    #[test]
    fn grammar() {
        let s = parse("@@if defined X\n/a R\n@@else\n!/b\n@@endif\n").unwrap();
        assert_eq!(s.len(), 1);
        assert!(matches!(&s[0].stmt, Stmt::If { els: Some(e), .. } if e.len() == 1));
        assert!(parse("@@if defined X\n@@endif\n").is_err());
        assert!(parse("@@if defined X\n/a R\n").is_err());
        assert!(parse("/a R\n@@endif\n").is_err());
        assert!(parse("@@include /x \n").is_err());
        assert!(parse("/x f,d\n").is_err());
        let e = parse("!/x f R\n").unwrap_err().to_string();
        assert!(
            e.contains("negative rule must not have an attribute expression"),
            "{e}"
        );
        let s = parse("!/x R\n").unwrap();
        assert!(
            matches!(&s[0].stmt, Stmt::Rule { restriction: Some(r), attrs: None, .. } if r == &vec![b"R".to_vec()])
        );
        let s = parse("/x f R+p\n").unwrap();
        assert!(
            matches!(&s[0].stmt, Stmt::Rule { restriction: Some(_), attrs: Some(a), .. } if a.len() == 2)
        );
        let s = parse("@@define X\n@@define Y a@@{X}b\n").unwrap();
        assert_eq!(s.len(), 2);
        assert!(parse("@@define X a b\n").is_err());
        assert!(parse("Foo\n").is_err());
        assert!(parse("Foo = p,u\n").is_err());
        let s = parse("@@include /d ^x$ /pre\n").unwrap();
        assert!(matches!(
            &s[0].stmt,
            Stmt::Include {
                rx: Some(_),
                prefix: Some(_),
                ..
            }
        ));
        assert!(parse("@@endif\n").is_err());
        let s = parse("/a R\n# comment\n\n/b R").unwrap();
        assert_eq!(s.len(), 2);
    }
}
