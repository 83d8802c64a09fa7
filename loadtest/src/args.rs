//! Command line: raw `--key value` pairs first, then a typed `Opts` with defaults.
//!
//! Structure: `Opts` holds every knob of every scenario; `parse` rejects unknown options
//! and malformed numbers with a message naming the option.
//!
//! Uses: nothing internal.

use std::net::SocketAddr;

pub const USAGE: &str = "\
usage: realplexor-loadtest SCENARIO [TARGET] [OPTIONS]
       realplexor-loadtest suite --server-cmd 'CMD {conf}' [--other 'CMD {conf}'] [--out-dir bench]
       realplexor-loadtest report [--out-dir bench]     (re-render results.md and chart.svg)
       realplexor-loadtest floor-server CONF            (the publish exchange's kernel floor)

SCENARIO: idle | fanout | publish | churn | multi
TARGET (one of):
  --server-cmd 'CMD {conf}'   start the server; {conf} becomes a Perl override with free ports
  --wait ADDR --in ADDR       a running server (each may repeat) [--server-pid PID for RSS/CPU]
OPTIONS:
  -n N                connections (idle, fanout), listeners (publish), clients (multi) [200]
  --procs K           worker processes for idle/fanout; 0 = one per 9,500 connections [0]
  --cycles C          idle: close/reconnect cycles after the first measure [3]
  --pushes P          publish, multi: pushes [2000]
  --concurrency C     publish, multi: pushes in flight [8]
  --api legacy|http   publish: a new connection per push, half-closed (legacy), or
                      C keep-alive connections to POST /pub (http) [legacy];
                      with -n 0 pushes go to ids without listeners (the publish path alone)
  --ids M --per-client K --per-push J --reconnect PROB   multi [50, 3, 3, 0.1]
  --rate R --duration S --lifetime-ms L --poll-ms T      churn [200, 3, 500, 200]
  --offline-timeout S churn: the server's OFFLINE_TIMEOUT [1 when started here, else 30]
  --window W          connects in flight [256]
  --timeout S         bound of every phase, seconds [60]
  --name NAME         label of the server in the result [ours]
  --out FILE          write the JSON result there too
  --quiet             no progress line
suite: --small N [1000] --big N [19000] --publish-listeners N [1000] --other-name NAME [other]
       --rounds R [1]: every scenario R times, the servers alternating; figures are medians
";

#[derive(Debug, Clone)]
pub struct Opts {
    pub command: String,
    pub n: usize,
    pub procs: usize,
    pub cycles: usize,
    pub pushes: usize,
    pub concurrency: usize,
    pub ids: usize,
    pub per_client: usize,
    pub per_push: usize,
    pub reconnect: f64,
    pub rate: f64,
    pub duration_s: f64,
    pub lifetime_ms: u64,
    pub poll_ms: u64,
    pub offline_timeout_s: f64,
    pub offline_given: bool,
    pub window: usize,
    pub timeout_s: u64,
    pub name: String,
    pub out: Option<String>,
    pub quiet: bool,
    pub server_cmd: Option<String>,
    pub other: Option<String>,
    pub other_name: String,
    pub wait: Vec<SocketAddr>,
    pub inn: Vec<SocketAddr>,
    pub server_pid: Option<u32>,
    pub out_dir: String,
    pub small: usize,
    pub big: usize,
    pub publish_listeners: usize,
    pub rounds: usize,
    /// publish: `legacy` (half-close) or `http` (keep-alive POST /pub).
    pub api: String,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            command: String::new(),
            n: 200,
            procs: 0,
            cycles: 3,
            pushes: 2000,
            concurrency: 8,
            ids: 50,
            per_client: 3,
            per_push: 3,
            reconnect: 0.1,
            rate: 200.0,
            duration_s: 3.0,
            lifetime_ms: 500,
            poll_ms: 200,
            offline_timeout_s: 30.0,
            offline_given: false,
            window: 256,
            timeout_s: 60,
            name: "ours".into(),
            out: None,
            quiet: false,
            server_cmd: None,
            other: None,
            other_name: "other".into(),
            wait: Vec::new(),
            inn: Vec::new(),
            server_pid: None,
            out_dir: "bench".into(),
            small: 1000,
            big: 19_000,
            publish_listeners: 1000,
            rounds: 1,
            api: "legacy".into(),
        }
    }
}

