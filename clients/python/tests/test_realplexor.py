"""The Python client against the real server (the scenarios of the PHP API's
tests, api/php/t in the original, plus errors, timeouts and broken replies)."""

import re
import socket
import threading

import pytest

from conftest import wait_until
from realplexor import (
    Dklab_Realplexor,
    Realplexor,
    RealplexorConnectionError,
    RealplexorError,
    RealplexorProtocolError,
    RealplexorRequestError,
    RealplexorTooLargeError,
)

BLOCK = re.compile(r'"ids": \{ (.*?) \},\n    "data":[ \n](.*?)\n  \}', re.S)


def blocks(body):
    """[(ids dict, data text)] of a WAIT reply body."""
    out = []
    for ids, data in BLOCK.findall(body):
        pairs = dict(re.findall(r'"(\w+)": "([\d.]+)"', ids))
        out.append((pairs, data))
    return out


def test_send_json_to_listener(server):
    w = server.listen("abc")
    Realplexor("127.0.0.1", server.in_port).send(["abc", "def"], "Test!")
    [(ids, data)] = blocks(w.body())
    assert list(ids) == ["abc"]
    assert data == '"Test!"'


def test_send_structured_data_and_single_id(server):
    w = server.listen("one")
    Realplexor("127.0.0.1", server.in_port).send("one", {"a": [1, 2], "t": "é/x"})
    [(ids, data)] = blocks(w.body())
    assert data == '{"a":[1,2],"t":"\\u00e9/x"}'


def test_send_namespace(server):
    w = server.listen("ns_abc")
    Realplexor("127.0.0.1", server.in_port, "ns_").send(["abc", "def"], "Test!")
    [(ids, _)] = blocks(w.body())
    assert list(ids) == ["ns_abc"]


def test_send_limited_visibility(server):
    rpl = Realplexor("127.0.0.1", server.in_port, "ns_")
    rpl.send({"abc": 10, "def": 10}, "public data")
    rpl.send({"abc": 11, "def": 11}, "private data", ["myid1", "myid2"])
    assert blocks(server.listen("5:ns_abc").body()) == [({"ns_abc": "10"}, '"public data"')]
    assert blocks(server.listen("5:ns_abc,666:ns_myid1").body()) == [
        ({"ns_abc": "10"}, '"public data"'),
        ({"ns_abc": "11"}, '"private data"'),
    ]


def test_send_cursors(server):
    w = server.listen("5:abc")
    Realplexor("127.0.0.1", server.in_port).send({"abc": 10, "def": 20, "ghi": None}, "Test!")
    assert blocks(w.body()) == [({"abc": "10"}, '"Test!"')]


def test_one_message_to_two_ids_is_one_block(server):
    w = server.listen("a1,b1")
    Realplexor("127.0.0.1", server.in_port).send(["a1", "b1"], 1)
    [(ids, data)] = blocks(w.body())
    assert sorted(ids) == ["a1", "b1"] and data == "1"


