"""Raw-socket helpers for scripts/test.d/20-deploy.sh (python3 standard library only).

  longpoll NGINX_PORT IN_PORT ID   long-poll through nginx, push to the IN line while the
                                   poll is parked, check that nginx streamed the header
                                   block before the push and relayed the data and the end
  timeout NGINX_PORT ID SECONDS    long-poll that no push answers: the WAIT_TIMEOUT reply
                                   (header block only) must arrive, properly ended
  sse NGINX_PORT IN_PORT ID        an SSE client (Accept: text/event-stream) through nginx:
                                   the head and `retry:` come before any push, a ping
                                   comment and the pushed message arrive as events
  websocket NGINX_PORT IN_PORT ID  a WebSocket client through nginx: the 101 handshake,
                                   a pushed message as a text frame, a subscribe command
                                   sent back through nginx, then the close handshake
  pylisten NGINX_PORT IN_PORT ID   the Python client's listen() (clients/python) through
                                   nginx: a message pushed once it is online arrives
  capture PORT OUTFILE             a fake WAIT line: records the request nginx sends
                                   upstream, answers like the server and closes
  wait_port PORT SECONDS           until 127.0.0.1:PORT accepts a connection
  free_port                        prints a free loopback port

Every socket operation has a timeout; any failed check exits 1 with a message.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
HEADER_BLOCK_END = b"\r\n\r\n"


def fail(msg):
    print("deploy_client: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def connect(port, timeout=5.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_until(sock, buf, pred, deadline):
    """Reads into buf until pred(buf) or EOF or the deadline; returns (buf, eof)."""
    while not pred(buf):
        left = deadline - time.monotonic()
        if left <= 0:
            return buf, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return buf, False
        if not chunk:
            return buf, True
        buf += chunk
    return buf, False


def split_head(raw):
    head, _, body = raw.partition(HEADER_BLOCK_END)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, body


def dechunk(body):
    """Decodes a complete chunked body; fails unless it ends with the 0-size chunk."""
    out = b""
    while True:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            fail("chunked body cut short (no terminating 0 chunk): %r" % body)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += rest[:size]
        body = rest[size + 2:]


def complete(buf):
    """True once a chunked reply has its terminating chunk (nginx keeps the client
    connection alive on HTTP/1.1, so there is no EOF); other replies end at EOF."""
    if HEADER_BLOCK_END not in buf:
        return False
    _, headers, body = split_head(buf)
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return False
    while True:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            return False
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return rest.startswith(b"\r\n")
        if len(rest) < size + 2:
            return False
        body = rest[size + 2:]


def body_of(headers, body):
    if "content-length" in headers:
        fail("WAIT reply through nginx has a Content-Length: %r" % headers)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return dechunk(body)
    return body


def streamed_prefix(headers, body):
    """The decoded bytes received so far (chunk framing stripped, partial allowed)."""
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return body
    out = b""
    while body:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def get_request(ident):
    return (
        "GET /?identifier=%s&ncrnd=1 HTTP/1.1\r\n"
        "Host: rpl.example.com\r\n"
        "User-Agent: realplexor-deploy-test\r\n"
        "\r\n" % ident
    ).encode()


def push(in_port, ident, data):
    s = connect(in_port)
    s.sendall(b"X-Realplexor: identifier=" + ident.encode() + b"\r\n\r\n" + data)
    s.shutdown(socket.SHUT_WR)  # the IN line answers only after the half-close
    reply, eof = read_until(s, b"", lambda b: False, time.monotonic() + 10)
    s.close()
    if not eof:
        fail("IN line did not close after the push")
    return reply


def cmd_longpoll(nginx_port, in_port, ident):
    s = connect(nginx_port)
    s.sendall(get_request(ident))
    # Before any push: the status line, headers and the " \r\n" line must come through.
    # A buffering proxy would hold all of it until the upstream closes.
    deadline = time.monotonic() + 5

    def have_prefix(buf):
        if HEADER_BLOCK_END not in buf:
            return False
        _, headers, body = split_head(buf)
        return streamed_prefix(headers, body).startswith(b" \r\n")

    raw, eof = read_until(s, b"", have_prefix, deadline)
    if not have_prefix(raw):
        fail("header block not streamed through nginx before the push (eof=%s): %r" % (eof, raw))
    status, headers, _ = split_head(raw)
    if not status.endswith(" 200 OK"):
        fail("status through nginx: %r" % status)
    if not headers.get("content-type", "").startswith("text/javascript"):
        fail("content-type through nginx: %r" % headers)
    print("longpoll: header block streamed before the push: %s, %s" % (
        status, "chunked" if "transfer-encoding" in headers else "until close"))

    reply = push(in_port, ident, b'"hello"')
    raw, eof = read_until(s, raw, complete, time.monotonic() + 10)
    s.close()
    _, headers, body = split_head(raw)
    data = body_of(headers, body)
    if not data.startswith(b" \r\n[\n  {\n    \"ids\": { \"" + ident.encode() + b"\": \""):
        fail("long-poll body through nginx: %r" % data)
    if b'"data": "hello"' not in data or not data.endswith(b"\n]"):
        fail("long-poll body through nginx lacks the data block: %r" % data)
    print("longpoll: data relayed and ended: %r (IN reply %d bytes)" % (data[:60], len(reply)))


def cmd_timeout(nginx_port, ident, seconds):
    s = connect(nginx_port)
    s.sendall(get_request(ident))
    started = time.monotonic()
    raw, eof = read_until(s, b"", complete, started + float(seconds) + 10)
    s.close()
    if HEADER_BLOCK_END not in raw:
        fail("no reply through nginx on WAIT_TIMEOUT: %r" % raw)
    status, headers, body = split_head(raw)
    if not status.endswith(" 200 OK"):
        fail("WAIT_TIMEOUT reply through nginx: %r" % status)
    data = body_of(headers, body)  # chunked: fails unless properly terminated
    if data != b" \r\n":
        fail("WAIT_TIMEOUT body through nginx: %r" % data)
    took = time.monotonic() - started
    if took > float(seconds) + 3:
        fail("WAIT_TIMEOUT reply through nginx took %.1f s" % took)
    print("timeout: empty reply after %.1f s, properly ended" % took)


def cmd_sse(nginx_port, in_port, ident):
    s = connect(nginx_port)
    s.sendall((
        "GET /?identifier=%s HTTP/1.1\r\n"
        "Host: rpl.example.com\r\n"
        "Accept: text/event-stream\r\n"
        "\r\n" % ident).encode())

    def events(buf):
        if HEADER_BLOCK_END not in buf:
            return b""
        _, headers, body = split_head(buf)
        return streamed_prefix(headers, body)

    # Before any push: the head and the retry line (a buffering proxy holds them back).
    raw, eof = read_until(s, b"", lambda b: b"retry: 2000\n\n" in events(b), time.monotonic() + 5)
    if b"retry: 2000\n\n" not in events(raw):
        fail("SSE head and retry line not streamed through nginx (eof=%s): %r" % (eof, raw))
    status, headers, _ = split_head(raw)
    if not status.endswith(" 200 OK"):
        fail("SSE status through nginx: %r" % status)
    if headers.get("content-type") != "text/event-stream; charset=utf-8":
        fail("SSE content-type through nginx: %r" % headers)
    # A keep-alive comment (STREAM_PING is 1 s in the test config) comes through alone.
    raw, _ = read_until(s, raw, lambda b: b": ping\n" in events(b), time.monotonic() + 5)
    if b": ping\n" not in events(raw):
        fail("no ': ping' comment through nginx: %r" % events(raw))
    push(in_port, ident, b'{"via": "sse"}')

    def has_event(buf):
        return b"data: " in events(buf) and events(buf).endswith(b"\n\n")

    raw, eof = read_until(s, raw, has_event, time.monotonic() + 10)
    s.close()
    text = events(raw).decode()
    block = [b for b in text.split("\n\n") if "data: " in b]
    if not block:
        fail("no SSE event through nginx (eof=%s): %r" % (eof, text))
    lines = block[0].split("\n")
    ids = [l[4:] for l in lines if l.startswith("id: ")]
    data = json.loads("\n".join(l[6:] for l in lines if l.startswith("data: ")))
    if data.get("data") != {"via": "sse"} or list(data.get("ids", {})) != [ident]:
        fail("SSE event through nginx: %r" % block[0])
    if ids != [data["ids"][ident]]:
        fail("SSE event id through nginx: %r" % block[0])
    print("sse: head, retry, ping and the event streamed through nginx: id %s" % ids[0])


def ws_frame(opcode, payload):
    """A masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read(sock, buf, deadline):
    """(opcode, payload, rest of buf) of the next server frame."""
    def whole(b):
        if len(b) < 2:
            return False
        n, at = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return False
            n, at = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return False
            n, at = struct.unpack("!Q", b[2:10])[0], 10
        return len(b) >= at + n

    buf, eof = read_until(sock, buf, whole, deadline)
    if not whole(buf):
        fail("no whole WebSocket frame through nginx (eof=%s): %r" % (eof, buf))
    if buf[1] & 0x80:
        fail("a masked server frame: %r" % buf[:16])
    n, at = buf[1] & 0x7F, 2
    if n == 126:
        n, at = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        n, at = struct.unpack("!Q", buf[2:10])[0], 10
    return buf[0] & 0x0F, buf[at:at + n], buf[at + n:]