fn num<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{opt}: bad value {v:?}"))
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut it = args.iter();
    o.command = it.next().cloned().ok_or("missing SCENARIO")?;
    while let Some(a) = it.next() {
        if a == "--quiet" {
            o.quiet = true;
            continue;
        }
        if a == "-h" || a == "--help" {
            return Err(String::new());
        }
        let v = it.next().ok_or_else(|| format!("{a}: missing value"))?;
        match a.as_str() {
            "-n" => o.n = num(a, v)?,
            "--procs" => o.procs = num(a, v)?,
            "--cycles" => o.cycles = num(a, v)?,
            "--pushes" => o.pushes = num(a, v)?,
            "--concurrency" => o.concurrency = num(a, v)?,
            "--ids" => o.ids = num(a, v)?,
            "--per-client" => o.per_client = num(a, v)?,
            "--per-push" => o.per_push = num(a, v)?,
            "--reconnect" => o.reconnect = num(a, v)?,
            "--rate" => o.rate = num(a, v)?,
            "--duration" => o.duration_s = num(a, v)?,
            "--lifetime-ms" => o.lifetime_ms = num(a, v)?,
            "--poll-ms" => o.poll_ms = num(a, v)?,
            "--offline-timeout" => {
                o.offline_timeout_s = num(a, v)?;
                o.offline_given = true;
            }
            "--window" => o.window = num::<usize>(a, v)?.max(1),
            "--timeout" => o.timeout_s = num(a, v)?,
            "--name" => o.name = v.clone(),
            "--out" => o.out = Some(v.clone()),
            "--server-cmd" => o.server_cmd = Some(v.clone()),
            "--other" => o.other = Some(v.clone()),
            "--other-name" => o.other_name = v.clone(),
            "--wait" => o.wait.push(num(a, v)?),
            "--in" => o.inn.push(num(a, v)?),
            "--server-pid" => o.server_pid = Some(num(a, v)?),
            "--out-dir" => o.out_dir = v.clone(),
            "--small" => o.small = num(a, v)?,
            "--big" => o.big = num(a, v)?,
            "--publish-listeners" => o.publish_listeners = num(a, v)?,
            "--rounds" => o.rounds = num::<usize>(a, v)?.max(1),
            "--api" if v == "legacy" || v == "http" => o.api = v.clone(),
            "--api" => return Err(format!("--api: legacy or http, not {v:?}")),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    let scenario = matches!(
        o.command.as_str(),
        "idle" | "fanout" | "publish" | "churn" | "multi"
    );
    if scenario && o.server_cmd.is_none() && (o.wait.is_empty() || o.inn.is_empty()) {
        return Err("give --server-cmd, or both --wait and --in".into());
    }
    if o.command == "suite" && o.server_cmd.is_none() {
        return Err("suite needs --server-cmd".into());
    }
    if !(0.0..=1.0).contains(&o.reconnect) {
        return Err("--reconnect: a probability in 0..1".into());
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Opts, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_values() {
        let o = p("idle --server-cmd x -n 19000 --procs 2 --quiet").unwrap();
        assert_eq!((o.n, o.procs, o.quiet, o.cycles), (19000, 2, true, 3));
        assert_eq!(o.server_cmd.as_deref(), Some("x"));
        let o =
            p("fanout --wait 127.0.0.1:8088 --in 127.0.0.1:10010 --wait 127.0.0.1:8089").unwrap();
        assert_eq!(o.wait.len(), 2);
        assert_eq!(o.inn[0].port(), 10010);
        let o = p("churn --server-cmd x --offline-timeout 2.5").unwrap();
        assert!(o.offline_given);
        assert_eq!(o.offline_timeout_s, 2.5);
    }

    #[test]
    fn errors_name_the_option() {
        assert_eq!(
            p("idle --server-cmd x -n lots").unwrap_err(),
            "-n: bad value \"lots\""
        );
        assert_eq!(
            p("idle --server-cmd x --bogus 1").unwrap_err(),
            "unknown option --bogus"
        );
        assert_eq!(
            p("idle --server-cmd x -n").unwrap_err(),
            "-n: missing value"
        );
        assert!(p("idle").is_err());
        assert!(p("idle --wait 127.0.0.1:1").is_err());
        assert!(p("idle --wait nope --in 127.0.0.1:1").is_err());
        assert!(p("multi --server-cmd x --reconnect 2").is_err());
        assert!(p("suite").is_err());
        assert!(parse(&[]).is_err());
    }
}