def test_errors(server, tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(RealplexorConnectionError) as e:
        Realplexor("127.0.0.1", port).send("abc", "x")
    assert str(e.value) == "Error #111: Connection refused"
    rpl = Realplexor("127.0.0.1", server.in_port)
    with pytest.raises(RealplexorError) as e:
        rpl.send(["no-num"], "x")
    assert str(e.value) == 'Identifier must be alphanumeric, "no-num" given'
    with pytest.raises(RealplexorError) as e:
        rpl.send({"abc": "aaa"}, "x")
    assert str(e.value) == 'Cursor must be numeric, "aaa" given'
    with pytest.raises(RealplexorError) as e:
        rpl.cmd_watch("x1")
    assert str(e.value) == 'Position value must be numeric, "x1" given'
    assert Dklab_Realplexor is Realplexor


def test_online(server):
    w = server.listen("5:abc,10:def")
    rpl = Realplexor("127.0.0.1", server.in_port)
    assert sorted(rpl.cmd_online()) == ["abc", "def"]
    assert sorted(rpl.cmdOnline()) == ["abc", "def"]
    w.close()


def test_online_with_counters(server):
    w1 = server.listen("5:abc,10:def,6:abc")
    w2 = server.listen("def")
    assert Realplexor("127.0.0.1", server.in_port).cmd_online_with_counters() == {"abc": 1, "def": 2}
    w1.close()
    w2.close()


def test_online_empty(server):
    assert Realplexor("127.0.0.1", server.in_port).cmd_online() == []


def test_online_prefix(server):
    w = server.listen("5:A_abc,10:def,20:B_ghi")
    assert sorted(Realplexor("127.0.0.1", server.in_port).cmd_online(["A_", "B_"])) == ["A_abc", "B_ghi"]
    assert Realplexor("127.0.0.1", server.in_port).cmd_online("xxx_") == []
    w.close()


def test_online_prefix_namespace(server):
    w = server.listen("5:ns_A_abc,10:def,20:ns_B_ghi")
    rpl = Realplexor("127.0.0.1", server.in_port, "ns_")
    assert sorted(rpl.cmd_online(["A_", "B_"])) == ["A_abc", "B_ghi"]
    assert sorted(rpl.cmd_online()) == ["A_abc", "B_ghi"]
    w.close()


def test_watch(server):
    server.listen("abc").close()
    server.listen("def").close()
    rpl = Realplexor("127.0.0.1", server.in_port)
    events = rpl.cmd_watch(1)
    assert [(e["event"], e["id"]) for e in events] == [("online", "abc"), ("online", "def")]
    assert all(re.match(r"^[\d.]+$", e["pos"]) for e in events)
    # From the last position on: nothing new.
    assert rpl.cmd_watch(events[-1]["pos"]) == []


def test_watch_empty(server):
    assert Realplexor("127.0.0.1", server.in_port).cmd_watch(0) == [{"event": "FAKE", "pos": "10", "id": "FAKE"}]


def test_watch_namespace_and_prefix(server):
    for ids in ("ns_demo_abc", "def", "ns_ghi"):
        server.listen(ids).close()
    rpl = Realplexor("127.0.0.1", server.in_port, "ns_")
    assert [(e["event"], e["id"]) for e in rpl.cmd_watch(1)] == [("online", "demo_abc"), ("online", "ghi")]
    assert [e["id"] for e in rpl.cmd_watch(1, ["demo_"])] == ["demo_abc"]


def test_login(login_server):
    w = login_server.listen("user_abc")
    rpl = Realplexor("127.0.0.1", login_server.in_port)
    rpl.logon("user", "password")
    rpl.send(["abc", "def"], "Test!")
    assert blocks(w.body()) == [({"user_abc": blocks_cursor(w)}, '"Test!"')]


def blocks_cursor(w):
    return re.search(r'"user_abc": "([\d.]+)"', w.buf.decode()).group(1)


def test_login_invalid(login_server):
    rpl = Realplexor("127.0.0.1", login_server.in_port)
    rpl.logon("unknown", "password")
    with pytest.raises(RealplexorRequestError) as e:
        rpl.send(["abc"], "Test!")
    assert str(e.value) == "Request failed: 403 Access Deined\nunknown login: unknown\n"
    assert e.value.status == 403


def test_login_namespace_and_online(login_server):
    w = login_server.listen("5:user_ns_abc,10:user_ns_def")
    rpl = Realplexor("127.0.0.1", login_server.in_port, "ns_")
    rpl.logon("user", "password")
    assert sorted(rpl.cmd_online()) == ["abc", "def"]
    rpl.send("abc", "hi")
    [(ids, data)] = blocks(w.body())
    assert list(ids) == ["user_ns_abc"] and data == '"hi"'


def fake_in_line(reply, hold=False, answer_after=None):
    """A one-shot IN line that answers `reply` after the request's half-close
    (or never, with hold=True; or, with answer_after=N, as soon as N bytes have
    arrived, closing with the rest unread as the server does past IN_MAXLEN).
    Returns (port, thread)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        conn.settimeout(5)
        try:
            got = 0
            while answer_after is None or got < answer_after:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                got += len(chunk)
            if not hold:
                conn.sendall(reply)
            else:
                threading.Event().wait(2)
        finally:
            conn.close()
            listener.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return listener.getsockname()[1], t


@pytest.mark.parametrize(
    "reply,error,message",
    [
        (b"garbage\r\n\r\n", RealplexorProtocolError, "Non-HTTP response received:\ngarbage\r\n\r\n"),
        (b"HTTP/1.1 200 OK\r\n\r\nabc", RealplexorProtocolError, "No Content-Length header in response headers:\nHTTP/1.1 200 OK"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            RealplexorProtocolError,
            "Response length (3) is different than specified in Content-Length header (10): possibly broken response\n",
        ),
        (b"HTTP/1.0 500 Oops\r\nContent-Length: 4\r\n\r\nbad\n", RealplexorRequestError, "Request failed: 500 Oops\nbad\n"),
    ],
)
def test_broken_replies(reply, error, message):
    port, t = fake_in_line(reply)
    with pytest.raises(error) as e:
        Realplexor("127.0.0.1", port).cmd_online()
    assert str(e.value) == message
    t.join(5)


def test_timeout():
    port, t = fake_in_line(b"", hold=True)
    with pytest.raises(RealplexorConnectionError) as e:
        Realplexor("127.0.0.1", port, timeout=0.3).cmd_online()
    assert str(e.value).startswith("Timed out after 0.3 s")
    t.join(5)


def test_empty_reply_is_success():
    port, t = fake_in_line(b"")
    Realplexor("127.0.0.1", port).send("abc", "x")
    t.join(5)


TOO_LARGE = b"HTTP/1.0 413 Request Entity Too Large\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\nmore than IN_MAXLEN=100\n"


def test_413_reply_raises_a_clear_too_large_error():
    port, t = fake_in_line(TOO_LARGE)
    with pytest.raises(RealplexorTooLargeError) as e:
        Realplexor("127.0.0.1", port).send("abc", "x" * 200)
    t.join(5)
    assert isinstance(e.value, RealplexorRequestError) and e.value.status == 413
    message = str(e.value)
    assert message.startswith("Request failed: 413 Request Entity Too Large: message too large for the server's IN_MAXLEN (")
    assert message.endswith(" bytes sent)\nmore than IN_MAXLEN=100\n")


def test_413_sent_before_the_request_is_read_is_not_a_broken_pipe():
    # The server answers as soon as IN_MAXLEN is passed and closes with the rest unread:
    # the client's write then fails, yet the 413 is what it must report.
    port, t = fake_in_line(TOO_LARGE, answer_after=1000)
    with pytest.raises(RealplexorTooLargeError) as e:
        Realplexor("127.0.0.1", port).send("abc", "x" * (8 << 20))
    t.join(5)
    assert e.value.status == 413
    assert "IN_MAXLEN" in str(e.value)
