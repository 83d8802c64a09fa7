//! The standard benchmark (`scripts/bench`): idle and fanout at `--small` and `--big`
//! connections, publish and multi, against this server and optionally another compatible
//! one in the same run (scenario by scenario, alternating servers, each on a freshly
//! started process). Writes `results.json`, `results.md` (the table README shows) and
//! `chart.svg` (RSS per connection and fan-out delivery-time distribution per server).
//!
//! Structure: `results.json = { machine, command, started_unix, loadavg_start, loadavg_end,
//! servers: [{name, cmd}], runs: [{key: "idle@19000", scenario, server, round, ...}],
//! floor: [publish runs against floor-server], floor_fanout: [fanout runs against
//! floor-server --fanout, keyed like runs] }`.
//!
//! `--transports sse,ws` and `--apis http` add side-by-side runs against the first server
//! (keys `fanout+sse@19000`, `publish+http@1000`): idle and fanout at `--big` and publish
//! per extra transport, publish per extra API.
//!
//! This file runs the plan and writes the files; `results` reads figures back out of
//! `results.json`, `report` renders the markdown (`notes`: its kernel-floor paragraphs),
//! `chart` the SVG.
//!
//! Uses: `run_scenario`, `args::Opts`.

mod chart;
mod notes;
mod report;
mod results;

pub use chart::svg;
pub use report::markdown;

use crate::args::Opts;
use crate::run_scenario;
use crate::wire::{Api, Transport};
use serde_json::{json, Value};
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
    let base = Variant::default();
    let mut plan: Vec<(&str, usize, Variant)> = vec![
        ("idle", opts.small, base),
        ("idle", opts.big, base),
        ("fanout", opts.small, base),
        ("fanout", opts.big, base),
        ("publish", opts.publish_listeners, base),
        ("multi", 200, base),
    ];
    plan.extend(variant_plan(opts));
    let command = std::env::var("BENCH_COMMAND")
        .unwrap_or_else(|_| format!("realplexor-loadtest {}", argv.join(" ")));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let load0 = read_first_line("/proc/loadavg");
    let mut runs = Vec::new();
    let mut floor_fanout = Vec::new();
    for (scenario, n, variant) in plan {
        // Other transports and APIs run against the first server only (the one that has
        // them); the base runs against every server.
        let servers = if variant == base {
            &servers[..]
        } else {
            &servers[..1]
        };
        for round in 0..opts.rounds {
            // The fan-out's kernel floor takes its turn after the servers in every round
            // (see `floor`, `--fanout`), so the report can set each server's fan-out
            // against it.
            let floor = match exe {
                Some(exe) if scenario == "fanout" && variant == base => Some((
                    "kernel-floor".to_string(),
                    format!("'{}' floor-server --fanout {{conf}}", exe.display()),
                )),
                _ => None,
            };
            for (name, cmd) in servers.iter().chain(floor.as_ref()) {
                let mut o = scenario_opts(opts, scenario, n, name, cmd);
                if scenario == "multi" {
                    o.pushes = opts.pushes.min(3000);
                }
                (o.transport, o.api) = (variant.transport, variant.api);
                let key = variant.key(scenario, n);
                let mut v = match run_scenario(&o, exe) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("{name} {key}: {e}");
                        json!({"scenario": scenario, "server": name, "error": e, "ok": false})
                    }
                };
                v["key"] = json!(key);
                v["round"] = json!(round);
                if floor.as_ref().is_some_and(|(f, _)| f == name) {
                    floor_fanout.push(v);
                } else {
                    runs.push(v);
                }
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
        "floor_fanout": floor_fanout,
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

/// A listener transport and publish API, the base being long-poll and classic pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Variant {
    transport: Transport,
    api: Api,
}

impl Variant {
    /// `fanout@19000` for the base, `fanout+sse@19000`, `publish+http@1000` otherwise.
    fn key(self, scenario: &str, n: usize) -> String {
        let mut k = scenario.to_string();
        if self.transport != Transport::default() {
            k = format!("{k}+{}", self.transport.name());
        }
        if self.api != Api::default() {
            k = format!("{k}+{}", self.api.name());
        }
        format!("{k}@{n}")
    }
}

/// The side-by-side runs `--transports` and `--apis` ask for beyond the base: idle and
/// fanout at `--big` and publish per other transport, publish per other API.
fn variant_plan(opts: &Opts) -> Vec<(&'static str, usize, Variant)> {
    let mut plan = Vec::new();
    let mut seen = Vec::new();
    for &transport in &opts.transports {
        if transport == Transport::default() || seen.contains(&transport) {
            continue;
        }
        seen.push(transport);
        let v = Variant {
            transport,
            api: Api::default(),
        };
        plan.push(("idle", opts.big, v));
        plan.push(("fanout", opts.big, v));
        plan.push(("publish", opts.publish_listeners, v));
    }
    let mut seen = Vec::new();
    for &api in &opts.apis {
        if api == Api::default() || seen.contains(&api) {
            continue;
        }
        seen.push(api);
        let v = Variant {
            transport: Transport::default(),
            api,
        };
        plan.push(("publish", opts.publish_listeners, v));
    }
    plan
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_keys_and_plan() {
        assert_eq!(Variant::default().key("fanout", 19000), "fanout@19000");
        let o = crate::args::parse(
            &"suite --server-cmd x --big 500 --publish-listeners 40 --transports longpoll,sse,ws,sse --apis http"
                .split(' ')
                .map(String::from)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let keys: Vec<String> = variant_plan(&o)
            .iter()
            .map(|(s, n, v)| v.key(s, *n))
            .collect();
        assert_eq!(
            keys,
            [
                "idle+sse@500",
                "fanout+sse@500",
                "publish+sse@40",
                "idle+ws@500",
                "fanout+ws@500",
                "publish+ws@40",
                "publish+http@40"
            ]
        );
        let base =
            crate::args::parse(&["suite".into(), "--server-cmd".into(), "x".into()]).unwrap();
        assert!(variant_plan(&base).is_empty());
    }
}
