//! The expression level of the evaluator: additive and multiplicative operators, unary
//! minus and `**`, terms (numbers, strings, variables, `$CONFIG{KEY}`, lists, array
//! references and indexing, `undef`, `__FILE__`, `__LINE__`, `sub {...}`, builtin calls).
//! Every construct Perl has but a config does not need is an error naming it.
//!
//! Data shape: methods on `Parser` (see `parser.rs`) returning `Ev`; nesting is bounded by
//! MAX_DEPTH so hostile input cannot overflow the stack.
//!
//! Uses: `parser`, `lexer`, `numbers`, `builtins`, `super::{Value, Fail, Res, fail,
//! value_bytes, list_bytes}`.

use super::builtins::{builtin, call_builtin};
use super::lexer::{Tok, Token};
use super::numbers::{binop, index_value, negate, repeat_list};
use super::parser::{describe, Ev, Parser};
use super::{fail, list_bytes, value_bytes, Fail, Res, Value};

/// Deepest nesting of brackets, parentheses and unary operators; deeper input is rejected
/// with an error instead of risking a stack overflow in the recursive parser.
const MAX_DEPTH: usize = 64;

impl Parser<'_, '_> {
    /// Additive level: `+ - .`, left associative.
    pub(super) fn parse_expr(&mut self) -> Res<Ev> {
        let mut lhs = self.parse_multiplicative()?;
        loop {
            let op = match self.tok.tok {
                Tok::Punct(p @ ("+" | "-" | ".")) => p,
                _ => return Ok(lhs),
            };
            let line = self.tok.line;
            self.advance()?;
            let rhs = self.parse_multiplicative()?.scalar();
            let v = binop(op, lhs.scalar(), rhs).map_err(|message| Fail { line, message })?;
            self.charge(line, value_bytes(&v))?;
            lhs = Ev::One(v);
        }
    }

    /// `* / % x`, left associative. `x` on a parenthesised list repeats the list.
    fn parse_multiplicative(&mut self) -> Res<Ev> {
        let mut lhs = self.parse_unary()?;
        loop {
            let op = match self.tok.tok {
                Tok::Punct(p @ ("*" | "/" | "%" | "x")) => p,
                _ => return Ok(lhs),
            };
            let line = self.tok.line;
            self.advance()?;
            let rhs = self.parse_unary()?.scalar();
            let result = match (op, lhs) {
                ("x", Ev::Many(items)) => {
                    let scalar = items.last().cloned().unwrap_or(Value::Undef);
                    repeat_list(items, &rhs).and_then(|list| {
                        let scalar = binop("x", scalar, rhs)?;
                        Ok(Ev::Repeat { list, scalar })
                    })
                }
                (_, lhs) => binop(op, lhs.scalar(), rhs).map(Ev::One),
            };
            lhs = result.map_err(|message| Fail { line, message })?;
            let bytes = match &lhs {
                Ev::One(v) => value_bytes(v),
                Ev::Repeat { list, scalar } => value_bytes(scalar).saturating_add(list_bytes(list)),
                Ev::Many(items) => list_bytes(items),
            };
            self.charge(line, bytes)?;
        }
    }

    /// Every recursive path goes through here, so this is where nesting is bounded.
    fn parse_unary(&mut self) -> Res<Ev> {
        if self.depth >= MAX_DEPTH {
            return fail(
                self.tok.line,
                format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
            );
        }
        self.depth += 1;
        let result = self.parse_unary_inner();
        self.depth -= 1;
        result
    }

    /// Unary minus binds looser than `**` (`-2**2` is -4) but `**` accepts a signed right
    /// operand (`2**-1`) and is right associative (`2**3**2` is 512).
    fn parse_unary_inner(&mut self) -> Res<Ev> {
        let line = self.tok.line;
        if self.is("-") {
            self.advance()?;
            let v = self.parse_unary()?.scalar();
            return negate(v)
                .map(Ev::One)
                .map_err(|message| Fail { line, message });
        }
        if self.is("+") {
            self.advance()?;
            return self.parse_unary();
        }
        let base = self.parse_primary()?;
        if !self.is("**") {
            return Ok(base);
        }
        let line = self.tok.line;
        self.advance()?;
        let exponent = self.parse_unary()?.scalar();
        binop("**", base.scalar(), exponent)
            .map(Ev::One)
            .map_err(|message| Fail { line, message })
    }

    fn parse_primary(&mut self) -> Res<Ev> {
        let Token { tok, line, start } = self.tok.clone();
        let one = |v: Value| Ok(Ev::One(v));
        match tok {
            Tok::Int(i) => {
                self.advance()?;
                one(Value::Int(i))
            }
            Tok::Num(f) => {
                self.advance()?;
                one(Value::Num(f))
            }
            Tok::Str(s) => {
                self.advance()?;
                one(Value::Str(s))
            }
            Tok::Interp { body, line } => {
                let s = self.interpolate(&body, line)?;
                self.advance()?;
                one(Value::Str(s))
            }
            Tok::Words(words) => {
                self.advance()?;
                Ok(Ev::Many(words.into_iter().map(Value::Str).collect()))
            }
            Tok::Scalar(name) => {
                self.advance()?;
                self.scalar_term(&name, line)
            }
            Tok::Hash(name) if name == "CONFIG" => {
                self.advance()?;
                let pairs = self
                    .config
                    .iter()
                    .flat_map(|(k, v)| [Value::Str(k.clone()), v.clone()]);
                Ok(Ev::Many(pairs.collect()))
            }
            Tok::Hash(name) => fail(line, format!("unsupported construct: hash '%{name}'")),
            Tok::Array(name) => fail(line, format!("unsupported construct: array '@{name}'")),
            Tok::Punct("(") => {
                self.advance()?;
                // Even `(1)` is a list: `(1) x 3` repeats it in list context.
                Ok(Ev::Many(self.parse_list(")", line)?))
            }
            Tok::Punct("[") => {
                self.advance()?;
                let items = self.parse_list("]", line)?;
                self.subscripts(Value::List(items), false)
            }
            Tok::Punct("{") => fail(line, "unsupported construct: hash reference '{...}'"),
            Tok::Punct("\\") => fail(line, "unsupported construct: reference '\\'"),
            Tok::Punct("<<") => fail(line, "unsupported construct: here-document '<<'"),
            Tok::Punct("`") => fail(line, "unsupported construct: command '`...`'"),
            Tok::Ident(word) => self.word_term(&word, line, start),
            Tok::Eof => fail(
                line,
                "syntax error: unexpected end of file, expected a value",
            ),
            other => fail(
                line,
                format!("syntax error: unexpected {}", describe(&other)),
            ),
        }
    }

