//! `cluster::link` (issue 13) against a real `redis-server` and against fake servers,
//! driven by a small mio loop the way a worker's reactor will drive it.
//!
//! Each test starts its own `redis-server` (Debian's `/usr/bin/redis-server`, from
//! `scripts/deps/cluster.txt`) on a free loopback port or a Unix socket in a temp dir, with
//! persistence off, and kills it by PID when dropped. Nothing sleeps for a fixed time to
//! synchronise: the loop runs until a condition holds, with a deadline.

use crate::util::{free_port, Redis};
use mio::{Events, Poll, Token};
use realplexor::cluster::addr::{self, Target};
use realplexor::cluster::link::{Event, Link, LinkError, Options, State};
use realplexor::cluster::resp::{self, Value};
use realplexor::cluster::stream_id::StreamId;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const TOKEN: Token = Token(7);
const DEADLINE: Duration = Duration::from_secs(10);

/// A mio loop around one link that records every event and counts its turns.
struct Driver {
    poll: Poll,
    events: Events,
    link: Link<u32>,
    seen: Vec<Event<u32>>,
    turns: u64,
}

impl Driver {
    fn new(target: Target, opts: Options) -> Driver {
        // RUST_LOG=warn shows the link's own log lines.
        let _ = env_logger::builder().is_test(true).try_init();
        Driver {
            poll: Poll::new().unwrap(),
            events: Events::with_capacity(16),
            link: Link::new(target, opts),
            seen: Vec::new(),
            turns: 0,
        }
    }

    fn turn(&mut self, max_wait: Duration) {
        self.turns += 1;
        self.link.tick();
        self.link.flush();
        self.link
            .sync_registration(self.poll.registry(), TOKEN)
            .unwrap();
        let now = Instant::now();
        let wait = match self.link.next_deadline() {
            Some(d) => d.saturating_duration_since(now).min(max_wait),
            None => max_wait,
        };
        self.poll.poll(&mut self.events, Some(wait)).unwrap();
        for ev in self.events.iter() {
            assert_eq!(ev.token(), TOKEN);
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.link.on_readable();
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                self.link.on_writable();
            }
        }
        self.link.tick();
        self.link.flush();
        self.link
            .sync_registration(self.poll.registry(), TOKEN)
            .unwrap();
        while let Some(e) = self.link.next_event() {
            self.seen.push(e);
        }
    }

    /// Runs until `done` holds; false at the deadline.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Driver) -> bool) -> bool {
        let end = Instant::now() + limit;
        while !done(self) {
            if Instant::now() >= end {
                return false;
            }
            self.turn(Duration::from_millis(50));
        }
        true
    }

    /// Runs for `d` whatever happens.
    fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.turn(end.saturating_duration_since(Instant::now()));
        }
    }

    fn wait_up(&mut self) {
        let before = self.seen.iter().filter(|e| matches!(e, Event::Up)).count();
        let ok = self.run_until(DEADLINE, |d| {
            d.seen.iter().filter(|e| matches!(e, Event::Up)).count() > before
        });
        assert!(
            ok,
            "link not up: {:?} {:?}",
            self.link.state(),
            self.link.last_error()
        );
        assert!(self.link.is_ready());
    }

    fn reply(&mut self, tag: u32) -> Value {
        let ok = self.run_until(DEADLINE, |d| d.find(tag).is_some());
        assert!(ok, "no reply for {tag}: {:?}", self.link.last_error());
        match self.find(tag) {
            Some(Event::Reply(_, v)) => v.clone(),
            other => panic!("tag {tag}: {other:?}"),
        }
    }

    fn find(&self, tag: u32) -> Option<&Event<u32>> {
        self.seen.iter().find(|e| match e {
            Event::Reply(t, _) | Event::Failed(t, _) => *t == tag,
            _ => false,
        })
    }

    fn call(&mut self, tag: u32, args: &[&[u8]]) -> Value {
        self.link.send(tag, args).map_err(|(_, e)| e).unwrap();
        self.reply(tag)
    }
}

