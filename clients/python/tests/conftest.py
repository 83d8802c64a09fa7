"""Fixtures: the real realplexor binary on loopback ports, and raw WAIT clients.

The binary is target/debug/realplexor (or $REALPLEXOR_BIN). Each test gets a
fresh server, so online lists and event positions start empty.
"""

import os
import re
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
if not os.environ.get("REALPLEXOR_TEST_INSTALLED"):
    # Without an installed copy, test the source tree.
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

BIN = os.environ.get("REALPLEXOR_BIN", os.path.join(ROOT, "target", "debug", "realplexor"))


class Server:
    def __init__(self, tmp_path, extra="", wait_port=0, in_port=0):
        if not os.path.exists(BIN):
            raise RuntimeError("%s is missing: run cargo build" % BIN)
        conf = tmp_path / "test.conf"
        conf.write_text(
            "$CONFIG{WAIT_ADDR} = [ '127.0.0.1:%d' ];\n"
            "$CONFIG{IN_ADDR} = [ '127.0.0.1:%d' ];\n" % (wait_port, in_port) +
            "$CONFIG{SU_USER} = '';\n"
            "$CONFIG{VERBOSITY} = 1;\n" + extra + "return 1;\n"
        )
        self.log_path = tmp_path / "server.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIN, str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            text = self.log_path.read_text(errors="replace")
            w = re.search(r"WAIT: listening [\d.]+:(\d+)", text)
            i = re.search(r"IN: listening [\d.]+:(\d+)", text)
            if w and i:
                self.wait_port, self.in_port = int(w.group(1)), int(i.group(1))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("realplexor did not start:\n" + text)
            time.sleep(0.02)

    def listen(self, ids):
        """A WAIT connection listening to ``ids`` (registered when this returns)."""
        return Waiter(self.wait_port, ids)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class Waiter:
    HEAD_END = b"\r\n\r\n \r\n"

    def __init__(self, port, ids):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"GET /?identifier=" + ids.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.buf = b""
        while self.HEAD_END not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("WAIT closed before registering: %r" % self.buf)
            self.buf += chunk

    def body(self):
        """Reads the reply to EOF; returns the body after the header block."""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        self.sock.close()
        return self.buf.split(self.HEAD_END, 1)[1].decode()

    def close(self):
        self.sock.close()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def login_server(tmp_path):
    """Publishers must log in: user "user", password "password"."""
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "rpltests", "password"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    users = tmp_path / "users.htpasswd"
    users.write_text("user:%s\n" % hashed)
    s = Server(tmp_path, "$CONFIG{USERS_FILE} = '%s';\n" % users)
    yield s
    s.stop()


def wait_until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in %s s" % timeout)
        time.sleep(0.02)
