//! The standard benchmark (`scripts/bench`): idle and fanout at `--small` and `--big`
//! connections, publish and multi, against this server and optionally another compatible
//! one in the same run (scenario by scenario, alternating servers, each on a freshly
//! started process). Writes `results.json`, `results.md` (the table README shows) and
//! `chart.svg` (RSS per connection and fan-out delivery-time distribution per server).
//!
//! Structure: `results.json = { machine, command, started_unix, loadavg_start, loadavg_end,
//! servers: [{name, cmd}], runs: [{key: "idle@19000", scenario, server, ...}] }`.
//!
//! Uses: `run_scenario`, `args::Opts`.

use crate::args::Opts;
use crate::run_scenario;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

fn read_first_line(path: &str) -> String {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_default()
}

/// Cores, memory and kernel of this machine.
pub fn machine() -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem_kb: u64 = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": model,
        "memory_mb": mem_kb / 1024,
        "kernel": read_first_line("/proc/sys/kernel/osrelease"),
        "nofile_limit": nofile(),
    })
}

fn nofile() -> u64 {
    // SAFETY: getrlimit writes into the struct we own.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_max
    }
}

/// Runs the suite and writes the three files into `--out-dir`.
pub fn run(opts: &Opts, exe: Option<&Path>, argv: &[String]) -> Result<Value, String> {
    let mut servers = vec![(
        opts.name.clone(),
        opts.server_cmd.clone().unwrap_or_default(),
    )];
    if let Some(o) = &opts.other {
        servers.push((opts.other_name.clone(), o.clone()));
    }
    let plan: Vec<(&str, usize)> = vec![
        ("idle", opts.small),
        ("idle", opts.big),
        ("fanout", opts.small),
        ("fanout", opts.big),
        ("publish", opts.publish_listeners),
        ("multi", 200),
    ];
    let command = std::env::var("BENCH_COMMAND")
        .unwrap_or_else(|_| format!("realplexor-loadtest {}", argv.join(" ")));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let load0 = read_first_line("/proc/loadavg");
    let mut runs = Vec::new();
    for (scenario, n) in plan {
        for round in 0..opts.rounds {
            for (name, cmd) in &servers {
                let mut o = scenario_opts(opts, scenario, n, name, cmd);
                if scenario == "multi" {
                    o.pushes = opts.pushes.min(3000);
                }
                let key = format!("{scenario}@{n}");
                let mut v = match run_scenario(&o, exe) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("{name} {key}: {e}");
                        json!({"scenario": scenario, "server": name, "error": e, "ok": false})
                    }
                };
                v["key"] = json!(key);
                v["round"] = json!(round);
                runs.push(v);
            }
        }
    }
    // The publish exchange's kernel floor, in the same run: the minimal server built into
    // this binary (see `floor`), so the report can say how much of each server's CPU per
    // push is the kernel's.
    let floor: Vec<Value> = match exe {
        Some(exe) if plan_has_publish(opts) => (0..opts.rounds)
            .map(|_| {
                let cmd = format!("'{}' floor-server {{conf}}", exe.display());
                let o = scenario_opts(
                    opts,
                    "publish",
                    opts.publish_listeners,
                    "kernel-floor",
                    &cmd,
                );
                match run_scenario(&o, Some(exe)) {
                    Ok(v) => v,
                    Err(e) => json!({"server": "kernel-floor", "error": e, "ok": false}),
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    let results = json!({
        "machine": machine(),
        "rounds": opts.rounds,
        "floor": floor,
        "command": command,
        "started_unix": started,
        "loadavg_start": load0,
        "loadavg_end": read_first_line("/proc/loadavg"),
        "servers": servers.iter().map(|(n, c)| json!({"name": n, "cmd": c})).collect::<Vec<_>>(),
        "runs": runs,
    });
    write_all(&opts.out_dir, &results)?;
    Ok(json!({"ok": true, "out_dir": opts.out_dir, "summary": markdown(&results)}))
}

/// The suite's options turned into one scenario run against one server.
fn scenario_opts(opts: &Opts, scenario: &str, n: usize, name: &str, cmd: &str) -> Opts {
    let mut o = opts.clone();
    o.command = scenario.to_string();
    o.n = n;
    o.name = name.to_string();
    o.server_cmd = Some(cmd.to_string());
    o.out = None;
    o
}

fn plan_has_publish(opts: &Opts) -> bool {
    opts.publish_listeners > 0
}

/// The paragraph under the table that sets each server's publish CPU against the floor.
fn floor_note(results: &Value) -> Option<String> {
    // One run (an object) or one per round (an array): the median.
    let floor_runs: Vec<&Value> = match &results["floor"] {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    let floor = median(
        floor_runs
            .iter()
            .filter_map(|r| r["server_cpu_per_push_us"].as_f64())
            .collect(),
    )?;
    if floor <= 0.0 {
        return None;
    }
    let names = server_names(results);
    let key = sizes(results, "publish").pop()?;
    let per: Vec<(String, f64)> = names
        .iter()
        .filter_map(|n| {
            let v = value_of(results, n, &key, "server_cpu_per_push_us")?;
            Some((n.clone(), v))
        })
        .collect();
    let mut s = format!(
        "\nKernel floor of the publish exchange, same run: `realplexor-loadtest floor-server`, a \
         minimal epoll server that only parks a listener, forwards one body and closes \
         (TCP_DEFER_ACCEPT, read after accept, MSG_MORE), used **{} us** of CPU per push. ",
        fmt_num(floor)
    );
    let parts: Vec<String> = per
        .iter()
        .map(|(n, v)| format!("{n} {} us = {:.2}x the floor", fmt_num(*v), v / floor))
        .collect();
    s.push_str(&parts.join("; "));
    s.push('.');
    if let Some((other, v)) = per.get(1) {
        let _ = write!(
            s,
            " A quarter of {other}'s figure would be {} us, {:.2}x the floor.",
            fmt_num(v / 4.0),
            v / 4.0 / floor
        );
    }
    s.push('\n');
    Some(s)
}

/// `report`: re-renders results.md and chart.svg from results.json.
pub fn rerender(opts: &Opts) -> Result<Value, String> {
    let p = Path::new(&opts.out_dir).join("results.json");
    let text = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let results: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    write_all(&opts.out_dir, &results)?;
    Ok(json!({"ok": true, "out_dir": opts.out_dir}))
}

fn write_all(dir: &str, results: &Value) -> Result<(), String> {
    let d = Path::new(dir);
    fs::create_dir_all(d).map_err(|e| format!("{dir}: {e}"))?;
    let w = |name: &str, body: String| {
        fs::write(d.join(name), body).map_err(|e| format!("{dir}/{name}: {e}"))
    };
    w(
        "results.json",
        format!(
            "{}\n",
            serde_json::to_string_pretty(results).unwrap_or_default()
        ),
    )?;
    w("results.md", markdown(results))?;
    w("chart.svg", svg(results))
}

fn run_of<'a>(results: &'a Value, server: &str, key_prefix: &str) -> Option<&'a Value> {
    runs_of(results, server, key_prefix).next()
}

/// Every run (one per round) of one server in the scenarios whose key starts so.
fn runs_of<'a: 'b, 'b>(
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
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len().checked_sub(1)? / 2).copied()
}

