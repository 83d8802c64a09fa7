//! Storage unit tests: every operation is followed by `check_invariants()`.

use super::*;
use std::time::Duration;

fn lim() -> Limits {
    Limits {
        max_data_for_id: 2,
        offline_timeout: Duration::from_secs(30),
        clean_id_after: Duration::from_secs(3600),
        event_chain_len: 1000,
        coalesce: std::time::Duration::ZERO,
    }
}

fn c(s: &str) -> Cursor {
    Cursor::parse_client(s.as_bytes()).unwrap()
}

fn msg(data: &str, limiters: &[&str]) -> Rc<Message> {
    Rc::new(Message {
        data: data.as_bytes().into(),
        limiters: limiters.iter().map(|l| Box::from(*l)).collect(),
    })
}

fn conn(k: u32) -> ConnId {
    ConnId { key: k, gen: k }
}

/// A whole delivery run: the ids that gave data, then every listener served.
fn deliver(s: &mut Storage, ids: &[ChannelId], lim: &Limits) -> (Vec<Delivery>, Vec<Rc<str>>) {
    let mut run = s.begin_delivery(ids.to_vec(), lim);
    let names = s.ids_with_data(&run);
    let mut out = Vec::new();
    while let Some(d) = s.next_delivery(&mut run) {
        s.check_invariants();
        out.push(d);
    }
    (out, names)
}

fn bodies(d: &Delivery) -> Vec<String> {
    d.blocks
        .iter()
        .map(|b| {
            let ids: Vec<String> = b.ids.iter().map(|(n, c)| format!("{n}={c}")).collect();
            format!("{}:{}", ids.join("+"), String::from_utf8_lossy(&b.msg.data))
        })
        .collect()
}

#[test]
fn push_then_register_delivers_newer_items_in_order() {
    let now = Instant::now();
    let mut s = Storage::new();
    let abc = s.intern("abc");
    for (cur, data) in [("20", "ccc"), ("11", "aaa"), ("18", "ddd"), ("15", "bbb")] {
        s.push(
            now,
            &msg(data, &[]),
            &[(c(cur), abc)],
            &Limits {
                max_data_for_id: 30,
                ..lim()
            },
        );
        s.check_invariants();
    }
    let l = s.register(conn(1), vec![(c("10"), abc)], &lim());
    s.check_invariants();
    let (d, ids) = s
        .deliver_to_new(
            l,
            &Limits {
                max_data_for_id: 30,
                ..lim()
            },
        )
        .unwrap();
    let d = [d];
    s.check_invariants();
    assert_eq!(&*ids[0], "abc");
    assert_eq!(
        bodies(&d[0]),
        ["abc=11:aaa", "abc=15:bbb", "abc=18:ddd", "abc=20:ccc"]
    );
    assert_eq!(s.counts().pairs_by_fhs, 0);
    s.close_listener(l, now, &lim());
    s.check_invariants();
    assert_eq!(s.counts().online_timers, 1);
}

#[test]
fn one_message_to_two_ids_is_one_block_and_trim_keeps_newest() {
    let now = Instant::now();
    let mut s = Storage::new();
    let (a, b) = (s.intern("abc"), s.intern("def"));
    for (i, data) in ["a", "bb", "ccc"].iter().enumerate() {
        let cur = c(&(i + 1).to_string());
        s.push(now, &msg(data, &[]), &[(cur.clone(), a), (cur, b)], &lim());
        deliver(&mut s, &[a, b], &lim());
        s.check_invariants();
    }
    let l = s.register(conn(1), vec![(c("0"), b), (c("0"), a)], &lim());
    let (d, _) = s.deliver_to_new(l, &lim()).unwrap();
    let d = [d];
    assert_eq!(bodies(&d[0]), ["abc=2+def=2:bb", "abc=3+def=3:ccc"]);
    assert_eq!(s.trimmed_items, 2);
    // Two items of "bb" and "ccc" per id are left (MAX_DATA_FOR_ID = 2).
    assert_eq!((s.queued_items, s.queued_bytes), (4, 10));
    s.check_invariants();
}

#[test]
fn fanout_and_limiters() {
    let now = Instant::now();
    let mut s = Storage::new();
    let (news, u7) = (s.intern("news"), s.intern("u7"));
    let l1 = s.register(conn(1), vec![(c("1"), news)], &lim());
    let l2 = s.register(conn(2), vec![(c("1"), news), (c("1"), u7)], &lim());
    let l3 = s.register(conn(3), vec![(c("1"), news)], &lim());
    s.check_invariants();
    s.push(
        now,
        &msg("\"private\"", &["u7"]),
        &[(c("20"), news)],
        &lim(),
    );
    let (d, ids) = deliver(&mut s, &[news], &lim());
    s.check_invariants();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].listener, l2);
    assert_eq!(&*ids[0], "news");
    s.push(now, &msg("\"public\"", &[]), &[(c("21"), news)], &lim());
    let (d, _) = deliver(&mut s, &[news], &lim());
    s.check_invariants();
    let mut served: Vec<ListenerId> = d.iter().map(|d| d.listener).collect();
    served.sort();
    assert_eq!(served, [l1, l3]);
    for l in [l1, l2, l3] {
        s.close_listener(l, now, &lim());
        s.check_invariants();
    }
    assert_eq!(s.counts().connected_fhs, 0);
}

