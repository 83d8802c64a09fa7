//! The statement level of the evaluator: runs a file top to bottom, one statement at a
//! time, as Perl does (`use`/`no`/`package`/`require` skipped, `my`/`our` lexicals,
//! `%CONFIG = (...)`, `$CONFIG{KEY} op= ...`, `return`, `__END__`, named `sub`s skipped).
//!
//! Data shape: `Parser { lex, tok, file, config, vars, depth, built, merge, notes, lines,
//! returned }`: the lexer and its current token, the `%CONFIG` map being updated, the file's
//! lexical scalars, the nesting depth (bounded in `expr.rs`), the bytes built so far
//! (bounded here), whether `%CONFIG = (...)` merges, the warnings, the line that set each
//! key, and the state saved at `return` (what follows is read for errors, warned about and
//! undone). Expressions
//! evaluate to `Ev` (a scalar, a list, or a repeated list that is both).
//!
//! Uses: `lexer`, `numbers`, `builtins`, `super::{ConfigMap, Value, Fail, Res, fail, clip,
//! value_bytes}` and `std`. Expressions live in `expr.rs`, strings in `strings.rs`.

use super::builtins::builtin;
use super::lexer::{is_identifier, Lexer, Tok, Token};
use super::numbers::{binop, format_num};
use super::{clip, fail, value_bytes, ConfigMap, EvalOptions, Fail, Res, Value};
use std::collections::{BTreeMap, HashMap};

/// Bytes that `.`, `x` and list repetition may build in one file, all values together:
/// without it, a few lines of `'x' x 6e7` (each within MAX_STRING_LEN) would exhaust
/// memory.
const MAX_BUILT: usize = 128 << 20;

/// How a token reads in an error message.
pub(super) fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Eof => "end of file".to_string(),
        Tok::Int(i) => format!("'{i}'"),
        Tok::Num(f) => format!("'{}'", format_num(*f)),
        Tok::Str(s) => format!("string '{}'", clip(s)),
        Tok::Interp { body, .. } => format!("string \"{}\"", clip(body)),
        Tok::Words(_) => "'qw(...)'".to_string(),
        Tok::Scalar(n) => format!("'${n}'"),
        Tok::Hash(n) => format!("'%{n}'"),
        Tok::Array(n) => format!("'@{n}'"),
        Tok::Ident(n) => format!("'{n}'"),
        Tok::Punct(p) => format!("'{p}'"),
    }
}

/// What an assignment operator does: None for plain `=`, else the binary operator.
fn assignment_op(p: &str) -> Option<Option<&'static str>> {
    Some(match p {
        "=" => None,
        "+=" => Some("+"),
        "-=" => Some("-"),
        "*=" => Some("*"),
        "/=" => Some("/"),
        "%=" => Some("%"),
        "**=" => Some("**"),
        ".=" => Some("."),
        "x=" => Some("x"),
        _ => return None,
    })
}

/// Whether the token assigns; `||=` and friends count so that they are reported by name.
fn is_assignment(tok: &Tok) -> bool {
    match tok {
        Tok::Punct(p) => assignment_op(p).is_some() || matches!(*p, "||=" | "&&=" | "//="),
        _ => false,
    }
}

/// The result of an expression. Perl gives some expressions a different value in list and
/// in scalar context; which one is wanted is only known by the consumer, so both are kept.
pub(super) enum Ev {
    One(Value),
    /// A list: parentheses, `qw`, `%CONFIG`. In scalar context it is its last element, as
    /// with Perl's comma operator.
    Many(Vec<Value>),
    /// `(LIST) x N`: the repeated list in list context, a repeated string in scalar context.
    Repeat {
        list: Vec<Value>,
        scalar: Value,
    },
}

impl Ev {
    pub(super) fn scalar(self) -> Value {
        match self {
            Ev::One(v) | Ev::Repeat { scalar: v, .. } => v,
            Ev::Many(mut items) => items.pop().unwrap_or(Value::Undef),
        }
    }

    pub(super) fn into_list(self) -> Vec<Value> {
        match self {
            Ev::One(v) => vec![v],
            Ev::Many(items) | Ev::Repeat { list: items, .. } => items,
        }
    }
}

/// What a file's evaluation reports besides the values: warnings (line, message) and the
/// line of the statement that last set each key.
pub(super) struct Report {
    pub(super) notes: Vec<(usize, String)>,
    pub(super) lines: BTreeMap<String, usize>,
}

