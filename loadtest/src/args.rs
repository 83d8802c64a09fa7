//! Command line: `getopts` splits the words, then a typed `Opts` with defaults.
//!
//! Structure: `Opts` holds every knob of every command; `parse` rejects unknown options,
//! unknown commands and malformed numbers with a message naming the culprit. A value
//! option given twice keeps its last value; `--wait` and `--in` accumulate.
//!
//! Uses: getopts; nothing internal.

use crate::wire::{Api, Transport};
use std::net::SocketAddr;

pub const USAGE: &str = "\
usage: realplexor-loadtest SCENARIO [TARGET] [OPTIONS]
       realplexor-loadtest -h | --help                  (this text)
       realplexor-loadtest suite --server-cmd 'CMD {conf}' [--other 'CMD {conf}'] [--out-dir bench]
       realplexor-loadtest report [--out-dir bench]     (re-render results.md and chart.svg)
       realplexor-loadtest floor-server [--fanout] CONF (the publish exchange's kernel floor;
                                   --fanout: every listener of an id gets the push)

SCENARIO: idle | fanout | stream | publish | churn | multi
TARGET (one of):
  --server-cmd 'CMD {conf}'   start the server; {conf} becomes a Perl override with free ports
  --wait ADDR --in ADDR       a running server (each may repeat) [--server-pid PID for RSS/CPU]
OPTIONS:
  -n N                connections (idle, fanout), listeners (stream; publish: 0 = none,
                      the publish path alone), clients (multi) [200]
  --procs K           worker processes for idle/fanout/stream; 0 = one per 9,500
                      connections [0]
  --cycles C          idle: close/reconnect cycles after the first measure [3]
  --pushes P          publish, multi: pushes [2000]
  --concurrency C     publish, multi: pushes in flight [8]
  --ids M --per-client K --per-push J --reconnect PROB   multi [50, 3, 3, 0.1]
  --rate R --duration S --lifetime-ms L --poll-ms T      churn [200, 3, 500, 200]
  --offline-timeout S churn: the server's OFFLINE_TIMEOUT [1 when started here, else 30]
  --transport T       idle, fanout, publish listeners: longpoll | sse | ws [longpoll]
                      (stream: sse | ws)
  --api A             publish, stream pushes: classic (IN connection per push) | http
                      (POST /pub on keep-alive connections to IN, pipelined) [classic]
  --pub-conns C       publish --api http: keep-alive publisher connections [4]
  --id-pool K         idle: the listeners share K ids (connection g waits on id g % K),
                      0 = each on its own id [0]
  --push-each-in      fanout, stream: push to every --in address (several servers, each
                      holding the listeners given its --wait), not only to the first
stream: N SSE or WebSocket listeners (--transport sse|ws) on one id, split over --procs
  workers as fanout's; then P pushes (--api classic|http) paced at R per second. Every
  listener checks it got each push exactly once and in order; reports messages delivered/s
  (N x P / elapsed), the push rate achieved, the lag from push to receipt (p50/p99/max),
  missing/duplicate/out-of-order counts, server CPU, and whether it kept up: every message
  exactly once, p99 lag and the last push's lag (until its last listener got it) within
  --lag-bound-ms, the rate achieved within 10% of R.
  --rate R            pushes per second [100,000 / N, at least 1]
  --pushes P          pushes [R x --duration]
  --concurrency C     --api http: pushes unanswered at most (pipelined on one connection
                      per address) [8]; classic pushes go one at a time (a listener checks
                      their order, and two IN connections may be accepted in either order)
  --duration S        the run's length when --pushes is not given (--find-rate: each
                      step's) [3]; a run waits up to --timeout for late messages, a step
                      of the search 2 x --lag-bound-ms + 1 s
  --lag-bound-ms MS   the lag that still counts as keeping up [1000]
  --find-rate         step the rate from R: double while it keeps up (halve while it does
                      not), then one bisection step; at most 10 steps, within --timeout;
                      the result is the highest rate that kept up
  --window W          connects in flight [256]
  --timeout S         bound of every phase, seconds [60]
  --name NAME         label of the server in the result [ours]
  --conf-extra PERL   lines added to the conf of a server started with --server-cmd
                      (e.g. '$CONFIG{WORKERS} = 4;'); repeatable
  --out FILE          write the JSON result there too
  --quiet             no progress line