#[test]
fn offline_and_cleanup_timers_forget_channels() {
    let now = Instant::now();
    let mut s = Storage::new();
    let abc = s.intern("abc");
    let l = s.register(conn(1), vec![(c("1"), abc)], &lim());
    s.push(now, &msg("x", &[]), &[(c("0"), abc)], &lim());
    s.close_listener(l, now, &lim());
    s.check_invariants();
    // A second registration within the grace window cancels the countdown.
    let l = s.register(conn(2), vec![(c("1"), abc)], &lim());
    assert_eq!(s.events().len(), 1);
    s.close_listener(l, now, &lim());
    let later = now + Duration::from_secs(4000);
    let mut got = Vec::new();
    while let Some(e) = s.expire_one(later) {
        if let Expired::Offline(n) = &e {
            s.record_offline(n, &lim());
        }
        got.push(format!("{e:?}"));
        s.check_invariants();
    }
    assert_eq!(got.len(), 2);
    assert_eq!((s.cleaned_items, s.queued_items, s.queued_bytes), (1, 0, 0));
    assert_eq!(
        s.counts(),
        Counts {
            events: 2,
            ..Counts::default()
        }
    );
    assert!(s.lookup("abc").is_none());
}

#[test]
fn duplicate_ids_in_one_registration() {
    let mut s = Storage::new();
    let dd = s.intern("dd");
    s.push(Instant::now(), &msg("x", &[]), &[(c("7"), dd)], &lim());
    let l = s.register(conn(1), vec![(c("10"), dd), (c("5"), dd)], &lim());
    assert_eq!(s.listener_name(l), "10:dd,(and 1 more)");
    let (d, _) = s.deliver_to_new(l, &lim()).unwrap();
    let d = [d];
    assert_eq!(bodies(&d[0]), ["dd=7:x"]);
    s.check_invariants();
}

#[test]
fn long_id_lists_dedupe_linearly_with_last_cursor_winning() {
    let mut s = Storage::new();
    let ids: Vec<ChannelId> = (0..100).map(|i| s.intern(&format!("id{i}"))).collect();
    let mut pairs: Vec<(Cursor, ChannelId)> = ids.iter().map(|&id| (c("10"), id)).collect();
    pairs.push((c("5"), ids[0]));
    pairs.push((c("7"), ids[50]));
    s.push(
        Instant::now(),
        &msg("x", &[]),
        &[(c("6"), ids[0]), (c("6"), ids[50])],
        &lim(),
    );
    let l = s.register(conn(1), pairs, &lim());
    s.check_invariants();
    assert_eq!(s.listener_name(l), "10:id0,(and 101 more)");
    let (d, _) = s.deliver_to_new(l, &lim()).unwrap();
    let d = [d];
    // id0 listens at 5 (6 is new), id50 at 7 (6 is old).
    assert_eq!(bodies(&d[0]), ["id0=6:x"]);
    assert_eq!(s.counts().connected_fhs, 0);
    s.check_invariants();
}

#[test]
fn shrink_releases_peak_capacity_once_channels_are_gone() {
    let now = Instant::now();
    let mut s = Storage::new();
    let short = Limits {
        clean_id_after: Duration::from_secs(1),
        ..lim()
    };
    for i in 0..10_000 {
        let id = s.intern(&format!("id{i}"));
        s.push(now, &msg("x", &[]), &[(c("1"), id)], &short);
    }
    let later = now + Duration::from_secs(2);
    while s.expire_one(later).is_some() {}
    s.check_invariants();
    assert_eq!(s.freed_since_trim(), 10_000);
    assert!(s.names.capacity() >= 10_000);
    s.shrink();
    assert_eq!(s.freed_since_trim(), 0);
    assert!(s.names.capacity() < 100, "{}", s.names.capacity());
    assert_eq!(s.channels.capacity(), 0);
    // Still works afterwards.
    let id = s.intern("again");
    s.push(later, &msg("y", &[]), &[(c("2"), id)], &short);
    s.check_invariants();
}