pub(super) fn eval_perl(
    text: &str,
    file: &str,
    config: &mut ConfigMap,
    options: EvalOptions,
) -> Res<Report> {
    let mut lex = Lexer::new(text);
    let tok = lex.next(true)?;
    let mut parser = Parser {
        lex,
        tok,
        file,
        config,
        vars: HashMap::new(),
        depth: 0,
        built: 0,
        merge: options.merge_hash_assignment,
        notes: Vec::new(),
        lines: BTreeMap::new(),
        returned: None,
    };
    parser.run()?;
    Ok(Report {
        notes: parser.notes,
        lines: parser.lines,
    })
}

/// What the file had set when it reached `return`: Perl stops running the file there, so
/// this is restored at the end, after the rest was read for errors.
struct Returned {
    config: ConfigMap,
    lines: BTreeMap<String, usize>,
}

pub(super) struct Parser<'a, 'c> {
    pub(super) lex: Lexer<'a>,
    /// The current token; the lexer stands just after it.
    pub(super) tok: Token,
    pub(super) file: &'a str,
    pub(super) config: &'c mut ConfigMap,
    /// File-level `my`/`our` scalars.
    pub(super) vars: HashMap<String, Value>,
    pub(super) depth: usize,
    /// Bytes built by `.`, `x` and list repetition so far (see MAX_BUILT).
    pub(super) built: usize,
    /// `%CONFIG = (...)` merges instead of replacing (EvalOptions).
    merge: bool,
    /// Warnings so far: (line, message).
    notes: Vec<(usize, String)>,
    /// The line of the statement that last set each key.
    lines: BTreeMap<String, usize>,
    /// Set once a `return` ran: the state to restore at the end of the file.
    returned: Option<Returned>,
}

impl Parser<'_, '_> {
    /// Counts what an operator built against MAX_BUILT.
    pub(super) fn charge(&mut self, line: usize, bytes: usize) -> Res<()> {
        self.built = self.built.saturating_add(bytes);
        if self.built > MAX_BUILT {
            return Err(Fail {
                line,
                message: format!("strings built by this file exceed {MAX_BUILT} bytes in all"),
            });
        }
        Ok(())
    }

    pub(super) fn advance(&mut self) -> Res<()> {
        self.tok = self.lex.next(false)?;
        Ok(())
    }

    /// Moves past the `;` that ends a statement; the next token may start a POD block.
    fn advance_stmt(&mut self) -> Res<()> {
        self.tok = self.lex.next(true)?;
        Ok(())
    }

    pub(super) fn is(&self, p: &str) -> bool {
        matches!(&self.tok.tok, Tok::Punct(q) if *q == p)
    }

    /// The token after the current one (None if it cannot be lexed; advancing will then
    /// report that error properly).
    fn peek(&self) -> Option<Tok> {
        self.lex.clone().next(false).ok().map(|t| t.tok)
    }

