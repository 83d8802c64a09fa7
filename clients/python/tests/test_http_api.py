"""The Python client with api="http": the server's HTTP API over one keep-alive
connection. The scenarios of test_realplexor.py run again in this mode (same methods,
same results, same exception classes), then what only this mode does."""

import re
import time

import pytest
from conftest import Server

import realplexor
import test_realplexor as base
from realplexor import (
    Realplexor,
    RealplexorConnectionError,
    RealplexorRequestError,
    RealplexorTooLargeError,
)


@pytest.fixture
def http_default(monkeypatch):
    """Every Realplexor(...) the shared scenarios build speaks the HTTP API."""
    defaults = Realplexor.__init__.__defaults__
    assert defaults[-1] == "legacy"
    monkeypatch.setattr(Realplexor.__init__, "__defaults__", defaults[:-1] + ("http",))


SHARED = [
    base.test_send_json_to_listener,
    base.test_send_structured_data_and_single_id,
    base.test_send_namespace,
    base.test_send_limited_visibility,
    base.test_send_cursors,
    base.test_one_message_to_two_ids_is_one_block,
    base.test_errors,
    base.test_online,
    base.test_online_with_counters,
    base.test_online_empty,
    base.test_online_prefix,
    base.test_online_prefix_namespace,
    base.test_watch,
    base.test_watch_empty,
    base.test_watch_namespace_and_prefix,
]
SHARED_LOGIN = [base.test_login, base.test_login_namespace_and_online]


@pytest.mark.parametrize("scenario", SHARED, ids=lambda f: f.__name__)
def test_shared_scenario_over_http(scenario, server, tmp_path, http_default):
    if scenario is base.test_errors:
        scenario(server, tmp_path)
    else:
        scenario(server)


@pytest.mark.parametrize("scenario", SHARED_LOGIN, ids=lambda f: f.__name__)
def test_shared_login_scenario_over_http(scenario, login_server, http_default):
    scenario(login_server)


def test_one_connection_for_many_sends(server):
    w = server.listen("abc")
    rpl = Realplexor("127.0.0.1", server.in_port, api="http")
    replies = [rpl.send("zz%d" % i, i) for i in range(20)]
    sock = rpl._sock
    reply = rpl.send(["abc", "def"], "last")
    assert rpl._sock is sock, "the keep-alive connection was reused"
    assert set(reply["ids"]) == {"abc", "def"} and reply["skipped"] == []
    cursors = [float(r["cursor"]) for r in replies]
    assert cursors == sorted(cursors)
    assert reply["ids"]["abc"] in w.body()
    log = server.log_path.read_text()
    assert len(re.findall(r"IN: [\d.:]+: DEBUG: connection opened", log)) == 1
    rpl.close()
    assert rpl._sock is None


def test_reconnects_after_the_server_closed_an_idle_connection(tmp_path):
    s = Server(tmp_path, "$CONFIG{IN_TIMEOUT} = 1;\n")
    try:
        rpl = Realplexor("127.0.0.1", s.in_port, api="http")
        rpl.send("a", 1)
        first = rpl._sock
        time.sleep(1.6)
        rpl.send("a", 2)
        assert rpl._sock is not first
        assert rpl.cmd_online() == []
    finally:
        s.stop()


def test_errors_keep_their_classes(login_server):
    rpl = Realplexor("127.0.0.1", login_server.in_port, api="http")
    with pytest.raises(RealplexorRequestError) as e:
        rpl.send("abc", "x")
    assert e.value.status == 401
    assert "access denied for guest user" in str(e.value)
    rpl.logon("user", "wrong")
    with pytest.raises(RealplexorRequestError) as e:
        rpl.send("abc", "x")
    assert e.value.status == 401
    assert str(e.value).startswith("Request failed: 401 Unauthorized\ninvalid password for login: user")
    rpl = Realplexor("127.0.0.1", login_server.in_port, api="http")
    rpl.logon("user", "password")
    reply = rpl.send("abc", "x")
    assert list(reply["ids"]) == ["user_abc"]


def test_too_large_and_connection_errors(tmp_path):
    s = Server(tmp_path, "$CONFIG{IN_MAXLEN} = 100;\n")
    try:
        rpl = Realplexor("127.0.0.1", s.in_port, api="http")
        with pytest.raises(RealplexorTooLargeError) as e:
            rpl.send("abc", "x" * 200)
        assert e.value.status == 413
        # The server closed that connection: the next call opens another.
        assert rpl.send("abc", "small")["ids"]["abc"]
    finally:
        s.stop()
    with pytest.raises(RealplexorConnectionError):
        Realplexor("127.0.0.1", s.in_port, api="http").send("abc", "x")
    with pytest.raises(realplexor.RealplexorError):
        Realplexor("127.0.0.1", s.in_port, api="bogus")