suite: --small N [1000] --big N [19000] --publish-listeners N [1000] --other-name NAME [other]
       --rounds R [1]: every scenario R times, the servers alternating; figures are medians
       --transports longpoll,sse,ws --apis classic,http: besides the base runs, idle and
       fanout at --big and publish per extra transport, publish per extra API, against
       the first server only [longpoll] [classic]
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
    /// Perl lines appended to the override conf of a server started here (e.g. the
    /// cluster keys).
    pub conf_extra: String,
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
    /// `-h`/`--help`: print the usage and exit 0.
    pub help: bool,
    /// `floor-server CONF`: the override file to read.
    pub conf: Option<String>,
    /// `floor-server --fanout`: every listener of an id gets its pushes.
    pub floor_fanout: bool,
    /// How idle, fanout and publish listeners wait.
    pub transport: Transport,
    /// How publish pushes.
    pub api: Api,
    /// fanout: one push to each `--in` address instead of one to the first (stream: every
    /// push to each).
    pub push_each_in: bool,
    /// `--rate` / `--pushes` given (stream derives its defaults from N otherwise).
    pub rate_given: bool,
    pub pushes_given: bool,
    /// stream: step the rate to the highest one that keeps up.
    pub find_rate: bool,
    /// stream: the p99 and last-push lag that still count as keeping up, ms.
    pub lag_bound_ms: u64,
    /// idle: listeners share this many ids (connection g on id g % K); 0 = one id each.
    pub id_pool: usize,
    /// `--api http`: keep-alive publisher connections.
    pub pub_conns: usize,
    /// suite: the transports and APIs to run side by side (the first of each is the base).
    pub transports: Vec<Transport>,
    pub apis: Vec<Api>,
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
            conf_extra: String::new(),
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
            help: false,
            conf: None,
            floor_fanout: false,
            transport: Transport::LongPoll,
            api: Api::Classic,
            push_each_in: false,
            rate_given: false,
            pushes_given: false,
            find_rate: false,
            lag_bound_ms: 1000,
            id_pool: 0,
            pub_conns: 4,
            transports: vec![Transport::LongPoll],
            apis: vec![Api::Classic],
        }
    }
}

/// The value options (each takes one argument; given twice, the last one counts, so a
/// wrapper script's defaults can be overridden by its caller). `-n` is short, the rest long.
const VALUE_OPTS: &[(&str, &str)] = &[
    ("n", "N"),
    ("procs", "K"),
    ("cycles", "C"),
    ("pushes", "P"),
    ("concurrency", "C"),
    ("ids", "M"),
    ("per-client", "K"),
    ("per-push", "J"),
    ("reconnect", "PROB"),
    ("rate", "R"),
    ("duration", "S"),
    ("lifetime-ms", "L"),
    ("poll-ms", "T"),
    ("offline-timeout", "S"),
    ("window", "W"),
    ("timeout", "S"),
    ("name", "NAME"),
    ("out", "FILE"),
    ("server-cmd", "CMD"),
    ("other", "CMD"),
    ("other-name", "NAME"),
    ("wait", "ADDR"),
    ("in", "ADDR"),
    ("server-pid", "PID"),
    ("out-dir", "DIR"),
    ("small", "N"),
    ("big", "N"),
    ("publish-listeners", "N"),
    ("rounds", "R"),
    ("transport", "T"),
    ("api", "API"),
    ("pub-conns", "C"),
    ("transports", "LIST"),
    ("conf-extra", "PERL"),
    ("apis", "LIST"),
    ("id-pool", "K"),
    ("lag-bound-ms", "MS"),
];

/// The commands `parse` accepts (`worker` is internal and handled before it).
pub const COMMANDS: &[&str] = &[
    "idle",
    "fanout",
    "stream",
    "publish",
    "churn",
    "multi",
    "suite",
    "report",
    "floor-server",
];

fn options() -> getopts::Options {
    let mut g = getopts::Options::new();
    for (name, hint) in VALUE_OPTS {
        let (short, long) = if name.len() == 1 {
            (*name, "")
        } else {
            ("", *name)
        };
        g.optmulti(short, long, "", hint);
    }
    g.optflagmulti("", "quiet", "");
    g.optflagmulti("", "fanout", "");
    g.optflagmulti("", "push-each-in", "");
    g.optflagmulti("", "find-rate", "");
    g.optflagmulti("h", "help", "");
    g
}

/// `-n` or `--name` as the user typed it.
fn dashed(name: &str) -> String {
    if name.len() == 1 {
        format!("-{name}")
    } else {
        format!("--{name}")
    }
}

fn fail_message(f: getopts::Fail) -> String {
    use getopts::Fail::*;
    match f {
        ArgumentMissing(n) => format!("{}: missing value", dashed(&n)),
        UnrecognizedOption(n) => format!("unknown option {}", dashed(&n)),
        UnexpectedArgument(n) => format!("{}: takes no value", dashed(&n)),
        OptionMissing(n) | OptionDuplicated(n) => format!("{}: bad use", dashed(&n)),
    }
}