    pub(super) fn peek_is(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if q == p)
    }

    pub(super) fn unexpected<T>(&self, expected: &str) -> Res<T> {
        fail(
            self.tok.line,
            format!(
                "syntax error: expected {expected}, found {}",
                describe(&self.tok.tok)
            ),
        )
    }

    /// Runs the file's statements in order. After a `return`, Perl has compiled the rest of
    /// the file but does not run it: the rest is still read here, so that a syntax error
    /// anywhere is reported, each statement is warned about, and what it set is undone at
    /// the end.
    fn run(&mut self) -> Res<()> {
        loop {
            let stmt_line = self.tok.line;
            if self.returned.is_some() && self.is_run_time_statement() {
                self.notes.push((
                    stmt_line,
                    "statement after 'return' skipped (Perl stops running the file at \
                     'return'; move it above 'return 1;')"
                        .to_string(),
                ));
            }
            match self.tok.tok.clone() {
                Tok::Eof => {
                    self.finish();
                    return Ok(());
                }
                Tok::Punct(";") => {
                    self.advance_stmt()?;
                    continue;
                }
                Tok::Ident(word) => match word.as_str() {
                    "__END__" | "__DATA__" => {
                        self.finish();
                        return Ok(());
                    }
                    // Module loading and package switches change nothing in %CONFIG.
                    "use" | "no" | "package" => {
                        self.skip_statement()?;
                        continue;
                    }
                    "require" => {
                        self.require(stmt_line)?;
                        continue;
                    }
                    "return" => {
                        self.advance()?;
                        if !self.is(";") && self.tok.tok != Tok::Eof {
                            self.parse_expr()?;
                        }
                        // Checked so that `return 1 if ...;` is not silently cut short.
                        self.end_statement()?;
                        if self.returned.is_none() {
                            self.returned = Some(Returned {
                                config: self.config.clone(),
                                lines: self.lines.clone(),
                            });
                        }
                        continue;
                    }
                    "my" | "our" => self.declaration(word == "my", stmt_line)?,
                    "sub" if matches!(self.peek(), Some(Tok::Ident(_))) => {
                        // A named sub: its body is never run, and it needs no ';'.
                        self.lex.skip_sub(stmt_line)?;
                        self.lex.after_term = false;
                        self.advance_stmt()?;
                        continue;
                    }
                    _ => {
                        self.parse_expr()?;
                    }
                },
                Tok::Hash(name) if name == "CONFIG" => {
                    self.advance()?;
                    self.assign_hash(stmt_line)?;
                }
                Tok::Scalar(name) if name == "CONFIG" && self.peek_is("{") => {
                    self.assign_config_element()?
                }
                Tok::Scalar(_) if self.peek().is_some_and(|t| is_assignment(&t)) => {
                    self.assign_variable()?
                }
                _ => {
                    self.parse_expr()?;
                }
            }
            self.end_statement()?;
        }
    }

    /// Whether the statement at the current token is one Perl runs (rather than an empty
    /// statement, the end of the file, or a compile-time `use`/`no`/`package`/named `sub`).
    fn is_run_time_statement(&self) -> bool {
        match &self.tok.tok {
            Tok::Eof | Tok::Punct(";") => false,
            Tok::Ident(w) => match w.as_str() {
                "__END__" | "__DATA__" | "use" | "no" | "package" => false,
                "sub" => !matches!(self.peek(), Some(Tok::Ident(_))),
                _ => true,
            },
            _ => true,
        }
    }

    /// The end of the file: undoes what statements after a `return` set.
    fn finish(&mut self) {
        if let Some(r) = self.returned.take() {
            *self.config = r.config;
            self.lines = r.lines;
        }
    }

    fn end_statement(&mut self) -> Res<()> {
        match self.tok.tok {
            Tok::Punct(";") => self.advance_stmt(),
            Tok::Eof => Ok(()),
            _ => self.unexpected("';' after statement"),
        }
    }

    fn skip_statement(&mut self) -> Res<()> {
        loop {
            match self.tok.tok {
                Tok::Eof => return Ok(()),
                Tok::Punct(";") => return self.advance_stmt(),
                _ => self.advance()?,
            }
        }
    }

    /// `require Module;` and `require 5.006;` are ignored like `use`; requiring a file
    /// would run Perl code that cannot be evaluated here, so it is reported.
    fn require(&mut self, line: usize) -> Res<()> {
        self.advance()?;
        match self.tok.tok {
            Tok::Ident(_) | Tok::Int(_) | Tok::Num(_) => self.skip_statement(),
            _ => fail(
                line,
                "unsupported construct: 'require' of a file (it would run Perl code)",
            ),
        }
    }

    fn declaration(&mut self, is_my: bool, line: usize) -> Res<()> {
        self.advance()?;
        match self.tok.tok.clone() {
            Tok::Scalar(name) if is_identifier(&name) && name != "CONFIG" => {
                self.advance()?;
                let value = if self.is("=") {
                    self.advance()?;
                    self.parse_expr()?.scalar()
                } else {
                    Value::Undef
                };
                // Inserted after evaluating: `my $x = $x` reads the older $x, as in Perl.
                self.vars.insert(name, value);
                Ok(())
            }
            Tok::Hash(name) if name == "CONFIG" && !is_my => {
                self.advance()?;
                if self.is("=") {
                    self.assign_hash(line)
                } else {
                    Ok(())
                }
            }
            Tok::Hash(name) if name == "CONFIG" => fail(
                line,
                "unsupported construct: 'my %CONFIG' would hide the real %CONFIG",
            ),
            other => fail(
                line,
                format!("unsupported construct: declaration of {}", describe(&other)),
            ),
        }
    }

    /// `%CONFIG = LIST;` (the current token is `=`): the whole hash is replaced.
    fn assign_hash(&mut self, line: usize) -> Res<()> {
        if !self.is("=") {
            return self.unexpected("'=' after %CONFIG");
        }
        self.advance()?;
        let items = self.parse_expr()?.into_list();
        if items.len() % 2 != 0 {
            return fail(
                line,
                "odd number of elements in %CONFIG assignment (a key without a value)",
            );
        }
        let pairs: Vec<(String, Value)> = {
            let mut items = items.into_iter();
            std::iter::from_fn(|| Some((items.next()?.to_perl_string(), items.next()?))).collect()
        };
        if self.merge {
            // After `return` the statement is already warned about and will be undone.
            if self.returned.is_none() {
                self.note_merge(line, &pairs);
            }
        } else {
            self.config.clear();
            self.lines.clear();
        }
        for (key, value) in pairs {
            self.lines.insert(key.clone(), line);
            self.config.insert(key, value);
        }
        Ok(())
    }

    /// In merge mode, warns when `%CONFIG = (...)` leaves out keys that are set: Perl would
    /// drop them, here they are kept.
    fn note_merge(&mut self, line: usize, pairs: &[(String, Value)]) {
        let kept: Vec<&String> = self
            .config
            .keys()
            .filter(|k| !pairs.iter().any(|(p, _)| p == *k))
            .collect();
        if kept.is_empty() {
            return;
        }
        let shown: Vec<&str> = kept.iter().take(3).map(|k| k.as_str()).collect();
        let more = if kept.len() > shown.len() {
            ", ..."
        } else {
            ""
        };
        self.notes.push((
            line,
            format!(
                "'%CONFIG = (...)' here would drop every key it does not list in Perl \
                 ({} keys: {}{more}); its keys were merged into the settings instead. \
                 Write $CONFIG{{KEY}} = value; for each key to change",
                kept.len(),
                shown.join(", ")
            ),
        ));
    }

    /// `$CONFIG{KEY} op= EXPR;`
    fn assign_config_element(&mut self) -> Res<()> {
        let line = self.tok.line;
        self.advance()?;
        let key = self.subscript_key()?;
        if !is_assignment(&self.tok.tok) {
            return self.unexpected(&format!("'=' after $CONFIG{{{}}}", clip(&key)));
        }
        let old = self.config.get(&key).cloned().unwrap_or(Value::Undef);
        let value = self.assignment(old)?;
        self.lines.insert(key.clone(), line);
        self.config.insert(key, value);
        Ok(())
    }

    /// `$name op= EXPR;` for a declared lexical.
    fn assign_variable(&mut self) -> Res<()> {
        let Tok::Scalar(name) = self.tok.tok.clone() else {
            return self.unexpected("a variable");
        };
        let Some(old) = self.vars.get(&name).cloned() else {
            return fail(self.tok.line, format!("unknown variable ${name}"));
        };
        self.advance()?;
        let value = self.assignment(old)?;
        self.vars.insert(name, value);
        Ok(())
    }

    /// Reads an assignment operator and its right side, and returns the new value.
    fn assignment(&mut self, old: Value) -> Res<Value> {
        let line = self.tok.line;
        let op = match self.tok.tok {
            Tok::Punct(p) => assignment_op(p).ok_or_else(|| Fail {
                line,
                message: format!("unsupported construct: '{p}'"),
            })?,
            _ => return self.unexpected("'='"),
        };
        self.advance()?;
        let rhs = self.parse_expr()?.scalar();
        match op {
            None => Ok(rhs),
            Some(op) => {
                let v = binop(op, old, rhs).map_err(|message| Fail { line, message })?;
                self.charge(line, value_bytes(&v))?;
                Ok(v)
            }
        }
    }

    /// `{KEY}` after `$CONFIG`: a lone bareword is a string, anything else an expression.
    pub(super) fn subscript_key(&mut self) -> Res<String> {
        let open_line = self.tok.line;
        if !self.is("{") {
            return self.unexpected("'{'");
        }
        self.advance()?;
        if let Tok::Ident(word) = &self.tok.tok {
            let word = word.clone();
            if self.peek_is("}") {
                self.advance()?;
                self.advance()?;
                return Ok(word);
            }
            let expression_word = builtin(&word).is_some()
                || matches!(word.as_str(), "__FILE__" | "__LINE__" | "undef");
            if !expression_word {
                let found = self
                    .peek()
                    .map_or_else(|| "an invalid token".to_string(), |t| describe(&t));
                return fail(
                    self.tok.line,
                    format!(
                        "syntax error: expected '}}' after $CONFIG{{{}, found {found}",
                        clip(&word)
                    ),
                );
            }
        }
        if self.tok.tok == Tok::Eof {
            return fail(
                open_line,
                "syntax error: unclosed '{' after $CONFIG (reached end of file)",
            );
        }
        let key = self.parse_expr()?.scalar().to_perl_string();
        if self.tok.tok == Tok::Eof {
            return fail(
                open_line,
                "syntax error: unclosed '{' after $CONFIG (reached end of file)",
            );
        }
        if !self.is("}") {
            return self.unexpected("'}' to close $CONFIG{...");
        }
        self.advance()?;
        Ok(key)
    }
}
