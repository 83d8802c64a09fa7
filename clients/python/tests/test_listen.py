"""realplexor.listen(): SSE on the WAIT line, against the real server (messages, cursors,
namespace, replay, gaps, a restart while the listener is away) and against a fake server
that shows the exact reconnect request (Last-Event-ID and the per-id cursors)."""

import re
import socket
import threading
import time

import pytest

from conftest import Server, wait_until
from realplexor import (
    ListenEvent,
    Realplexor,
    RealplexorConnectionError,
    RealplexorError,
    RealplexorRequestError,
    listen,
)

CURSOR = re.compile(r"^\d+\.\d+$")


def push_when_online(server, steps, namespace=None):
    """In a thread: once the first id of steps is online, push each (ids, data)."""
    rpl = Realplexor("127.0.0.1", server.in_port, namespace)
    first = steps[0][0] if isinstance(steps[0][0], str) else steps[0][0][0]

    def run():
        wait_until(lambda: first in rpl.cmd_online(), 10)
        for ids, data in steps:
            rpl.send(ids, data)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def url(server):
    return "http://127.0.0.1:%d/" % server.wait_port


def test_listen_yields_messages_with_their_cursors(server):
    push_when_online(server, [("la", {"n": 1}), (["la", "lb"], "both"), ("lb", [3])])
    gen = listen(url(server), ["la", "lb"])
    e1, e2, e3 = next(gen), next(gen), next(gen)
    gen.close()
    assert list(e1.ids) == ["la"] and CURSOR.match(e1.ids["la"])
    assert e1.data == {"n": 1} and not e1.gap
    assert e1.event_id == e1.ids["la"]
    # One push to two ids: one event with both.
    assert sorted(e2.ids) == ["la", "lb"] and e2.data == "both"
    assert e2.ids["la"] == e2.ids["lb"] > e1.ids["la"]
    assert e3.ids == {"lb": e3.event_id} and e3.data == [3]
    # Leaving the loop closed the connection: the ids go offline.
    wait_until(lambda: Realplexor("127.0.0.1", server.in_port).cmd_online_with_counters().get("la", 0) == 0)


def test_listen_with_namespace_from_a_cursor(server):
    rpl = Realplexor("127.0.0.1", server.in_port, namespace="ns_")
    rpl.send({"x": 10}, "ten")
    rpl.send({"x": 20}, "twenty")
    gen = rpl.listen(["x"], wait_port=server.wait_port, cursors={"x": 0})
    events = [next(gen), next(gen)]
    gen.close()
    assert events == [ListenEvent({"x": "10"}, "ten", False, "10"), ListenEvent({"x": "20"}, "twenty", False, "20")]


def test_listen_reports_gaps(tmp_path):
    s = Server(tmp_path, "$CONFIG{MAX_DATA_FOR_ID} = 2;\n")
    try:
        push_when_online(s, [("g", "m1")])
        gen = listen(url(s), "g")
        first = next(gen)
        gen.close()
        rpl = Realplexor("127.0.0.1", s.in_port)
        for n in (2, 3, 4, 5):
            rpl.send("g", "m%d" % n)
        # m2 and m3 were trimmed: a listener at m1 is told, then gets m4 and m5.
        gen = listen(url(s), "g", cursors=first.ids)
        gap, m4, m5 = next(gen), next(gen), next(gen)
        gen.close()
        assert gap.gap and gap.data is None and gap.event_id is None
        assert list(gap.ids) == ["g"] and first.ids["g"] < gap.ids["g"] < m4.ids["g"]
        assert (m4.data, m5.data) == ("m4", "m5")
    finally:
        s.stop()