/// A figure of one server: the median over its rounds of that scenario.
fn value_of(results: &Value, server: &str, key_prefix: &str, field: &str) -> Option<f64> {
    median(
        runs_of(results, server, key_prefix)
            .filter_map(|r| r[field].as_f64())
            .collect(),
    )
}

/// The round whose `field` is the median (for figures drawn from one run, the CDF).
fn median_run<'a>(
    results: &'a Value,
    server: &str,
    key_prefix: &str,
    field: &str,
) -> Option<&'a Value> {
    let m = value_of(results, server, key_prefix, field)?;
    runs_of(results, server, key_prefix).find(|r| r[field].as_f64() == Some(m))
}

fn server_names(results: &Value) -> Vec<String> {
    results["servers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The size used for a scenario in this run (`idle@19000` -> 19000), largest last.
fn sizes(results: &Value, scenario: &str) -> Vec<String> {
    let mut v: Vec<(u64, String)> = results["runs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["scenario"] == scenario)
                .filter_map(|r| r["key"].as_str())
                .filter_map(|k| Some((k.split_once('@')?.1.parse().ok()?, k.to_string())))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v.into_iter().map(|(_, k)| k).collect()
}

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
    out
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
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
    s
}

const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// A round axis maximum >= v.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

/// Two panels: RSS per idle connection (bars per size and server) and the fan-out
/// delivery-time distribution at the largest size (one line per server).
pub fn svg(results: &Value) -> String {
    let names = server_names(results);
    let (w, h) = (900.0, 380.0);
    let mut s = String::new();
    let _ = writeln!(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">");
    let _ = writeln!(s, "<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>");
    // Left panel: bars.
    let (x0, y0, pw, ph) = (70.0, 50.0, 330.0, 260.0);
    let idle = sizes(results, "idle");
    let mut vals = Vec::new();
    for k in &idle {
        for n in &names {
            vals.push(value_of(results, n, k, "rss_per_conn").unwrap_or(0.0));
        }
    }
    let vmax = nice_max(vals.iter().cloned().fold(0.0, f64::max));
    let _ = writeln!(s, "<text x=\"{}\" y=\"25\" text-anchor=\"middle\" font-size=\"14\">Server RSS per idle connection (bytes)</text>", x0 + pw / 2.0);
    axes(&mut s, x0, y0, pw, ph, vmax, "");
    let group = pw / idle.len().max(1) as f64;
    let bw = group * 0.7 / names.len().max(1) as f64;
    for (gi, k) in idle.iter().enumerate() {
        let gx = x0 + gi as f64 * group + group * 0.15;
        for si in 0..names.len() {
            let v = vals.get(gi * names.len() + si).copied().unwrap_or(0.0);
            let bh = (v / vmax * ph).max(0.0);
            let x = gx + si as f64 * bw;
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"/>",
                y0 + ph - bh,
                bw - 2.0,
                COLORS[si % 4]
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
                x + bw / 2.0 - 1.0,
                y0 + ph - bh - 4.0,
                fmt_num(v)
            );
        }
        let label = k.split_once('@').map_or(k.as_str(), |x| x.1);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label} conns</text>",
            gx + group * 0.35,
            y0 + ph + 18.0
        );
    }
    // Right panel: CDF lines.
    let (x1, pw2) = (500.0, 360.0);
    let big = sizes(results, "fanout").pop().unwrap_or_default();
    let n = big.split_once('@').map_or("", |x| x.1);
    let _ = writeln!(s, "<text x=\"{}\" y=\"25\" text-anchor=\"middle\" font-size=\"14\">Fan-out to {n}: share delivered vs time (ms)</text>", x1 + pw2 / 2.0);
    let cdfs: Vec<Vec<f64>> = names
        .iter()
        .map(|nm| {
            median_run(results, nm, &big, "last_ms")
                .and_then(|r| r["cdf_ms"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_f64)
                .collect()
        })
        .collect();
    let tmax = nice_max(cdfs.iter().flatten().cloned().fold(0.0, f64::max));
    axes(&mut s, x1, y0, pw2, ph, 100.0, "%");
    for i in 0..=4 {
        let t = tmax * i as f64 / 4.0;
        let x = x1 + pw2 * i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            y0 + ph + 18.0,
            fmt_num(t)
        );
    }
    for (si, c) in cdfs.iter().enumerate() {
        if c.is_empty() {
            continue;
        }
        let pts: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(p, &t)| {
                format!(
                    "{:.1},{:.1}",
                    x1 + t / tmax * pw2,
                    y0 + ph - p as f64 / (c.len() - 1).max(1) as f64 * ph
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            COLORS[si % 4],
            pts.join(" ")
        );
    }
    // Legend.
    for (si, nm) in names.iter().enumerate() {
        let x = 70.0 + si as f64 * 160.0;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>",
            h - 30.0,
            COLORS[si % 4]
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\">{}</text>",
            x + 18.0,
            h - 20.0,
            xml_escape(nm)
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

fn axes(s: &mut String, x0: f64, y0: f64, pw: f64, ph: f64, vmax: f64, unit: &str) {
    let _ = writeln!(
        s,
        "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{}\" stroke=\"black\"/>",
        y0 + ph
    );
    let _ = writeln!(
        s,
        "<line x1=\"{x0}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        y0 + ph,
        x0 + pw,
        y0 + ph
    );
    for i in 0..=4 {
        let v = vmax * i as f64 / 4.0;
        let y = y0 + ph - ph * i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>",
            x0 + pw
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}{unit}</text>",
            x0 - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
}

fn xml_escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
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
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.0));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn svg_is_well_formed_enough() {
        let s = svg(&sample());
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert_eq!(s.matches("<rect").count(), 1 + 2 + 2);
    }

    #[test]
    fn nice_axis() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(430.0), 500.0);
        assert_eq!(nice_max(1400.0), 2000.0);
        assert_eq!(nice_max(2.2), 2.5);
    }
}
