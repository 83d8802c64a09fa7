//! Unit tests of the Perl-subset evaluator, one file per job: `statements` (whole files,
//! assignments, the defaults' shape), `values` (stringification, numification), `expressions`
//! (operators, terms, strings), `plain`, `builtins`, `errors` (messages and their lines,
//! nesting limits) and `hostile` (mutated input never panics).
//!
//! Data shape: helpers that evaluate text with a fixed file name (`FILE`) into a fresh or a
//! defaults-shaped `ConfigMap`.
//!
//! Uses: the module under test and `std`.

mod builtins;
mod errors;
mod expressions;
mod hostile;
mod plain;
mod statements;
mod values;

pub(super) use super::{eval_file, eval_file_with, ConfigMap, EvalOptions, PerlError, Value};

const FILE: &str = "/etc/realplexor/extra.conf";

fn eval_into(text: &str, mut config: ConfigMap) -> Result<ConfigMap, PerlError> {
    eval_file(text, FILE, &mut config).map(|()| config)
}

fn eval(text: &str) -> Result<ConfigMap, PerlError> {
    eval_into(text, ConfigMap::new())
}

fn ok(text: &str) -> ConfigMap {
    match eval(text) {
        Ok(config) => config,
        Err(e) => panic!("unexpected error {e} for:\n{text}"),
    }
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

fn list(items: &[&str]) -> Value {
    Value::List(items.iter().map(|i| s(i)).collect())
}

/// Evaluates `$CONFIG{V} = <expr>;` and returns V.
fn value_of(expr: &str) -> Result<Value, PerlError> {
    let config = eval(&format!("$CONFIG{{V}} = {expr};"))?;
    Ok(config.get("V").cloned().unwrap_or(Value::Undef))
}

/// Same shape as the stock defaults file: one commented %CONFIG block and `return 1;`.
const DEFAULTS_SHAPE: &str = r#"##
## Stock settings (test copy).
##
%CONFIG = (
    # Drop privileges to this account.
    SU_USER => "nobody",

    # Browser side.
    WAIT_TIMEOUT => 300,
    WAIT_MAXLEN => 1024 * 5,
    WAIT_ADDR => [
        '0.0.0.0:8088',
        # more addresses may follow here
    ],

    # Publisher side.
    IN_TIMEOUT => 20,
    IN_MAXLEN => 1024 * 200,
    IN_ADDR => [
        '127.0.0.1:10010'
    ],
    ID_BINDINGS_SERVERS => [ '127.0.0.1:11211' ],

    # Visibility hook, prototype: sub (id => $, cursor => $)
    HOOK_CHECK_VISIBILITY => undef,
    JS_WAIT_RECONNECT_DELAY => 0.01,
    JS_WAIT_URI => '/',
    CHARSET => "utf-8",
    VERBOSITY => 3,
    MAX_MEM_MB => 0,
);

return 1;
"#;

fn defaults() -> ConfigMap {
    ok(DEFAULTS_SHAPE)
}
