//! Reading figures back out of a suite's `results.json` (`{servers: [{name}], runs: [{key:
//! "fanout@19000", scenario, server, round, <figures>...}]}`): a server's runs of one
//! scenario, the median over rounds, the sizes run, and how a figure is printed.
//!
//! Uses: serde_json only.

use serde_json::Value;

pub(super) fn run_of<'a>(results: &'a Value, server: &str, key_prefix: &str) -> Option<&'a Value> {
    runs_of(results, server, key_prefix).next()
}

/// Every run (one per round) of one server in the scenarios whose key starts so.
pub(super) fn runs_of<'a: 'b, 'b>(
    results: &'a Value,
    server: &'b str,
    key_prefix: &'b str,
) -> impl Iterator<Item = &'a Value> + 'b {
    results["runs"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(move |r| {
            r["server"] == server && r["key"].as_str().is_some_and(|k| k.starts_with(key_prefix))
        })
}

/// The lower median (the middle value of an odd count).
pub(super) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len().checked_sub(1)? / 2).copied()
}

/// A figure of one server: the median over its rounds of that scenario.
pub(super) fn value_of(
    results: &Value,
    server: &str,
    key_prefix: &str,
    field: &str,
) -> Option<f64> {
    median(
        runs_of(results, server, key_prefix)
            .filter_map(|r| r[field].as_f64())
            .collect(),
    )
}

/// The round whose `field` is the median (for figures drawn from one run, the CDF).
pub(super) fn median_run<'a>(
    results: &'a Value,
    server: &str,
    key_prefix: &str,
    field: &str,
) -> Option<&'a Value> {
    let m = value_of(results, server, key_prefix, field)?;
    runs_of(results, server, key_prefix).find(|r| r[field].as_f64() == Some(m))
}

pub(super) fn server_names(results: &Value) -> Vec<String> {
    results["servers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The keys run for a scenario or variant (`idle` -> `idle@1000`, `idle@19000`;
/// `fanout+sse` -> `fanout+sse@19000`), by size, largest last.
pub(super) fn sizes(results: &Value, scenario: &str) -> Vec<String> {
    let mut v: Vec<(u64, String)> = results["runs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["key"].as_str())
                .filter(|k| k.split_once('@').is_some_and(|(s, _)| s == scenario))
                .filter_map(|k| Some((k.split_once('@')?.1.parse().ok()?, k.to_string())))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v.into_iter().map(|(_, k)| k).collect()
}

/// A scenario's variants in this run: `""` (the base) first, then `"+sse"`, `"+http"`..
pub(super) fn variants(results: &Value, scenario: &str) -> Vec<String> {
    let mut v: Vec<String> = results["runs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["key"].as_str()?.split_once('@'))
                .filter_map(|(s, _)| s.strip_prefix(scenario))
                .filter(|rest| rest.is_empty() || rest.starts_with('+'))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

pub(super) fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A two-server results.json for the report and chart tests.
#[cfg(test)]
pub(super) fn sample() -> Value {
    use serde_json::json;
    json!({
        "machine": {"cores": 2, "cpu": "x", "memory_mb": 1000, "kernel": "6", "nofile_limit": 20000},
        "command": "scripts/bench", "loadavg_start": "1.0 1.0 1.0 1/1 1", "loadavg_end": "2 2 2",
        "servers": [{"name": "ours", "cmd": "a"}, {"name": "orig", "cmd": "b"}],
        "runs": [
            {"key": "idle@19000", "scenario": "idle", "server": "ours", "rss_per_conn": 300.0,
             "rss_growth_per_conn_per_cycle": 1.0, "connects_per_s": 5000.0, "ok": true},
            {"key": "idle@19000", "scenario": "idle", "server": "orig", "rss_per_conn": 1400.0, "ok": true},
            {"key": "fanout@19000", "scenario": "fanout", "server": "ours", "first_ms": 0.5,
             "last_ms": 100.0, "server_cpu_ms": 50.0, "cdf_ms": [0.5, 50.0, 100.0], "ok": true},
            {"key": "fanout@19000", "scenario": "fanout", "server": "orig", "first_ms": 10.0,
             "last_ms": 400.0, "server_cpu_ms": 400.0, "cdf_ms": [10.0, 200.0, 400.0], "ok": true},
            {"key": "multi@200", "scenario": "multi", "server": "orig", "error": "boom", "ok": false},
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_sizes() {
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.0));
        assert_eq!(median(Vec::new()), None);
        let s = sample();
        assert_eq!(sizes(&s, "idle"), vec!["idle@19000".to_string()]);
        assert_eq!(
            server_names(&s),
            vec!["ours".to_string(), "orig".to_string()]
        );
        assert_eq!(value_of(&s, "orig", "fanout@", "last_ms"), Some(400.0));
        assert_eq!(fmt_num(12.345), "12.3");
    }
}
