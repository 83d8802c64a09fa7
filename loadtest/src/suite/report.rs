//! The suite's `results.md`: the machine and command, then one table row per figure (one
//! column per server, the ratio of the first two, the target and whether it is met), the
//! runs that failed, then the kernel-floor paragraphs (`notes`).
//!
//! Uses: `results` (figures out of results.json), `notes`.

use super::notes::{fanout_floor_note, floor_note};
use super::results::{fmt_num, run_of, server_names, sizes, value_of, variants};
use serde_json::Value;
use std::fmt::Write as _;

type Check = fn(f64, Option<f64>) -> Option<bool>;

struct Row {
    label: String,
    key: String,
    field: &'static str,
    target: &'static str,
    check: Option<Check>,
}

fn rows(results: &Value) -> Vec<Row> {
    let mut out = Vec::new();
    let mut add = |label: String, key: &str, field, target, check: Option<Check>| {
        out.push(Row {
            label,
            key: key.to_string(),
            field,
            target,
            check,
        })
    };
    let idle = sizes(results, "idle");
    for (i, k) in idle.iter().enumerate() {
        let big = i + 1 == idle.len();
        let n = k.split_once('@').map_or("", |x| x.1);
        add(
            format!("idle {n}: server RSS per connection (bytes)"),
            k,
            "rss_per_conn",
            if big { "<= 512" } else { "" },
            if big {
                Some(|v, _| Some(v <= 512.0))
            } else {
                None
            },
        );
        add(
            format!("idle {n}: RSS growth per connection, first cycle (bytes)"),
            k,
            "rss_growth_first_cycle_per_conn",
            "",
            None,
        );
        add(
            format!("idle {n}: RSS growth per connection per later cycle (bytes)"),
            k,
            "rss_growth_per_conn_per_cycle",
            if big { "< 16" } else { "" },
            if big {
                Some(|v, _| Some(v < 16.0))
            } else {
                None
            },
        );
        add(
            format!("idle {n}: connects/s"),
            k,
            "connects_per_s",
            "",
            None,
        );
    }
    let fan = sizes(results, "fanout");
    for (i, k) in fan.iter().enumerate() {
        let big = i + 1 == fan.len();
        let n = k.split_once('@').map_or("", |x| x.1);
        add(
            format!("fanout {n}: first delivery (ms)"),
            k,
            "first_ms",
            if big { "< 1" } else { "" },
            if big {
                Some(|v, _| Some(v < 1.0))
            } else {
                None
            },
        );
        add(
            format!("fanout {n}: median delivery (ms)"),
            k,
            "median_ms",
            "",
            None,
        );
        add(
            format!("fanout {n}: last delivery (ms)"),
            k,
            "last_ms",
            if big { "<= 0.85x other" } else { "" },
            if big {
                Some(|v, o| o.map(|o| v <= 0.85 * o))
            } else {
                None
            },
        );
        add(
            format!("fanout {n}: server CPU for the push (ms)"),
            k,
            "server_cpu_ms",
            if big { "<= 0.7x other" } else { "" },
            if big {
                Some(|v, o| o.map(|o| v <= 0.7 * o))
            } else {
                None
            },
        );
    }
    for k in sizes(results, "publish") {
        let n = k.split_once('@').map_or("", |x| x.1).to_string();
        add(
            format!("publish ({n} listeners): pushes/s"),
            &k,
            "pushes_per_s",
            "",
            None,
        );
        add(
            format!("publish ({n} listeners): server CPU per push (us)"),
            &k,
            "server_cpu_per_push_us",
            "<= 0.25x other, <= 45",
            Some(|v, o| Some(v <= 45.0 && o.is_none_or(|o| v <= 0.25 * o))),
        );
        add(
            format!("publish ({n} listeners): latency p50 (ms)"),
            &k,
            "p50_ms",
            "",
            None,
        );
        add(
            format!("publish ({n} listeners): latency p99 (ms)"),
            &k,
            "p99_ms",
            "< 4.7 (nchan)",
            Some(|v, _| Some(v < 4.7)),
        );
    }
    for k in sizes(results, "multi") {
        for f in ["lost", "duplicates", "out_of_order"] {
            add(
                format!("multi: {}", f.replace('_', " ")),
                &k,
                f,
                "0",
                Some(|v, _| Some(v == 0.0)),
            );
        }
    }
    add_variant_rows(results, &mut out);
    out
}

/// The figures shown for a scenario's other transports and APIs (no targets: those are
/// set for the base runs).
const VARIANT_FIGURES: &[(&str, &[(&str, &str)])] = &[
    (
        "idle",
        &[
            ("server RSS per connection (bytes)", "rss_per_conn"),
            ("connects/s", "connects_per_s"),
        ],
    ),
    (
        "fanout",
        &[
            ("first delivery (ms)", "first_ms"),
            ("median delivery (ms)", "median_ms"),
            ("last delivery (ms)", "last_ms"),
            ("server CPU for the push (ms)", "server_cpu_ms"),
        ],
    ),
    (
        "publish",
        &[
            ("pushes/s", "pushes_per_s"),
            ("server CPU per push (us)", "server_cpu_per_push_us"),
            ("latency p50 (ms)", "p50_ms"),
            ("latency p99 (ms)", "p99_ms"),
        ],
    ),
];

