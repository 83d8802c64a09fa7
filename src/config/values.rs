//! Reading typed values out of the evaluated `%CONFIG` (numbers, durations, counts,
//! strings, lists, listen addresses, WORKERS), for `build`. The checks of `validate` ran
//! before, so these only convert; a value out of range still gets a clear error.
//!
//! Data shape: free functions over a `ConfigMap`.
//! Uses: config/perl (Value, ConfigMap), the `ConfigError` of config/mod.rs.

use super::perl::{ConfigMap, Value};
use super::ConfigError;
use std::time::Duration;

pub(super) fn get<'a>(v: &'a ConfigMap, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Undef)
}

pub(super) fn num(v: &ConfigMap, key: &'static str) -> Result<f64, ConfigError> {
    let x = get(v, key).to_f64();
    if !x.is_finite() || x < 0.0 {
        return Err(ConfigError::Invalid {
            key,
            why: format!(
                "must be a non-negative number, got {}",
                get(v, key).to_perl_string()
            ),
            at: None,
        });
    }
    Ok(x)
}

pub(super) fn secs(v: &ConfigMap, key: &'static str) -> Result<Duration, ConfigError> {
    let x = num(v, key)?;
    // Cap at ten years so arithmetic on deadlines cannot overflow.
    Ok(Duration::from_secs_f64(x.min(315_360_000.0)))
}

/// WORKERS: a number, or `auto` for one per CPU; more than one needs CLUSTER_REDIS.
pub(super) fn workers(v: &ConfigMap) -> Result<usize, ConfigError> {
    let n = match get(v, "WORKERS") {
        Value::Str(s) if s == "auto" => std::thread::available_parallelism().map_or(1, |n| n.get()),
        _ => count(v, "WORKERS")?.max(1),
    };
    if n > 1 && string(v, "CLUSTER_REDIS").trim().is_empty() {
        return Err(ConfigError::Invalid {
            key: "WORKERS",
            why: format!(
                "{n} workers need CLUSTER_REDIS: workers share ids, queues and presence only through Redis (set CLUSTER_REDIS, or WORKERS = 1)"
            ),
            at: None,
        });
    }
    if n > 1 {
        let unix = string_list(v, "WAIT_ADDR")
            .into_iter()
            .chain(string_list(v, "IN_ADDR"))
            .find(|a| a.starts_with("unix:"));
        if let Some(a) = unix {
            return Err(ConfigError::Invalid {
                key: "WORKERS",
                why: format!(
                    "{n} workers cannot share the Unix socket {a} (only TCP ports are shared between workers); use WORKERS = 1 or TCP addresses"
                ),
                at: None,
            });
        }
    }
    Ok(n)
}

pub(super) fn count(v: &ConfigMap, key: &'static str) -> Result<usize, ConfigError> {
    Ok(num(v, key)?.min(1e15) as usize)
}

pub(super) fn string(v: &ConfigMap, key: &str) -> String {
    get(v, key).to_perl_string()
}

/// A list value (`[ 'a', 'b' ]`), or a scalar split on whitespace as the C++ original joins
/// lists; undef is empty.
pub(super) fn string_list(v: &ConfigMap, key: &str) -> Vec<String> {
    match get(v, key) {
        Value::List(items) => items.iter().map(Value::to_perl_string).collect(),
        Value::Undef => Vec::new(),
        other => other
            .to_perl_string()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    }
}

pub(super) fn addrs(v: &ConfigMap, key: &'static str) -> Result<Vec<String>, ConfigError> {
    let list = string_list(v, key);
    if list.is_empty() {
        return Err(ConfigError::Invalid {
            key,
            why: "at least one host:port is needed".into(),
            at: None,
        });
    }
    Ok(list)
}