fn simple(s: &str) -> Value {
    Value::Simple(s.as_bytes().to_vec())
}

fn bulk(s: &[u8]) -> Value {
    Value::Bulk(s.to_vec())
}

fn fast() -> Options {
    Options {
        client_name: Some("realplexor-test".into()),
        ..Options::default()
    }
}

#[test]
fn ping_pipeline_and_stream_round_trip() {
    let redis = Redis::start(&[]);
    let mut d = Driver::new(redis.url("", 3), fast());
    // Accepted before the handshake is done; written after it.
    d.link.send(1, &["PING"]).unwrap();
    assert_eq!(d.link.in_flight(), 1);
    d.wait_up();
    assert_eq!(d.reply(1), simple("PONG"));
    assert_eq!(
        d.call(2, &[b"CLIENT", b"GETNAME"]),
        bulk(b"realplexor-test")
    );

    // Pipelined: two XADDs, then XRANGE and XREAD, answered in order.
    let key = b"rp:messages";
    d.link
        .send(3, &[&b"XADD"[..], key, b"*", b"d", b"hello"])
        .unwrap();
    d.link
        .send(4, &[&b"XADD"[..], key, b"*", b"d", b""])
        .unwrap();
    d.link.send(5, &[&b"XRANGE"[..], key, b"-", b"+"]).unwrap();
    d.link
        .send(
            6,
            &[&b"XREAD"[..], b"COUNT", b"10", b"STREAMS", key, b"0-0"],
        )
        .unwrap();
    let id_of = |v: Value| StreamId::parse(v.as_bytes().unwrap()).unwrap();
    let (a, b) = (id_of(d.reply(3)), id_of(d.reply(4)));
    assert!(a < b);
    let (ca, cb) = (a.cursor().unwrap(), b.cursor().unwrap());
    assert!(cb.is_after(&ca));
    assert_eq!(ca.to_string().len(), 25);
    let entry = |id: StreamId, body: &[u8]| {
        Value::Array(vec![
            bulk(id.to_string().as_bytes()),
            Value::Array(vec![bulk(b"d"), bulk(body)]),
        ])
    };
    let both = Value::Array(vec![entry(a, b"hello"), entry(b, b"")]);
    assert_eq!(d.reply(5), both);
    assert_eq!(
        d.reply(6),
        Value::Array(vec![Value::Array(vec![bulk(key), both])])
    );

    // Resuming from the first entry's cursor reads only the second.
    let mut from = Vec::new();
    StreamId::floor_of(&ca).unwrap().write_to(&mut from);
    let got = d.call(7, &[&b"XREAD"[..], b"STREAMS", key, &from]);
    assert_eq!(
        got,
        Value::Array(vec![Value::Array(vec![
            bulk(key),
            Value::Array(vec![entry(b, b"")])
        ])])
    );

    // A Redis error reply is a reply, not a link failure.
    let wrong = d.call(8, &[&b"LPUSH"[..], key, b"x"]);
    assert!(wrong.error_text().unwrap().starts_with(b"WRONGTYPE"));
    assert!(d.link.is_ready());

    // Large values cross many reads and writes.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(d.call(9, &[&b"ECHO"[..], &big]), Value::Bulk(big));

    // SELECT 3 took effect: the stream is not in db 0.
    let mut d0 = Driver::new(redis.target(), Options::default());
    d0.wait_up();
    assert_eq!(d0.call(1, &[&b"EXISTS"[..], key]), Value::Int(0));
    assert_eq!(d.call(10, &[&b"EXISTS"[..], key]), Value::Int(1));
    assert_eq!(d.link.in_flight(), 0);
    assert_eq!(d.link.attempts(), 1);
}

