"""Publisher client for the realplexor comet server (the Dklab Realplexor IN line).

The Python 3 counterpart of the ``Dklab_Realplexor`` PHP API, standard library only::

    from realplexor import Realplexor

    rpl = Realplexor("127.0.0.1", 10010, namespace="demo_")
    rpl.send(["alpha", "beta"], {"text": "hello"})
    rpl.cmd_online()              # ['alpha', 'beta'] while browsers listen

Every call opens one connection to the IN line, sends one request, half-closes
the socket (the server answers only then) and reads the reply to EOF. Errors are
raised as :class:`RealplexorError` subclasses with the PHP API's messages.

With ``api="http"`` the client speaks the server's HTTP API instead (``POST /pub``,
``GET /online``, ``GET /watch``): one keep-alive connection is reused for every call
(reopened when the server closed it while idle), credentials go as
``Authorization: Basic``, and ``send`` returns the server's JSON reply
(``{"cursor": ..., "ids": {...}, "skipped": [...]}``). Same methods, same exceptions.
"""

import base64
import json
import re
import socket
import warnings
from urllib.parse import quote

__all__ = [
    "Realplexor",
    "RealplexorError",
    "RealplexorConnectionError",
    "RealplexorRequestError",
    "RealplexorTooLargeError",
    "RealplexorProtocolError",
    "Dklab_Realplexor",
    "Dklab_Realplexor_Exception",
]

__version__ = "1.50.0"

_ID = re.compile(r"^\w+$", re.ASCII)
_CURSOR = re.compile(r"^\d+(\.\d+)?$", re.ASCII)
_POSITION = re.compile(r"^[\d.]+$", re.ASCII)
_EVENT = re.compile(r"^(\w+)\s+([^:]+):(\S+)\s*$")
_STATUS = re.compile(r"^HTTP/[\d.]+\s+((\d+)[^\r\n]*)", re.IGNORECASE)
_CONTENT_LENGTH = re.compile(rb"^Content-Length:\s*(\d+)", re.IGNORECASE | re.MULTILINE)


class RealplexorError(Exception):
    """Any failure of a realplexor call (bad argument, connection, reply)."""


class RealplexorConnectionError(RealplexorError):
    """The IN line could not be reached, or did not answer in time."""


class RealplexorRequestError(RealplexorError):
    """The server refused the request (a status other than 200, e.g. 403)."""

    def __init__(self, message, status, reason, body):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.body = body


class RealplexorTooLargeError(RealplexorRequestError):
    """The server refused the request with 413: it is longer than its IN_MAXLEN."""


class RealplexorProtocolError(RealplexorError):
    """The reply is not the HTTP answer the server sends (broken or truncated)."""