/// The last value given for `name`, parsed; `Ok(None)` when absent.
fn last<T: std::str::FromStr>(m: &getopts::Matches, name: &str) -> Result<Option<T>, String> {
    match m.opt_strs(name).pop() {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{}: bad value {v:?}", dashed(name))),
    }
}

/// Every value given for `name`, parsed.
fn all<T: std::str::FromStr>(m: &getopts::Matches, name: &str) -> Result<Vec<T>, String> {
    m.opt_strs(name)
        .iter()
        .map(|v| {
            v.parse()
                .map_err(|_| format!("{}: bad value {v:?}", dashed(name)))
        })
        .collect()
}

/// A comma-separated list of names.
fn list<T: std::str::FromStr>(v: &str, opt: &str) -> Result<Vec<T>, String> {
    v.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().map_err(|_| format!("{opt}: bad value {x:?}")))
        .collect()
}

/// Parses `args` (without the program name). With `-h`/`--help` anywhere the result is
/// `Opts { help: true, .. }` and nothing else is checked.
pub fn parse(args: &[String]) -> Result<Opts, String> {
    let m = options().parse(args).map_err(fail_message)?;
    let mut o = Opts::default();
    if m.opt_present("help") {
        o.help = true;
        return Ok(o);
    }
    let mut free = m.free.iter();
    o.command = free.next().cloned().ok_or("missing SCENARIO")?;
    if !COMMANDS.contains(&o.command.as_str()) {
        return Err(format!("unknown scenario {}", o.command));
    }
    if o.command == "floor-server" {
        o.conf = free.next().cloned();
        if o.conf.is_none() {
            return Err("floor-server needs CONF".into());
        }
    }
    if let Some(extra) = free.next() {
        return Err(format!("unexpected argument {extra}"));
    }
    macro_rules! set {
        ($field:expr, $name:literal) => {
            if let Some(v) = last(&m, $name)? {
                $field = v;
            }
        };
    }
    set!(o.n, "n");
    set!(o.procs, "procs");
    set!(o.cycles, "cycles");
    set!(o.pushes, "pushes");
    o.pushes_given = m.opt_present("pushes");
    o.rate_given = m.opt_present("rate");
    set!(o.lag_bound_ms, "lag-bound-ms");
    set!(o.concurrency, "concurrency");
    set!(o.ids, "ids");
    set!(o.per_client, "per-client");
    set!(o.per_push, "per-push");
    set!(o.reconnect, "reconnect");
    set!(o.rate, "rate");
    set!(o.duration_s, "duration");
    set!(o.lifetime_ms, "lifetime-ms");
    set!(o.poll_ms, "poll-ms");
    if let Some(v) = last(&m, "offline-timeout")? {
        o.offline_timeout_s = v;
        o.offline_given = true;
    }
    set!(o.window, "window");
    o.window = o.window.max(1);
    set!(o.timeout_s, "timeout");
    set!(o.name, "name");
    o.out = last(&m, "out")?;
    o.server_cmd = last(&m, "server-cmd")?;
    o.conf_extra = m.opt_strs("conf-extra").join("\n");
    o.other = last(&m, "other")?;
    set!(o.other_name, "other-name");
    o.wait = all(&m, "wait")?;
    o.inn = all(&m, "in")?;
    o.server_pid = last(&m, "server-pid")?;
    set!(o.out_dir, "out-dir");
    set!(o.small, "small");
    set!(o.big, "big");
    set!(o.publish_listeners, "publish-listeners");
    set!(o.rounds, "rounds");
    o.rounds = o.rounds.max(1);
    set!(o.transport, "transport");
    set!(o.api, "api");
    set!(o.pub_conns, "pub-conns");
    set!(o.id_pool, "id-pool");
    o.pub_conns = o.pub_conns.max(1);
    if let Some(v) = m.opt_strs("transports").pop() {
        o.transports = list(&v, "--transports")?;
    }
    if let Some(v) = m.opt_strs("apis").pop() {
        o.apis = list(&v, "--apis")?;
    }
    if o.transport.is_stream()
        && !matches!(o.command.as_str(), "idle" | "fanout" | "stream" | "publish")
    {
        return Err("--transport: sse and ws are for idle, fanout, stream and publish".into());
    }
    if o.command == "stream" && !o.transport.is_stream() {
        return Err("stream needs --transport sse or ws".into());
    }
    if o.api != Api::Classic && !matches!(o.command.as_str(), "publish" | "stream") {
        return Err("--api: http is for publish and stream".into());
    }
    if !(o.rate.is_finite() && o.rate > 0.0) && o.command == "stream" {
        return Err("--rate: a positive number".into());
    }
    o.quiet = m.opt_present("quiet");
    o.floor_fanout = m.opt_present("fanout");
    o.push_each_in = m.opt_present("push-each-in");
    if o.push_each_in && !matches!(o.command.as_str(), "fanout" | "stream") {
        return Err("--push-each-in is for fanout and stream".into());
    }
    o.find_rate = m.opt_present("find-rate");
    if o.find_rate && o.command != "stream" {
        return Err("--find-rate is for stream".into());
    }
    let scenario = matches!(
        o.command.as_str(),
        "idle" | "fanout" | "stream" | "publish" | "churn" | "multi"
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
        assert_eq!(parse(&[]).unwrap_err(), "missing SCENARIO");
        assert_eq!(p("--quiet").unwrap_err(), "missing SCENARIO");
        assert_eq!(p("bogus -n 1").unwrap_err(), "unknown scenario bogus");
        assert_eq!(
            p("idle --server-cmd x stray").unwrap_err(),
            "unexpected argument stray"
        );
        assert_eq!(
            p("idle --server-cmd x --quiet=1").unwrap_err(),
            "--quiet: takes no value"
        );
        assert!(p("floor-server").is_err());
    }

    #[test]
    fn transports_and_apis() {
        let o = p("fanout --server-cmd x --transport ws").unwrap();
        assert_eq!((o.transport, o.api), (Transport::Ws, Api::Classic));
        let o = p("publish --server-cmd x --transport sse --api http --pub-conns 0").unwrap();
        assert_eq!(
            (o.transport, o.api, o.pub_conns),
            (Transport::Sse, Api::Http, 1)
        );
        assert_eq!(
            p("idle --server-cmd x --transport poll").unwrap_err(),
            "--transport: bad value \"poll\""
        );
        assert!(p("churn --server-cmd x --transport sse").is_err());
        assert!(p("fanout --server-cmd x --api http").is_err());
        assert_eq!(
            p("stream --server-cmd x").unwrap_err(),
            "stream needs --transport sse or ws"
        );
        let o = p("stream --server-cmd x --transport ws --api http --find-rate --push-each-in")
            .unwrap();
        assert!(o.find_rate && o.push_each_in && !o.rate_given && !o.pushes_given);
        assert_eq!((o.api, o.lag_bound_ms), (Api::Http, 1000));
        let o = p("stream --server-cmd x --transport sse --rate 5 --pushes 9 --lag-bound-ms 50")
            .unwrap();
        assert!(o.rate_given && o.pushes_given);
        assert_eq!((o.rate, o.pushes, o.lag_bound_ms), (5.0, 9, 50));
        assert!(p("stream --server-cmd x --transport sse --rate 0").is_err());
        assert!(p("fanout --server-cmd x --find-rate").is_err());
        let o = p("suite --server-cmd x --transports longpoll,sse,ws --apis classic,http").unwrap();
        assert_eq!(o.transports.len(), 3);
        assert_eq!(o.apis, vec![Api::Classic, Api::Http]);
        assert!(p("suite --server-cmd x --transports sse,bogus").is_err());
    }

    #[test]
    fn help_anywhere_wins() {
        for s in [
            "--help",
            "-h",
            "idle -h",
            "bogus --help",
            "suite --rounds x -h",
        ] {
            assert!(p(s).unwrap().help, "{s}");
        }
        assert!(!p("idle --server-cmd x").unwrap().help);
    }

    #[test]
    fn last_value_wins_and_addresses_accumulate() {
        // scripts/bench passes its defaults first and the caller's options after them.
        let o = p(
            "suite --server-cmd a --name realplexor --pushes 10000 --rounds 3 \
                   --out-dir bench --rounds 1 --name=mine --other b",
        )
        .unwrap();
        assert_eq!((o.pushes, o.rounds, o.name.as_str()), (10000, 1, "mine"));
        assert_eq!(o.other.as_deref(), Some("b"));
        let o = p("floor-server /tmp/x.conf").unwrap();
        assert_eq!(o.conf.as_deref(), Some("/tmp/x.conf"));
        assert!(!o.floor_fanout);
        let o = p("floor-server --fanout /tmp/x.conf").unwrap();
        assert!(o.floor_fanout);
        let o = p("fanout --wait 127.0.0.1:1 --in 127.0.0.1:2 --in 127.0.0.1:3 --push-each-in")
            .unwrap();
        assert!(o.push_each_in && o.inn.len() == 2);
        assert!(p("idle --server-cmd x --push-each-in").is_err());
        assert_eq!(
            p("idle --server-cmd x --id-pool 1000").unwrap().id_pool,
            1000
        );
        let o = p(
            "publish --window 0 --rounds 0 --wait 127.0.0.1:1 --in 127.0.0.1:2 \
                   --in 127.0.0.1:3",
        )
        .unwrap();
        assert_eq!((o.window, o.rounds, o.inn.len()), (1, 1, 2));
    }
}