def test_listen_resumes_after_a_server_restart_without_loss_or_repeat(tmp_path):
    snapshot = tmp_path / "snapshot"
    extra = "$CONFIG{SNAPSHOT_FILE} = '%s';\n" % snapshot
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    s = Server(tmp_path / "one", extra)
    try:
        push_when_online(s, [("rr", "r1")])
        gen = listen(url(s), ["rr", "ss"], retry=0.2)
        assert next(gen).data == "r1"
        wait_port, in_port = s.wait_port, s.in_port
        # The generator is suspended: everything below happens while it is away.
        s.stop()
        s = Server(tmp_path / "two", extra, wait_port=wait_port, in_port=in_port)
        rpl = Realplexor("127.0.0.1", in_port)
        rpl.send("rr", "r2")
        rpl.send("ss", "s1")
        rpl.send(["rr", "ss"], "both")
        got = [(sorted(e.ids), e.data) for e in (next(gen), next(gen), next(gen))]
        # r1 is still queued (snapshot) but not repeated; ss, which had no event before
        # the restart, resumes from Last-Event-ID (r1's cursor) and gets what was pushed
        # while the listener was away.
        assert got == [(["rr"], "r2"), (["ss"], "s1"), (["rr", "ss"], "both")]
        push_when_online(s, [("ss", "s2")])
        assert next(gen).data == "s2"
        gen.close()
    finally:
        s.stop()


class FakeWait:
    """A WAIT line that answers each connection with the next script (bytes, then close
    unless it ends with None), recording every request head."""

    def __init__(self, scripts):
        self.scripts = list(scripts)
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while self.scripts:
            conn, _ = self.sock.accept()
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                head += chunk
            self.requests.append(head.decode("latin-1"))
            script = self.scripts.pop(0)
            for part in script:
                if part is None:
                    self.held.append(conn)
                    break
                conn.sendall(part)
            else:
                conn.close()

    def close(self):
        for c in self.held:
            c.close()
        self.sock.close()


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\nretry: 50\n\n"


def test_reconnect_sends_last_event_id_and_every_cursor():
    fake = FakeWait([
        # Opens, then closes before any event.
        [SSE_HEAD],
        [SSE_HEAD, b': ping\n\nid: 7.5\ndata: {"ids": {"ns_a": "7.5"},\ndata:  "data": 1}\n\n'],
        [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
         chunk(b"retry: 50\n"),
         chunk(b'event: gap\ndata: {"ids": {"ns_b": "8"}, "gap": true}\n\nid: 9\ndata: {"ids": {"ns_b": '),
         chunk(b'"9"}, "data": [2]}\n\n'), None],
    ])
    try:
        gen = listen("http://127.0.0.1:%d/path?x=1" % fake.port, ["a", "b"], namespace="ns_")
        one, gap, two = next(gen), next(gen), next(gen)
        gen.close()
    finally:
        fake.close()
    # A data: field per line, joined with newlines.
    assert one == ListenEvent({"a": "7.5"}, 1, False, "7.5")
    assert gap == ListenEvent({"b": "8"}, None, True, None)
    assert two == ListenEvent({"b": "9"}, [2], False, "9")
    first, second, third = fake.requests
    assert first.startswith("GET /path?x=1&identifier=ns_a,ns_b HTTP/1.1\r\n"), first
    assert re.search(r"(?im)^Accept: text/event-stream\r$", first)
    assert "Last-Event-ID" not in first
    # No event yet: each id resumes from when it was registered (a second before, by
    # our clock).
    m = re.match(r"GET /path\?x=1&identifier=(\d+\.\d{3}):ns_a,(\d+\.\d{3}):ns_b HTTP/1\.1\r\n", second)
    assert m and m.group(1) == m.group(2), second
    assert abs(float(m.group(1)) - (time.time() - 1)) < 5
    assert "Last-Event-ID" not in second
    # After an event: its id as Last-Event-ID (for b) and a's own cursor.
    assert third.startswith("GET /path?x=1&identifier=7.5:ns_a,ns_b HTTP/1.1\r\n"), third
    assert re.search(r"(?im)^Last-Event-ID: 7\.5\r$", third)


def test_listen_errors():
    with pytest.raises(RealplexorError, match='Identifier must be alphanumeric, "a-b" given'):
        next(listen("http://127.0.0.1:1/", ["a-b"]))
    with pytest.raises(RealplexorError, match="http:// or https://"):
        next(listen("ftp://127.0.0.1/", ["a"]))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(RealplexorConnectionError, match="after 3 attempts"):
        next(listen("http://127.0.0.1:%d/" % port, ["a"], retry=0.01, max_retries=2))
    fake = FakeWait([[b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"]])
    try:
        with pytest.raises(RealplexorRequestError) as e:
            next(listen("http://127.0.0.1:%d/" % fake.port, ["a"]))
        assert e.value.status == 403
    finally:
        fake.close()