/// Rows for the runs over other transports and APIs (`fanout+sse@19000`), each block
/// right after its scenario's base rows, so they read side by side.
fn add_variant_rows(results: &Value, out: &mut Vec<Row>) {
    for (scenario, figures) in VARIANT_FIGURES {
        let mut block = Vec::new();
        for v in variants(results, scenario) {
            if v.is_empty() {
                continue;
            }
            let via = v.trim_start_matches('+').replace('+', " + ");
            for key in sizes(results, &format!("{scenario}{v}")) {
                let n = key.split_once('@').map_or("", |x| x.1);
                let what = if *scenario == "publish" {
                    format!("publish ({n} listeners) via {via}")
                } else {
                    format!("{scenario} {n} via {via}")
                };
                for (label, field) in figures.iter() {
                    block.push(Row {
                        label: format!("{what}: {label}"),
                        key: key.clone(),
                        field,
                        target: "",
                        check: None,
                    });
                }
            }
        }
        let base_of = |r: &Row| r.key.split_once('@').map(|x| x.0) == Some(*scenario);
        let at = out.iter().rposition(base_of).map_or(out.len(), |p| p + 1);
        out.splice(at..at, block);
    }
}

/// The markdown table: one row per figure, one column per server, the ratio, the target.
pub fn markdown(results: &Value) -> String {
    let names = server_names(results);
    let m = &results["machine"];
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Machine: {} cores ({}), {} MB RAM, Linux {}; open files {} per process. \
         Load average {} at start, {} at end: the machine was shared, so figures are noisy.\n",
        m["cores"],
        m["cpu"].as_str().unwrap_or("?"),
        m["memory_mb"],
        m["kernel"].as_str().unwrap_or("?"),
        m["nofile_limit"],
        results["loadavg_start"]
            .as_str()
            .unwrap_or("?")
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        results["loadavg_end"]
            .as_str()
            .unwrap_or("?")
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let rounds = results["rounds"].as_u64().unwrap_or(1);
    let _ = writeln!(
        s,
        "Command: `{}`. Every figure below was measured in this one run{}{}.\n",
        results["command"].as_str().unwrap_or("?"),
        if names.len() > 1 {
            ", each server on a fresh process, scenario by scenario in turn (so each comparison is same-run)"
        } else {
            ""
        },
        if rounds > 1 {
            format!(
                "; each scenario ran {rounds} times, the servers alternating, and each figure is \
                 the median of its {rounds} values"
            )
        } else {
            String::new()
        }
    );
    let _ = write!(s, "| figure |");
    for n in &names {
        let _ = write!(s, " {n} |");
    }
    if names.len() > 1 {
        let _ = write!(s, " ratio {}/{} |", names[0], names[1]);
    }
    let _ = writeln!(s, " target | met |");
    let cols = names.len() + if names.len() > 1 { 3 } else { 2 };
    let _ = writeln!(s, "|---|{}", "---|".repeat(cols));
    for r in rows(results) {
        let vals: Vec<Option<f64>> = names
            .iter()
            .map(|n| value_of(results, n, &r.key, r.field))
            .collect();
        let _ = write!(s, "| {} |", r.label);
        for (n, v) in names.iter().zip(&vals) {
            let err = run_of(results, n, &r.key)
                .and_then(|v| v["error"].as_str())
                .is_some();
            let _ = write!(
                s,
                " {} |",
                v.map(fmt_num)
                    .unwrap_or_else(|| if err { "error".into() } else { "-".into() })
            );
        }
        let ours = vals.first().copied().flatten();
        let other = vals.get(1).copied().flatten();
        if names.len() > 1 {
            let ratio = match (ours, other) {
                (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
                _ => "-".into(),
            };
            let _ = write!(s, " {ratio} |");
        }
        let met = match (ours, r.check) {
            (Some(v), Some(c)) => match c(v, other) {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "n/a",
            },
            _ => "",
        };
        let _ = writeln!(s, " {} | {met} |", r.target);
    }
    let bad: Vec<String> = results["runs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["ok"] == false)
                .map(|r| {
                    format!(
                        "{} {}",
                        r["server"].as_str().unwrap_or("?"),
                        r["key"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if !bad.is_empty() {
        let _ = writeln!(
            s,
            "\nRuns with failures (see results.json): {}.",
            bad.join(", ")
        );
    }
    if let Some(note) = floor_note(results) {
        s.push_str(&note);
    }
    if let Some(note) = fanout_floor_note(results) {
        s.push_str(&note);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::results::sample;
    use super::*;
    use serde_json::json;

    #[test]
    fn markdown_rows_ratios_and_targets() {
        let md = markdown(&sample());
        assert!(
            md.contains("| figure | ours | orig | ratio ours/orig | target | met |"),
            "{md}"
        );
        assert!(md.contains("| idle 19000: server RSS per connection (bytes) | 300 | 1400 | 0.21 | <= 512 | yes |"), "{md}");
        assert!(
            md.contains(
                "| fanout 19000: last delivery (ms) | 100 | 400 | 0.25 | <= 0.85x other | yes |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| multi: lost | - | error | - | 0 |  |"),
            "{md}"
        );
        assert!(
            md.contains("Runs with failures (see results.json): orig multi@200."),
            "{md}"
        );
        assert!(md.contains("2 cores"));
    }

    #[test]
    fn floor_note_sets_publish_cpu_against_the_floor() {
        let mut r = sample();
        assert_eq!(floor_note(&r), None, "no floor run, no note");
        r["floor"] = json!({"server_cpu_per_push_us": 50.0});
        if let Some(runs) = r["runs"].as_array_mut() {
            runs.push(
                json!({"key": "publish@1000", "scenario": "publish", "server": "ours",
                "server_cpu_per_push_us": 60.0, "ok": true}),
            );
            runs.push(
                json!({"key": "publish@1000", "scenario": "publish", "server": "orig",
                "server_cpu_per_push_us": 160.0, "ok": true}),
            );
        }
        let md = markdown(&r);
        assert!(md.contains("used **50 us** of CPU per push"), "{md}");
        assert!(
            md.contains("ours 60 us = 1.20x the floor; orig 160 us = 3.20x the floor."),
            "{md}"
        );
        assert!(
            md.contains("A quarter of orig's figure would be 40 us, 0.80x the floor."),
            "{md}"
        );
    }

    #[test]
    fn fanout_floor_note_sets_each_size_against_its_floor() {
        let mut r = sample();
        assert_eq!(fanout_floor_note(&r), None, "no floor runs, no note");
        r["floor_fanout"] = json!([
            {"key": "fanout@19000", "server": "kernel-floor", "server_cpu_ms": 40.0,
             "last_ms": 80.0, "ok": true},
            {"key": "fanout@19000", "server": "kernel-floor", "server_cpu_ms": 25.0,
             "last_ms": 50.0, "ok": true},
            {"key": "fanout@19000", "server": "kernel-floor", "server_cpu_ms": 30.0,
             "last_ms": 60.0, "ok": true},
        ]);
        let md = markdown(&r);
        assert!(
            md.contains("To 19000 listeners it used **30 ms** of CPU for the push and delivered the last one at 60 ms: \
                 ours 50 ms = 1.67x the floor, last delivery 100 ms = 1.67x; \
                 orig 400 ms = 13.33x the floor, last delivery 400 ms = 6.67x."),
            "{md}"
        );
        assert!(
            md.contains("`realplexor-loadtest floor-server --fanout`"),
            "{md}"
        );
    }

    #[test]
    fn variants_read_side_by_side() {
        let mut r = sample();
        if let Some(runs) = r["runs"].as_array_mut() {
            runs.push(
                json!({"key": "fanout+sse@19000", "scenario": "fanout", "server": "ours",
                "first_ms": 0.4, "median_ms": 20.0, "last_ms": 90.0, "server_cpu_ms": 45.0,
                "ok": true}),
            );
            runs.push(
                json!({"key": "publish+http@1000", "scenario": "publish", "server": "ours",
                "pushes_per_s": 20000.0, "ok": true}),
            );
        }
        let md = markdown(&r);
        assert!(
            md.contains(
                "| fanout 19000: server CPU for the push (ms) | 50 | 400 | 0.12 | <= 0.7x other | yes |\n\
                 | fanout 19000 via sse: first delivery (ms) | 0.40 | - | - |  |  |\n"
            ),
            "{md}"
        );
        assert!(
            md.contains("| publish (1000 listeners) via http: pushes/s | 20000 | - | - |  |  |"),
            "{md}"
        );
        assert!(
            !md.contains("publish (1000 listeners): pushes/s"),
            "no base publish run: {md}"
        );
    }

    #[test]
    fn rounds_give_medians() {
        let mut r = sample();
        r["rounds"] = json!(3);
        if let Some(runs) = r["runs"].as_array_mut() {
            for (v, cpu) in [(90.0, 10.0), (500.0, 30.0)] {
                runs.push(
                    json!({"key": "fanout@19000", "scenario": "fanout", "server": "ours",
                    "first_ms": 0.5, "last_ms": v, "server_cpu_ms": cpu, "ok": true}),
                );
            }
        }
        let md = markdown(&r);
        // last_ms 90, 100, 500 -> 100; server_cpu_ms 10, 30, 50 -> 30.
        assert!(
            md.contains("| fanout 19000: last delivery (ms) | 100 | 400 | 0.25 |"),
            "{md}"
        );
        assert!(
            md.contains("| fanout 19000: server CPU for the push (ms) | 30 | 400 |"),
            "{md}"
        );
        assert!(
            md.contains("each figure is the median of its 3 values"),
            "{md}"
        );
    }
}