#[test]
fn unix_socket() {
    let redis = Redis::start_unix();
    let path = redis.sock_path();
    let target = addr::parse(&format!("unix:{}", path.display()))
        .unwrap()
        .unwrap();
    let mut d = Driver::new(target, Options::default());
    d.wait_up();
    assert_eq!(d.call(1, &[b"PING"]), simple("PONG"));
}

#[test]
fn auth_right_wrong_and_missing() {
    let redis = Redis::start(&[
        "--requirepass",
        "s3cret",
        "--user",
        "alice",
        "on",
        ">pw",
        "~*",
        "&*",
        "+@all",
    ]);
    let mut good = Driver::new(redis.url(":s3cret@", 0), Options::default());
    good.wait_up();
    assert_eq!(good.call(1, &[b"PING"]), simple("PONG"));
    let mut acl = Driver::new(redis.url("alice:pw@", 0), Options::default());
    acl.wait_up();
    assert_eq!(acl.call(1, &[b"ACL", b"WHOAMI"]), bulk(b"alice"));

    let cases = [
        (redis.url(":wrong@", 0), "AUTH rejected: WRONGPASS"),
        (redis.url("alice:nope@", 0), "AUTH rejected: WRONGPASS"),
        (redis.target(), "PING rejected: NOAUTH"),
    ];
    for (target, want) in cases {
        let mut d = Driver::new(target, Options::default());
        d.link.send(1, &["PING"]).unwrap();
        d.run_for(Duration::from_millis(1500));
        assert!(!d.seen.iter().any(|e| matches!(e, Event::Up)));
        let err = d.link.last_error().cloned().unwrap();
        assert!(matches!(err, LinkError::Handshake(_)), "{err:?}");
        assert!(err.to_string().contains(want), "{err}");
        // The command waiting for the handshake was failed, not dropped.
        assert!(matches!(
            d.find(1),
            Some(Event::Failed(1, LinkError::Handshake(_)))
        ));
        // Back-off, not a busy loop: 100 + 200 + 400 + 800 ms between attempts.
        assert!(d.link.attempts() <= 5, "{} attempts", d.link.attempts());
        assert!(d.turns < 200, "{} loop turns", d.turns);
        if let State::Down { .. } = d.link.state() {
            assert_eq!(d.link.send(2, &["PING"]), Err((2, LinkError::Down)));
        }
    }
}

#[test]
fn server_killed_and_restarted() {
    let mut redis = Redis::start(&[]);
    let mut d = Driver::new(redis.target(), Options::default());
    d.wait_up();
    // BLPOP blocks in Redis, so the XADD behind it is in flight too.
    d.link.send(1, &["BLPOP", "nothing", "0"]).unwrap();
    d.link
        .send(2, &["XADD", "rp:messages", "*", "d", "x"])
        .unwrap();
    d.run_for(Duration::from_millis(100));
    assert_eq!(d.link.in_flight(), 2);
    redis.kill();
    let ok = d.run_until(DEADLINE, |d| d.find(1).is_some() && d.find(2).is_some());
    assert!(ok, "in-flight commands not reported");
    for tag in [1, 2] {
        assert!(
            matches!(
                d.find(tag),
                Some(Event::Failed(_, LinkError::Closed | LinkError::Io(_)))
            ),
            "{:?}",
            d.find(tag)
        );
    }
    assert!(d.seen.iter().any(|e| matches!(e, Event::Down(_))));
    assert_eq!(d.link.in_flight(), 0);
    // While down, a publisher is refused at once or failed at the next attempt.
    match d.link.send(3, &["PING"]) {
        Err((3, LinkError::Down)) => {}
        Ok(()) => assert!(d.run_until(DEADLINE, |d| d.find(3).is_some())),
        other => panic!("{other:?}"),
    }
    d.run_for(Duration::from_millis(300));
    assert!(!d.link.is_ready());
    redis.launch();
    d.wait_up();
    assert!(d.link.attempts() >= 2);
    assert_eq!(d.call(4, &[b"PING"]), simple("PONG"));

    // Closing on purpose fails what is in flight too, and stays down.
    d.link.send(5, &["BLPOP", "nothing", "0"]).unwrap();
    d.run_for(Duration::from_millis(50));
    d.link.close();
    d.run_for(Duration::from_millis(50));
    assert_eq!(d.find(5), Some(&Event::Failed(5, LinkError::Shutdown)));
    assert!(matches!(d.link.state(), State::Down { .. }));
    assert_eq!(d.link.in_flight(), 0);
}

