//! Listener workers: the WAIT side of `idle`, `fanout` and `stream`, split over K
//! processes (or threads, when the loadtest runs as a library) so the client side can hold
//! more sockets than one process's open-file limit.
//!
//! Structure: a worker reads one JSON command per line and answers with JSON lines:
//! ```text
//! {"op":"open", n, first, wait:[addr], id|prefix[, id_pool], window, timeout_ms, source, transport}
//!      -> {"ev":"progress",...}* {"ev":"ready", parked, failed, t_first, t_last}
//!      (opens may follow each other: `parked` counts this open's connections, a
//!      progress line's `open` all the worker holds)
//! {"op":"await", payload, id, timeout_ms, transport}
//!      -> {"ev":"awaiting"} {"ev":"progress",...}* {"ev":"delivered", times:[ns], bad, missing}
//! {"op":"stream", ..} -> see `worker_stream` (a sustained run of pushes on open streams)
//! {"op":"close"} -> {"ev":"closed"}          {"op":"exit"} -> (exits)
//! ```
//! Times are CLOCK_MONOTONIC nanoseconds, comparable across processes. The `Pool` on the
//! coordinator side forwards every worker's lines into one channel (a reader thread each)
//! so progress from all workers is aggregated on one live line. `transport` is
//! `longpoll` (the default), `sse` or `ws`: on the streaming ones a delivery is one
//! message on a connection that stays open.
//!
//! Uses: `net`, `proto`, `wire`, `clock`, `stats::Progress`.