def ws_message(sock, buf, deadline):
    """The next text message as JSON (pings skipped), and the rest of buf."""
    while True:
        op, payload, buf = ws_read(sock, buf, deadline)
        if op == 0x9:
            continue
        if op != 0x1:
            fail("WebSocket frame through nginx: opcode %d %r" % (op, payload))
        return json.loads(payload.decode()), buf


def cmd_websocket(nginx_port, in_port, ident):
    key = base64.b64encode(os.urandom(16)).decode()
    s = connect(nginx_port)
    s.sendall((
        "GET /?identifier=%s HTTP/1.1\r\n"
        "Host: rpl.example.com\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n" % (ident, key)).encode())
    raw, eof = read_until(s, b"", lambda b: HEADER_BLOCK_END in b, time.monotonic() + 5)
    if HEADER_BLOCK_END not in raw:
        fail("no WebSocket handshake through nginx (eof=%s): %r" % (eof, raw))
    status, headers, buf = split_head(raw)
    if " 101 " not in status:
        fail("WebSocket handshake through nginx: %r %r" % (status, headers))
    want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    if headers.get("sec-websocket-accept") != want or headers.get("upgrade", "").lower() != "websocket":
        fail("WebSocket handshake headers through nginx: %r" % headers)
    # The server answers the handshake once the listener is registered.
    push(in_port, ident, b'{"via": "websocket"}')
    deadline = time.monotonic() + 10
    msg, buf = ws_message(s, buf, deadline)
    if msg.get("data") != {"via": "websocket"} or list(msg.get("ids", {})) != [ident]:
        fail("WebSocket message through nginx: %r" % msg)
    # A command the other way: subscribe to a second id on the same connection.
    other = ident + "_more"
    s.sendall(ws_frame(0x1, json.dumps({"subscribe": {other: None}}).encode()))
    time.sleep(0.3)
    push(in_port, other, b'"second id"')
    msg, buf = ws_message(s, buf, deadline)
    if msg.get("data") != "second id" or list(msg.get("ids", {})) != [other]:
        fail("WebSocket message after subscribe through nginx: %r" % msg)
    s.sendall(ws_frame(0x8, struct.pack("!H", 1000)))
    op, payload, buf = ws_read(s, buf, deadline)
    while op == 0x9:
        op, payload, buf = ws_read(s, buf, deadline)
    if op != 0x8 or payload[:2] != struct.pack("!H", 1000):
        fail("WebSocket close through nginx: opcode %d %r" % (op, payload))
    s.close()
    print("websocket: 101 through nginx, a message, a subscribe command and the close handshake")