    /// `$CONFIG{KEY}` or a lexical `$name`, with optional `->[i]` / `[i]` indexing.
    fn scalar_term(&mut self, name: &str, line: usize) -> Res<Ev> {
        if name == "CONFIG" && self.is("{") {
            let key = self.subscript_key()?;
            let value = self.config.get(&key).cloned().unwrap_or(Value::Undef);
            return self.subscripts(value, true);
        }
        if self.is("{") {
            return fail(
                line,
                format!("unsupported construct: hash element '${name}{{...}}'"),
            );
        }
        if self.is("[") {
            return fail(
                line,
                format!("unsupported construct: array element '${name}[...]'"),
            );
        }
        match self.vars.get(name) {
            Some(value) => {
                let value = value.clone();
                self.subscripts(value, false)
            }
            None => fail(line, format!("unknown variable ${name}")),
        }
    }

    /// Array indexing after a value. Between subscripts the arrow is optional, as in Perl
    /// (`$CONFIG{WAIT_ADDR}[0]`); after a plain `$name`, `[` would mean `@name`.
    fn subscripts(&mut self, mut value: Value, mut bare_bracket: bool) -> Res<Ev> {
        loop {
            if self.is("->") {
                if !self.peek_is("[") {
                    return fail(
                        self.tok.line,
                        "unsupported construct: '->' other than '->[...]'",
                    );
                }
                self.advance()?;
            } else if !(bare_bracket && self.is("[")) {
                return Ok(Ev::One(value));
            }
            let line = self.tok.line;
            self.advance()?;
            let index = self.parse_expr()?.scalar();
            if !self.is("]") {
                return self.unexpected("']' after array index");
            }
            self.advance()?;
            value = index_value(value, &index).map_err(|message| Fail { line, message })?;
            bare_bracket = true;
        }
    }

    fn word_term(&mut self, word: &str, line: usize, start: usize) -> Res<Ev> {
        match word {
            "undef" => {
                self.advance()?;
                if self.is("(") {
                    return fail(line, "unsupported construct: 'undef(...)'");
                }
                return Ok(Ev::One(Value::Undef));
            }
            "__FILE__" => {
                self.advance()?;
                return Ok(Ev::One(Value::Str(self.file.to_string())));
            }
            "__LINE__" => {
                self.advance()?;
                return Ok(Ev::One(Value::Int(i64::try_from(line).unwrap_or(i64::MAX))));
            }
            "sub" => {
                // The lexer stands right after `sub` (peeking never moves it).
                let end = self.lex.skip_sub(line)?;
                let text = self.lex.src.get(start..end).unwrap_or("").to_string();
                self.lex.after_term = true;
                self.advance()?;
                return Ok(Ev::One(Value::Code(text)));
            }
            _ => {}
        }
        if let Some(f) = builtin(word) {
            self.advance()?;
            if !self.is("(") {
                return fail(
                    line,
                    format!("unsupported construct: '{word}' without parentheses"),
                );
            }
            let open_line = self.tok.line;
            self.advance()?;
            let args = self.parse_list(")", open_line)?;
            return call_builtin(f, word, &args)
                .map(Ev::One)
                .map_err(|message| Fail { line, message });
        }
        if self.peek_is("(") {
            fail(line, format!("unsupported construct: '{word}(...)'"))
        } else {
            fail(line, format!("unsupported construct: bareword '{word}'"))
        }
    }

    /// A comma list up to `close` (the opening bracket is already consumed). `,` and `=>`
    /// both separate, empty elements and a trailing comma are allowed, and nested
    /// parenthesised lists flatten.
    fn parse_list(&mut self, close: &'static str, open_line: usize) -> Res<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            match &self.tok.tok {
                Tok::Punct(p) if *p == close => {
                    self.advance()?;
                    break;
                }
                Tok::Punct("," | "=>") => {
                    self.advance()?;
                    continue;
                }
                Tok::Eof => {
                    let open = if close == ")" { "(" } else { "[" };
                    return fail(
                        open_line,
                        format!("syntax error: unclosed '{open}' (reached end of file)"),
                    );
                }
                // A bareword before `=>` is a string, whatever the word.
                Tok::Ident(word) if self.peek_is("=>") => {
                    items.push(Value::Str(word.clone()));
                    self.advance()?;
                }
                _ => items.extend(self.parse_expr()?.into_list()),
            }
            match &self.tok.tok {
                Tok::Punct(p) if *p == close || *p == "," || *p == "=>" => {}
                Tok::Eof => {}
                _ => return self.unexpected(&format!("',' or '{close}' in list")),
            }
        }
        Ok(items)
    }
}