#[test]
fn held_listener_is_skipped_by_pushes_and_released_with_everything() {
    let now = Instant::now();
    let window = Duration::from_millis(50);
    let big = Limits {
        max_data_for_id: 30,
        ..lim()
    };
    let mut s = Storage::new();
    let (a, b) = (s.intern("a"), s.intern("b"));
    let held = s.register(conn(1), vec![(c("0"), a), (c("0"), b)], &big);
    let free = s.register(conn(2), vec![(c("0"), a)], &big);
    s.hold(held, now, window);
    assert!(s.is_held(held) && !s.is_held(free) && s.held_count() == 1);
    assert!(s.deliver_to_new(held, &big).is_none());
    s.push(now, &msg("x", &[]), &[(c("1"), a)], &big);
    let (ds, names) = deliver(&mut s, &[a], &big);
    // Only the listener outside its window is answered (and named in the log line).
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].listener, free);
    assert_eq!(names.len(), 1);
    s.push(now, &msg("y", &[]), &[(c("2"), b)], &big);
    assert!(deliver(&mut s, &[b], &big).0.is_empty());
    s.check_invariants();
    assert_eq!(s.next_release(), Some(now + window));
    assert_eq!(s.release_one(now + window / 2), None);
    assert_eq!(s.release_one(now + window), Some(held));
    assert_eq!(s.held_count(), 0);
    let (d, _) = s.deliver_to_new(held, &big).unwrap();
    assert_eq!(bodies(&d), ["a=1:x", "b=2:y"]);
    s.check_invariants();
}

#[test]
fn a_held_listener_that_closes_leaves_only_a_stale_timer() {
    let now = Instant::now();
    let window = Duration::from_millis(50);
    let mut s = Storage::new();
    let a = s.intern("a");
    let l = s.register(conn(1), vec![(c("0"), a)], &lim());
    s.hold(l, now, window);
    s.close_listener(l, now, &lim());
    assert_eq!(s.held_count(), 0);
    // The slot is reused by another connection, not held: the old timer is ignored.
    let l2 = s.register(conn(2), vec![(c("0"), a)], &lim());
    assert_eq!(l2, l);
    assert_eq!(s.release_one(now + window), None);
    // A zero window holds nothing; a streaming listener is never held.
    s.hold(l2, now, Duration::ZERO);
    assert!(!s.is_held(l2));
    s.set_streaming(l2);
    s.hold(l2, now, window);
    assert!(!s.is_held(l2));
    s.check_invariants();
}

/// A listener on one id keeps its subscription inline (no heap block per parked
/// connection); one on several ids boxes them, in request order; both detach cleanly.
#[test]
fn one_subscription_is_inline_several_are_boxed() {
    let lim = lim();
    let mut s = Storage::new();
    let (a, b) = (s.intern("a"), s.intern("b"));
    let one = s.register(conn(1), vec![(c("1"), a)], &lim);
    let many = s.register(conn(2), vec![(c("2"), b), (c("3"), a), (c("4"), b)], &lim);
    s.check_invariants();
    let subs = |s: &Storage, l: ListenerId| -> Vec<ChannelId> {
        s.listeners[l as usize]
            .subs
            .iter()
            .map(|x| x.channel)
            .collect()
    };
    assert!(matches!(s.listeners[one as usize].subs, Subs::One(_)));
    assert_eq!(subs(&s, one), vec![a]);
    // The duplicate b keeps its first place with the later cursor.
    assert!(matches!(s.listeners[many as usize].subs, Subs::Many(_)));
    assert_eq!(subs(&s, many), vec![b, a]);
    assert_eq!(s.local_count(a), 2);
    s.detach(one);
    s.check_invariants();
    assert_eq!(s.local_count(a), 1);
    s.detach(many);
    s.check_invariants();
    assert_eq!((s.local_count(a), s.local_count(b)), (0, 0));
}

/// A waiter list gives back capacity once three quarters of its listeners left (and all
/// of it once the last one did), and the listeners left are still found and detached.
#[test]
fn waiter_list_shrinks_when_most_listeners_leave() {
    let lim = lim();
    let mut s = Storage::new();
    let a = s.intern("a");
    let ls: Vec<ListenerId> = (0..1000)
        .map(|k| s.register(conn(k), vec![(c("1"), a)], &lim))
        .collect();
    let cap = |s: &Storage| s.channels[a as usize].waiters.capacity();
    assert!(cap(&s) >= 1000);
    for &l in &ls[..990] {
        s.detach(l);
    }
    s.check_invariants();
    assert_eq!(s.local_count(a), 10);
    assert!(cap(&s) <= 40, "10 waiters kept {} slots", cap(&s));
    for &l in &ls[990..] {
        s.detach(l);
        s.check_invariants();
    }
    assert_eq!((s.local_count(a), cap(&s)), (0, 0));
}