use crate::clock::now_ns;
use crate::net::{Ev, Net};
use crate::proto;
use crate::stats::Progress;
use crate::wire::{self, Transport};
use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// Runs the worker protocol until `exit` or end of input.
pub fn worker_main(input: impl BufRead, mut out: impl Write) -> io::Result<()> {
    let mut net: Option<Net> = None;
    let mut parked: Vec<usize> = Vec::new();
    for line in input.lines() {
        let cmd: Value = serde_json::from_str(&line?).map_err(io::Error::other)?;
        let op = cmd["op"].as_str().unwrap_or("");
        let reply = match op {
            "open" => {
                let n = net.get_or_insert(Net::new(cmd["source"].as_u64().unwrap_or(0) as u32)?);
                open(n, &cmd, &mut parked, &mut out)?
            }
            "await" => match net.as_mut() {
                Some(n) => await_delivery(n, &cmd, &mut parked, &mut out)?,
                None => json!({"ev": "error", "msg": "await before open"}),
            },
            "stream" => match net.as_mut() {
                Some(n) => crate::worker_stream::run(n, &cmd, &mut parked, &mut out)?,
                None => json!({"ev": "error", "msg": "stream before open"}),
            },
            "close" => {
                if let Some(n) = net.as_mut() {
                    n.close_all();
                }
                parked.clear();
                json!({"ev": "closed"})
            }
            "exit" => return Ok(()),
            _ => json!({"ev": "error", "msg": format!("unknown op {op}")}),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

fn progress(out: &mut impl Write, open: usize, done: usize) -> io::Result<()> {
    writeln!(
        out,
        "{}",
        json!({"ev": "progress", "open": open, "done": done})
    )?;
    out.flush()
}

fn open(
    net: &mut Net,
    cmd: &Value,
    parked: &mut Vec<usize>,
    out: &mut impl Write,
) -> io::Result<Value> {
    let n = cmd["n"].as_u64().unwrap_or(0) as usize;
    let first = cmd["first"].as_u64().unwrap_or(0) as usize;
    let window = cmd["window"].as_u64().unwrap_or(256).max(1) as usize;
    let deadline = now_ns() + cmd["timeout_ms"].as_u64().unwrap_or(60_000) * 1_000_000;
    let wait: Vec<SocketAddr> = cmd["wait"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    if wait.is_empty() {
        return Ok(json!({"ev": "error", "msg": "no WAIT address"}));
    }
    let shared = cmd["id"].as_str();
    let prefix = cmd["prefix"].as_str().unwrap_or("i");
    // Listener g waits on `<prefix><g % id_pool>`; 0: each on its own id.
    let id_pool = cmd["id_pool"].as_u64().unwrap_or(0) as usize;
    let transport = match transport_of(cmd) {
        Ok(t) => t,
        Err(e) => return Ok(json!({"ev": "error", "msg": e})),
    };
    let (mut next, mut pending, mut failed, mut lost) = (0usize, 0usize, 0usize, 0usize);
    let mut errors: Vec<String> = Vec::new();
    let t_first = now_ns();
    let mut t_last = t_first;
    let mut evs = Vec::new();
    let mut last_progress = 0u64;
    // Connections held from earlier opens (an idle run opens in steps).
    let base = parked.len();
    while parked.len().saturating_sub(base) + failed < n && now_ns() < deadline {
        while next < n && pending < window {
            let g = first + next;
            let own = match id_pool {
                0 => format!("{prefix}{g}"),
                k => format!("{prefix}{}", g % k),
            };
            let id = shared.unwrap_or(&own);
            let dst = *wait.get(g % wait.len()).unwrap_or(&wait[0]);
            match net.open_listen(
                dst,
                wire::listen(transport, &[(None, id)], g as u64),
                g as u64,
            ) {
                Ok(_) => pending += 1,
                Err(e) => {
                    failed += 1;
                    if errors.len() < 5 {
                        errors.push(e.to_string());
                    }
                }
            }
            next += 1;
        }
        evs.clear();
        net.poll(Duration::from_millis(10), &mut evs)?;
        for ev in evs.drain(..) {
            match ev {
                Ev::Parked { key, t, .. } => {
                    pending = pending.saturating_sub(1);
                    parked.push(key);
                    t_last = t;
                }
                Ev::Message { .. } | Ev::Response { .. } => {}
                Ev::Done { key, .. } | Ev::Failed { key, .. } => {
                    if let Some(p) = parked.iter().position(|&k| k == key) {
                        parked.swap_remove(p);
                        lost += 1;
                    } else {
                        pending = pending.saturating_sub(1);
                    }
                    failed += 1;
                    if let Ev::Failed { err, .. } = ev {
                        if errors.len() < 5 {
                            errors.push(err.to_string());
                        }
                    }
                }
            }
        }
        if now_ns() - last_progress > 200_000_000 {
            last_progress = now_ns();
            progress(out, parked.len(), 0)?;
        }
    }
    Ok(
        json!({"ev": "ready", "parked": parked.len().saturating_sub(base),
              "failed": failed + n.saturating_sub(next),
              "lost": lost, "errors": errors, "t_first": t_first, "t_last": t_last}),
    )
}

fn await_delivery(
    net: &mut Net,
    cmd: &Value,
    parked: &mut Vec<usize>,
    out: &mut impl Write,
) -> io::Result<Value> {
    writeln!(out, "{}", json!({"ev": "awaiting"}))?;
    out.flush()?;
    let payload = cmd["payload"].as_str().unwrap_or("");
    let id = cmd["id"].as_str().unwrap_or("");
    let stream = match transport_of(cmd) {
        Ok(t) => t.is_stream(),
        Err(e) => return Ok(json!({"ev": "error", "msg": e})),
    };
    let check = |parsed: Result<Vec<proto::Block>, proto::ParseError>, t: u64| match parsed {
        Ok(b) if b.len() == 1 && b[0].data == payload && b[0].ids.iter().any(|(i, _)| i == id) => {
            Ok(t)
        }
        other => Err(format!("{other:?}")),
    };
    let deadline = now_ns() + cmd["timeout_ms"].as_u64().unwrap_or(60_000) * 1_000_000;
    let expected = parked.len();
    let mut times = Vec::with_capacity(expected);
    let (mut bad, mut failed) = (0usize, 0usize);
    let mut sample_error = String::new();
    let mut evs = Vec::new();
    let mut last_progress = 0u64;
    while times.len() + bad + failed < expected && now_ns() < deadline {
        evs.clear();
        net.poll(Duration::from_millis(5), &mut evs)?;
        for ev in evs.drain(..) {
            match ev {
                Ev::Done { t_data, data, .. } if !stream => {
                    match check(proto::parse_wait_response(&data), t_data) {
                        Ok(t) => times.push(t),
                        Err(e) => {
                            bad += 1;
                            if sample_error.is_empty() {
                                sample_error = e;
                            }
                        }
                    }
                }
                Ev::Message { t, data, .. } => {
                    match check(proto::parse_message(&data).map(|b| vec![b]), t) {
                        Ok(t) => times.push(t),
                        Err(e) => {
                            bad += 1;
                            if sample_error.is_empty() {
                                sample_error = e;
                            }
                        }
                    }
                }
                Ev::Done { .. } => {
                    // A stream the server closed before its message.
                    failed += 1;
                    if sample_error.is_empty() {
                        sample_error = "stream closed before the message".into();
                    }
                }
                Ev::Failed { err, .. } => {
                    failed += 1;
                    if sample_error.is_empty() {
                        sample_error = err.to_string();
                    }
                }
                Ev::Parked { .. } | Ev::Response { .. } => {}
            }
        }
        if now_ns() - last_progress > 200_000_000 {
            last_progress = now_ns();
            progress(out, net.len(), times.len())?;
        }
    }
    let missing = expected.saturating_sub(times.len() + bad + failed);
    net.close_all();
    parked.clear();
    Ok(
        json!({"ev": "delivered", "times": times, "bad": bad, "failed": failed,
              "missing": missing, "error": sample_error}),
    )
}

/// A command's `transport` (absent: long-poll).
fn transport_of(cmd: &Value) -> Result<Transport, String> {
    cmd["transport"].as_str().unwrap_or("longpoll").parse()
}

struct Handle {
    tx: Box<dyn Write + Send>,
    child: Option<Child>,
    thread: Option<JoinHandle<()>>,
}

/// The coordinator's side: K workers and one channel of their answers.
pub struct Pool {
    workers: Vec<Handle>,
    rx: Receiver<(usize, Value)>,
    /// Latest progress per worker: (open, done).
    seen: Vec<(u64, u64)>,
}

fn forward(i: usize, r: impl io::Read + Send + 'static, tx: Sender<(usize, Value)>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let v =
                serde_json::from_str(&line).unwrap_or_else(|_| json!({"ev": "error", "msg": line}));
            if tx.send((i, v)).is_err() {
                break;
            }
        }
        let _ = tx.send((i, json!({"ev": "gone"})));
    });
}

impl Pool {
    /// Starts `k` workers: processes running `exe worker` when `exe` is given (the
    /// loadtest binary), otherwise threads of this process.
    pub fn start(k: usize, exe: Option<&std::path::Path>) -> io::Result<Pool> {
        let (tx, rx) = channel();
        let mut workers = Vec::new();
        for i in 0..k.max(1) {
            if let Some(exe) = exe {
                let mut child = Command::new(exe)
                    .arg("worker")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()?;
                let stdin = child
                    .stdin
                    .take()
                    .ok_or_else(|| io::Error::other("no stdin"))?;
                let stdout = child
                    .stdout
                    .take()
                    .ok_or_else(|| io::Error::other("no stdout"))?;
                forward(i, stdout, tx.clone());
                workers.push(Handle {
                    tx: Box::new(stdin),
                    child: Some(child),
                    thread: None,
                });
            } else {
                let (a, b) = UnixStream::pair()?;
                let a2 = a.try_clone()?;
                let thread = std::thread::spawn(move || {
                    let _ = worker_main(BufReader::new(a2), a);
                });
                forward(i, b.try_clone()?, tx.clone());
                workers.push(Handle {
                    tx: Box::new(b),
                    child: None,
                    thread: Some(thread),
                });
            }
        }
        let seen = vec![(0, 0); workers.len()];
        Ok(Pool { workers, rx, seen })
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    pub fn send(&mut self, i: usize, cmd: &Value) -> io::Result<()> {
        let w = self
            .workers
            .get_mut(i)
            .ok_or_else(|| io::Error::other("no such worker"))?;
        writeln!(w.tx, "{cmd}")?;
        w.tx.flush()
    }

    /// Waits for one `ev` answer from every worker (progress lines update `prog`).
    pub fn collect(
        &mut self,
        ev: &str,
        timeout: Duration,
        prog: &mut Progress,
    ) -> Result<Vec<Value>, String> {
        self.collect_with(ev, timeout, prog, &mut |_, _| {})
    }

    /// `collect`, calling `tick(open, prog)` with the workers' summed open count before
    /// each redraw of the progress line (at least every 200 ms). Every line already
    /// waiting is taken before `tick`: a slow `tick` (a memory sample reads
    /// /proc/PID/smaps_rollup of every server process) must not leave the progress lines
    /// queued, or the open count it is given lags behind by however many queued up.
    pub fn collect_with(
        &mut self,
        ev: &str,
        timeout: Duration,
        prog: &mut Progress,
        tick: &mut dyn FnMut(u64, &mut Progress),
    ) -> Result<Vec<Value>, String> {
        let mut got: Vec<Option<Value>> = vec![None; self.workers.len()];
        let end = now_ns() + timeout.as_nanos() as u64;
        while got.iter().any(Option::is_none) {
            let left = end.saturating_sub(now_ns());
            if left == 0 {
                return Err(format!("workers did not answer {ev} in {timeout:?}"));
            }
            let mut next = match self
                .rx
                .recv_timeout(Duration::from_nanos(left).min(Duration::from_millis(200)))
            {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Err("workers gone".into()),
            };
            while let Some((i, v)) = next {
                let kind = v["ev"].as_str().unwrap_or("");
                if kind == "progress" {
                    if let Some(s) = self.seen.get_mut(i) {
                        *s = (
                            v["open"].as_u64().unwrap_or(0),
                            v["done"].as_u64().unwrap_or(0),
                        );
                    }
                } else if kind == ev {
                    if let Some(g) = got.get_mut(i) {
                        *g = Some(v);
                    }
                } else if kind == "error" || kind == "gone" {
                    return Err(format!("worker {i}: {v}"));
                }
                next = self.rx.try_recv().ok();
            }
            let (o, d) = self
                .seen
                .iter()
                .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
            tick(o, prog);
            prog.update(o, d, o.max(d));
        }
        for s in &mut self.seen {
            *s = (0, 0);
        }
        Ok(got.into_iter().flatten().collect())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = writeln!(w.tx, "{}", json!({"op": "exit"}));
            let _ = w.tx.flush();
        }
        for w in &mut self.workers {
            if let Some(mut c) = w.child.take() {
                let end = now_ns() + 3_000_000_000;
                loop {
                    if !matches!(c.try_wait(), Ok(None)) {
                        break;
                    }
                    if now_ns() > end {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}