/// A TCP server answering every connection with `reply` (after the first read, when
/// `after_read`), counting connections, until dropped.
struct Fake {
    port: u16,
    conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Fake {
    fn start(reply: &'static [u8]) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let conns = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (conns.clone(), stop.clone());
        thread::spawn(move || {
            let mut open = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut sock, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        sock.set_nonblocking(false).unwrap();
                        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut buf = [0u8; 512];
                        let _ = sock.read(&mut buf);
                        let _ = sock.write_all(reply);
                        open.push(sock);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Fake { port, conns, stop }
    }

    fn target(&self) -> Target {
        addr::parse(&format!("127.0.0.1:{}", self.port))
            .unwrap()
            .unwrap()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn garbage_drops_the_link_with_a_clear_error() {
    let cases: [(&'static [u8], &str); 4] = [
        (
            b"HTTP/1.1 400 Bad Request\r\n\r\n",
            "unknown RESP type byte 0x48",
        ),
        (b"$99999999999\r\n", "over the limit"),
        (b"*1\r\n+PONG\n", "CRLF expected"),
        // Up after the first PONG; the second answers tag 1, the third nothing.
        (b"+PONG\r\n+PONG\r\n+PONG\r\n", "no command waiting"),
    ];
    for (reply, want) in cases {
        let fake = Fake::start(reply);
        let mut d = Driver::new(fake.target(), Options::default());
        d.link.send(1, &["PING"]).unwrap();
        let ok = d.run_until(DEADLINE, |d| d.find(1).is_some());
        assert!(ok);
        d.run_for(Duration::from_millis(1000));
        let err = d.link.last_error().cloned().unwrap();
        assert!(
            err.to_string().contains(want),
            "{:?}: {err}",
            String::from_utf8_lossy(reply)
        );
        if !want.contains("no command") {
            assert!(matches!(d.find(1), Some(Event::Failed(1, _))));
        }
        let n = fake.conns.load(Ordering::Relaxed);
        assert!((1..=5).contains(&n), "{n} connections in about a second");
        assert!(d.turns < 200, "{} loop turns", d.turns);
    }
}

#[test]
fn refused_silent_and_slow_servers() {
    // Nothing listens: refused, backed off.
    let mut d = Driver::new(
        addr::parse(&format!("127.0.0.1:{}", free_port()))
            .unwrap()
            .unwrap(),
        Options::default(),
    );
    d.run_for(Duration::from_millis(1000));
    assert!(
        matches!(d.link.last_error(), Some(LinkError::Connect(m)) if m.contains("refused")),
        "{:?}",
        d.link.last_error()
    );
    assert!(
        d.link.attempts() <= 5 && d.turns < 200,
        "{} {}",
        d.link.attempts(),
        d.turns
    );
    assert_eq!(d.link.send(1, &["PING"]), Err((1, LinkError::Down)));

    // A server that answers the handshake and then nothing: the reply timeout fails it.
    let fake = Fake::start(b"+PONG\r\n");
    let opts = Options {
        reply_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let mut d = Driver::new(fake.target(), opts);
    d.wait_up();
    let sent = Instant::now();
    d.link.send(1, &["PING"]).unwrap();
    assert!(d.run_until(DEADLINE, |d| d.find(1).is_some()));
    assert!(sent.elapsed() >= Duration::from_millis(300));
    assert_eq!(d.find(1), Some(&Event::Failed(1, LinkError::ReplyTimeout)));
    assert!(d.seen.contains(&Event::Down(LinkError::ReplyTimeout)));

    // A Unix socket path with nothing behind it.
    let target = addr::parse("unix:/nonexistent/redis.sock")
        .unwrap()
        .unwrap();
    let mut d = Driver::new(target, Options::default());
    d.run_for(Duration::from_millis(300));
    let err = d.link.last_error().unwrap().to_string();
    assert!(
        err.contains("connect failed: unix:/nonexistent/redis.sock"),
        "{err}"
    );
}

#[test]
fn encoder_matches_what_redis_parses() {
    // Binary-safe arguments through the real server.
    let redis = Redis::start(&[]);
    let mut d = Driver::new(redis.target(), Options::default());
    d.wait_up();
    let odd = b"\r\n$-1\r\n*0\0\xff".to_vec();
    assert_eq!(d.call(1, &[&b"SET"[..], b"k", &odd]), simple("OK"));
    assert_eq!(d.call(2, &[&b"GET"[..], b"k"]), Value::Bulk(odd));
    let mut raw = Vec::new();
    resp::encode(&mut raw, &["GET", "missing"]);
    assert_eq!(d.call(3, &[b"GET", b"missing"]), Value::Nil);
    assert!(raw.starts_with(b"*2\r\n"));
}

#[test]
fn many_pipelined_commands_answer_in_order() {
    let redis = Redis::start(&[]);
    let mut d = Driver::new(redis.target(), Options::default());
    d.wait_up();
    let n = 20_000u32;
    for tag in 0..n {
        d.link.send(tag, &["INCR", "counter"]).unwrap();
    }
    d.link.flush();
    let ok = d.run_until(DEADLINE, |d| d.seen.len() > n as usize);
    assert!(ok, "{} of {n} replies", d.seen.len());
    let replies: Vec<&Event<u32>> = d.seen.iter().skip(1).collect();
    for (i, e) in replies.iter().enumerate() {
        let want = Event::Reply(i as u32, Value::Int(i as i64 + 1));
        assert_eq!(**e, want);
    }
    assert_eq!(d.link.in_flight(), 0);
    assert_eq!(d.link.unsent_bytes(), 0);
}

/// A burst (a 4 MB value written, then read back as one reply, then 20,000 pipelined
/// commands) grows the link's buffers and queues; once it is over they are back within
/// `link::KEEP`, not holding the burst's size for the rest of the worker's life.
#[test]
fn buffers_are_given_back_after_a_large_reply() {
    use realplexor::cluster::link::KEEP;
    let redis = Redis::start(&[]);
    let mut d = Driver::new(redis.target(), Options::default());
    d.wait_up();
    let big: Vec<u8> = (0..4u32 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(d.call(1, &[b"SET", b"big", &big]), simple("OK"));
    assert!(
        d.link.buffer_capacity() <= 3 * KEEP,
        "after a 4 MB command: {} bytes of buffers",
        d.link.buffer_capacity()
    );
    assert_eq!(d.call(2, &[b"GET", b"big"]), Value::Bulk(big));
    assert!(
        d.link.buffer_capacity() <= 3 * KEEP,
        "after a 4 MB reply: {} bytes of buffers",
        d.link.buffer_capacity()
    );
    let n = 20_000u32;
    for tag in 100..100 + n {
        d.link.send(tag, &["PING"]).unwrap();
    }
    let ok = d.run_until(DEADLINE, |d| d.find(100 + n - 1).is_some());
    assert!(ok, "pipelined PINGs not answered");
    assert!(d.link.buffer_capacity() <= 3 * KEEP);
    assert!(
        d.link.queue_capacity() <= 2 * KEEP,
        "after 20,000 pipelined commands: {} bytes of queues",
        d.link.queue_capacity()
    );
}