def cmd_pylisten(nginx_port, in_port, ident):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
    from realplexor import Realplexor, listen

    rpl = Realplexor(HOST, in_port)

    def later():
        deadline = time.monotonic() + 10
        while ident not in rpl.cmd_online() and time.monotonic() < deadline:
            time.sleep(0.05)
        rpl.send(ident, {"via": "listen"})

    threading.Thread(target=later, daemon=True).start()
    gen = listen("http://%s:%d/" % (HOST, nginx_port), [ident], timeout=10, max_retries=0)
    event = next(gen)
    gen.close()
    if event.gap or event.data != {"via": "listen"} or list(event.ids) != [ident]:
        fail("listen() through nginx: %r" % event)
    print("pylisten: realplexor.listen() got the message through nginx: %r" % event)


def cmd_capture(port, outfile):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, int(port)))
    ls.listen(8)
    ls.settimeout(30)
    while True:  # probes (wait_port) connect and close without a request
        conn, _ = ls.accept()
        raw, _ = read_until(conn, b"", lambda b: HEADER_BLOCK_END in b, time.monotonic() + 10)
        if HEADER_BLOCK_END in raw:
            break
        conn.close()
    with open(outfile, "wb") as f:
        f.write(raw)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
        b"Content-Type: text/javascript; charset=utf-8\r\n\r\n \r\n"
    )
    time.sleep(0.3)
    conn.sendall(b'[\n  {\n    "ids": { "abc": "1" },\n    "data": "x"\n  }\n]')
    conn.close()
    ls.close()


def cmd_wait_port(port, seconds):
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            connect(int(port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    fail("nothing accepts on %s:%s after %s s" % (HOST, port, seconds))


def cmd_free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    print(s.getsockname()[1])
    s.close()


def main():
    args = sys.argv[1:]
    cmds = {
        "longpoll": (cmd_longpoll, 3),
        "sse": (cmd_sse, 3),
        "websocket": (cmd_websocket, 3),
        "pylisten": (cmd_pylisten, 3),
        "timeout": (cmd_timeout, 3),
        "capture": (cmd_capture, 2),
        "wait_port": (cmd_wait_port, 2),
        "free_port": (cmd_free_port, 0),
    }
    if not args or args[0] not in cmds or len(args) - 1 != cmds[args[0]][1]:
        fail("usage: see the module doc")
    fn, _ = cmds[args[0]]
    if args[0] in ("longpoll", "sse", "websocket", "pylisten"):
        fn(int(args[1]), int(args[2]), args[3])
    elif args[0] == "timeout":
        fn(int(args[1]), args[2], args[3])
    else:
        fn(*args[1:])


if __name__ == "__main__":
    main()