class Realplexor:
    """A publisher connected to one realplexor IN line.

    host, port: the IN line (``IN_ADDR``, default 127.0.0.1:10010; plain TCP:
    the protocol needs a half-close, which TLS proxies do not pass on).
    namespace: prefix added to every id. identifier: the server's
    ``IDENTIFIER``. timeout: seconds for connecting and for each wait on the
    socket. api: ``"legacy"`` (the original protocol, a connection per call) or
    ``"http"`` (the HTTP API over one keep-alive connection; needs this server).
    """

    def __init__(self, host, port, namespace=None, identifier="identifier", timeout=5.0, api="legacy"):
        if api not in ("legacy", "http"):
            raise RealplexorError('api must be "legacy" or "http", "%s" given' % api)
        self.host = host
        self.port = int(port)
        self.namespace = namespace or ""
        self.identifier = identifier
        self.timeout = timeout
        self.api = api
        self._login = None
        self._password = None
        self._sock = None
        self._inbuf = b""

    def close(self):
        """Closes the keep-alive connection (``api="http"``); the next call reopens it."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._inbuf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def logon(self, login, password):
        """Publish as ``login``: every id is then prefixed with ``login + "_"``.

        The credentials are checked by the server on each call, not here.
        """
        self._login = str(login)
        self._password = str(password)
        self.namespace = self._login + "_" + self.namespace

    def send(self, ids_and_cursors, data, show_only_for_ids=None):
        """Push ``data`` (anything ``json.dumps`` takes) to one or many ids.

        ids_and_cursors: an id, a list of ids, or a dict ``{id: cursor or None}``.
        show_only_for_ids: the message is shown only to browsers that also
        listen to one of these ids.
        """
        if isinstance(ids_and_cursors, (str, int)):
            items = [(ids_and_cursors, None)]
        elif isinstance(ids_and_cursors, dict):
            items = list(ids_and_cursors.items())
        else:
            items = [(i, None) for i in ids_and_cursors]
        pairs = []
        for ident, cursor in items:
            ident = str(ident)
            if not _ID.match(ident):
                raise RealplexorError('Identifier must be alphanumeric, "%s" given' % ident)
            if cursor is None:
                pairs.append(self.namespace + ident)
            else:
                pairs.append("%s:%s%s" % (_cursor_text(cursor), self.namespace, ident))
        for ident in show_only_for_ids or ():
            pairs.append("*" + self.namespace + str(ident))
        body = json.dumps(data, separators=(",", ":")).encode("utf-8")
        if self.api == "http":
            reply = self._http("POST", "/pub?identifier=" + quote(",".join(pairs), safe=",:*"), body)
            return json.loads(reply.decode("utf-8"))
        self._request(",".join(pairs), body)
        return None

    def cmd_online_with_counters(self, id_prefixes=None):
        """``{id: number of connected browsers}`` for the online ids (with these prefixes)."""
        if self.api == "http":
            query = self._prefix_query(self._prefixes(id_prefixes))
            counts = json.loads(self._http("GET", "/online?counters=1" + query).decode("utf-8"))
            return {self._strip(i): n for i, n in counts.items()}
        reply = self._command("online", self._prefixes(id_prefixes))
        result = {}
        if not reply.strip():
            return result
        for line in reply.split("\n"):
            parts = line.split(" ")
            ident = parts[0]
            if not ident:
                continue
            if self.namespace and ident.startswith(self.namespace):
                ident = ident[len(self.namespace):]
            try:
                result[ident] = int(parts[1])
            except (IndexError, ValueError):
                raise RealplexorProtocolError("Cannot parse the online line: \"%s\"" % line)
        return result

    def cmd_online(self, id_prefixes=None):
        """The online ids (with these prefixes), namespace removed."""
        return list(self.cmd_online_with_counters(id_prefixes))

    def cmd_watch(self, from_pos, id_prefixes=None):
        """Online/offline events after position ``from_pos``.

        Returns a list of ``{"event": "online"|"offline"|..., "pos": "...", "id": "..."}``;
        pass the last ``pos`` back to get only newer events.
        """
        pos = str(from_pos) if from_pos else "0"
        if not _POSITION.match(pos):
            raise RealplexorError('Position value must be numeric, "%s" given' % pos)
        if self.api == "http":
            query = "?from=" + pos + self._prefix_query(self._prefixes(id_prefixes))
            got = json.loads(self._http("GET", "/watch" + query).decode("utf-8"))
            return [{"event": e["event"], "pos": str(e["pos"]), "id": self._strip(e["id"])} for e in got]
        reply = self._command("watch " + pos, self._prefixes(id_prefixes))
        events = []
        for line in reply.strip().split("\n"):
            if not line:
                continue
            m = _EVENT.match(line)
            if not m:
                warnings.warn('Cannot parse the event: "%s"' % line, RuntimeWarning, stacklevel=2)
                continue
            ident = m.group(3)
            if self.namespace and ident.startswith(self.namespace):
                ident = ident[len(self.namespace):]
            events.append({"event": m.group(1), "pos": m.group(2), "id": ident})
        return events

    # The PHP API's method names.
    cmdOnline = cmd_online
    cmdOnlineWithCounters = cmd_online_with_counters
    cmdWatch = cmd_watch

    def _prefixes(self, id_prefixes):
        if id_prefixes is None:
            prefixes = []
        elif isinstance(id_prefixes, str):
            prefixes = [id_prefixes]
        else:
            prefixes = [str(p) for p in id_prefixes]
        if self.namespace:
            # Without a prefix the namespace still limits the answer.
            prefixes = [self.namespace + p for p in (prefixes or [""])]
        return prefixes

    def _strip(self, ident):
        if self.namespace and ident.startswith(self.namespace):
            return ident[len(self.namespace):]
        return ident

    @staticmethod
    def _prefix_query(prefixes):
        return "&prefix=" + quote(",".join(prefixes), safe=",") if prefixes else ""

    def _http(self, method, target, body=b""):
        """One HTTP API request on the keep-alive connection; returns the 200 reply's body.

        A connection the server closed while idle (IN_TIMEOUT) is reopened and the request
        sent again; a request the server may have processed is never repeated.
        """
        head = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, self.host)
        if method == "POST":
            head += "Content-Length: %d\r\n" % len(body)
        if self._login:
            token = base64.b64encode(("%s:%s" % (self._login, self._password)).encode("utf-8"))
            head += "Authorization: Basic %s\r\n" % token.decode("ascii")
        request = (head + "\r\n").encode("utf-8") + body
        for attempt in (0, 1):
            reused = self._sock is not None
            if not reused:
                self._connect()
            try:
                self._sock.sendall(request)
                reply = self._read_reply()
            except _Stale:
                self.close()
                if reused and attempt == 0:
                    continue
                raise RealplexorConnectionError(
                    "Connection closed by %s:%s before a reply" % (self.host, self.port)) from None
            except socket.timeout:
                self.close()
                raise RealplexorConnectionError(
                    "Timed out after %s s waiting for %s:%s" % (self.timeout, self.host, self.port)) from None
            except OSError as e:
                self.close()
                if reused and attempt == 0 and isinstance(e, (BrokenPipeError, ConnectionResetError)):
                    continue
                raise RealplexorConnectionError("Error #%s: %s" % (e.errno, e.strerror or e)) from None
            break
        status_line, headers, payload = reply
        m = _STATUS.match(status_line)
        if not m:
            self.close()
            raise RealplexorProtocolError("Non-HTTP response received:\n" + status_line)
        if re.search(r"^Connection:\s*close", headers, re.IGNORECASE | re.MULTILINE):
            self.close()
        if m.group(2) == "413":
            raise RealplexorTooLargeError(
                "Request failed: %s: message too large for the server's IN_MAXLEN (%d bytes sent)\n%s"
                % (m.group(1), len(request), payload.decode("utf-8", "replace")),
                413, m.group(1), payload)
        if m.group(2) != "200":
            raise RealplexorRequestError(
                "Request failed: %s\n%s" % (m.group(1), payload.decode("utf-8", "replace")),
                int(m.group(2)), m.group(1), payload)
        return payload

    def _connect(self):
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except socket.timeout:
            raise RealplexorConnectionError(
                "Error #%d: Connection timed out (%s:%s)" % (110, self.host, self.port)) from None
        except OSError as e:
            self._sock = None
            raise RealplexorConnectionError("Error #%s: %s" % (e.errno, e.strerror or e)) from None
        self._inbuf = b""

    def _read_reply(self):
        """(status line, headers text, body) of one Content-Length reply."""
        while b"\r\n\r\n" not in self._inbuf:
            self._recv_more()
        head, rest = self._inbuf.split(b"\r\n\r\n", 1)
        text = head.decode("latin-1")
        status_line, _, headers = text.partition("\r\n")
        m = re.search(r"^Content-Length:\s*(\d+)", headers, re.IGNORECASE | re.MULTILINE)
        if not m:
            self.close()
            raise RealplexorProtocolError("No Content-Length header in response headers:\n" + text)
        length = int(m.group(1))
        self._inbuf = rest
        while len(self._inbuf) < length:
            self._recv_more(started=True)
        payload, self._inbuf = self._inbuf[:length], self._inbuf[length:]
        return status_line, headers, payload

    def _recv_more(self, started=False):
        chunk = self._sock.recv(65536)
        if not chunk:
            if started or self._inbuf:
                self.close()
                raise RealplexorProtocolError("Connection closed in the middle of a reply")
            raise _Stale()
        self._inbuf += chunk

    def _command(self, command, prefixes):
        line = command + "".join(" " + p for p in prefixes) + "\n"
        return self._request("", line.encode("utf-8")).decode("utf-8", "replace")

    def _request(self, ids, body):
        """One IN request; returns the reply body (b"" for an empty reply)."""
        credentials = "%s:%s@" % (self._login, self._password) if self._login else ""
        head = (
            "POST / HTTP/1.1\r\n"
            "Host: %s\r\n"
            "Content-Length: %d\r\n"
            "X-Realplexor: %s=%s%s\r\n"
            "\r\n" % (self.host, len(body), self.identifier, credentials, ids)
        ).encode("utf-8")
        reply = self._exchange(head + body)
        if not reply:
            return b""
        split = re.split(rb"\r?\n\r?\n", reply, maxsplit=1)
        headers = split[0]
        payload = split[1] if len(split) > 1 else b""
        text = headers.decode("latin-1")
        m = _STATUS.match(text)
        if not m:
            raise RealplexorProtocolError("Non-HTTP response received:\n" + reply.decode("utf-8", "replace"))
        if m.group(2) == "413":
            raise RealplexorTooLargeError(
                "Request failed: %s: message too large for the server's IN_MAXLEN (%d bytes sent)\n%s"
                % (m.group(1), len(head) + len(body), payload.decode("utf-8", "replace")),
                413, m.group(1), payload)
        if m.group(2) != "200":
            raise RealplexorRequestError(
                "Request failed: %s\n%s" % (m.group(1), payload.decode("utf-8", "replace")),
                int(m.group(2)), m.group(1), payload)
        m = _CONTENT_LENGTH.search(headers)
        if not m:
            raise RealplexorProtocolError("No Content-Length header in response headers:\n" + text)
        if int(m.group(1)) != len(payload):
            raise RealplexorProtocolError(
                "Response length (%d) is different than specified in Content-Length header (%s): "
                "possibly broken response\n" % (len(payload), m.group(1).decode()))
        return payload

    def _exchange(self, request):
        """Send, half-close, read to EOF."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except socket.timeout:
            raise RealplexorConnectionError(
                "Error #%d: Connection timed out (%s:%s)" % (110, self.host, self.port)) from None
        except OSError as e:
            raise RealplexorConnectionError("Error #%s: %s" % (e.errno, e.strerror or e)) from None
        try:
            try:
                sock.sendall(request)
                sock.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                # The server may answer (413 over IN_MAXLEN) and close before it has read
                # everything: report its answer rather than the broken write.
                reply = _read_what_arrived(sock)
                if reply:
                    return reply
                raise
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        except socket.timeout:
            raise RealplexorConnectionError(
                "Timed out after %s s waiting for %s:%s" % (self.timeout, self.host, self.port)) from None
        except OSError as e:
            raise RealplexorConnectionError("Error #%s: %s" % (e.errno, e.strerror or e)) from None
        finally:
            sock.close()


class _Stale(Exception):
    """The keep-alive connection was closed by the server before any reply byte."""


def _read_what_arrived(sock):
    """The reply bytes already received on a connection the server has reset."""
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        pass
    return b"".join(chunks)


def _cursor_text(cursor):
    if isinstance(cursor, bool):
        text = None
    elif isinstance(cursor, int):
        text = str(cursor)
    elif isinstance(cursor, float):
        text = repr(cursor)
    else:
        text = str(cursor)
    if text is None or not _CURSOR.match(text):
        raise RealplexorError('Cursor must be numeric, "%s" given' % cursor)
    return text


# The original API's names, for code ported from it.
Dklab_Realplexor = Realplexor
Dklab_Realplexor_Exception = RealplexorError
