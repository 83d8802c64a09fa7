"""Listening on the WAIT line with Server-Sent Events, for server-side consumers.

::

    from realplexor import listen

    for event in listen("http://127.0.0.1:8088/", ["chat", "news"], namespace="myapp_"):
        if event.gap:
            print("missed messages before", event.ids)     # {id: cursor it goes on from}
        else:
            print(event.ids, event.data)                   # {"chat": "1700000000.25"}, {...}

One GET with ``Accept: text/event-stream`` and ``identifier=[cursor:]id,...``; the
server answers with one event per message (``id: <cursor>``, ``data: {"ids": ...,
"data": ...}``), ``event: gap`` notices, and ``: ping`` comments every STREAM_PING
seconds. The generator keeps the cursor each id has reached. When the connection
drops (server restart, network, proxy) it reconnects with the standard SSE resume, the
``Last-Event-ID`` header (the last event's id, which the server applies to every id
without a cursor of its own), and with each id's own cursor in the identifier list (an
id that had an event or a gap notice, or was given a cursor; before the first event,
every id gets the time it was registered, by our clock less a second), so nothing
pushed meanwhile is lost. Standard library only (``http.client``); works through nginx (chunked replies) and
over https.
"""

import http.client
import json
import time
import urllib.parse

from . import RealplexorConnectionError, RealplexorError, RealplexorProtocolError, RealplexorRequestError
from . import _ID, _cursor_text

__all__ = ["listen", "ListenEvent"]

# The server's retry: line is 2000 ms; this is the pause before a reconnect until it
# has been read.
_DEFAULT_RETRY = 2.0
# Assumed lag of our clock behind the server's until a cursor tells (seconds): ids that
# had no event are resumed from a little before they were registered.
_DEFAULT_OFFSET = -1.0


class ListenEvent:
    """One event of :func:`listen`.

    ids: ``{id: cursor}`` (namespace removed), the cursors as the server's strings.
    data: the pushed JSON, parsed (``None`` for a gap). gap: ``True`` for a gap notice:
    the server dropped messages of these ids that this listener had not got (queue
    trimmed or cleaned, restart without snapshot); listening goes on from ``ids``'
    cursors. event_id: the SSE ``id:`` (``None`` for a gap).
    """

    __slots__ = ("ids", "data", "gap", "event_id")

    def __init__(self, ids, data, gap, event_id):
        self.ids = ids
        self.data = data
        self.gap = gap
        self.event_id = event_id

    def __repr__(self):
        if self.gap:
            return "ListenEvent(gap, ids=%r)" % (self.ids,)
        return "ListenEvent(ids=%r, data=%r)" % (self.ids, self.data)

    def __eq__(self, other):
        return isinstance(other, ListenEvent) and (self.ids, self.data, self.gap, self.event_id) == (
            other.ids, other.data, other.gap, other.event_id)


def listen(url, ids, cursors=None, namespace=None, identifier="identifier", timeout=60.0,
           retry=None, max_retries=None, headers=None):
    """Yields :class:`ListenEvent` s for ``ids`` from the WAIT line at ``url``, forever.

    url: the WAIT line as browsers reach it, ``http://host:port/`` or ``https://...``
    (any path and query are kept). ids: an id or a list of ids. cursors: ``{id:
    cursor}`` to start from (the messages after it that are still queued come first);
    other ids start from now. namespace: prefix of every id on the wire (removed in
    events). timeout: seconds without a byte (the server pings every STREAM_PING, 25 s
    by default) before the connection counts as dead. retry: seconds between reconnect
    attempts (default: the server's ``retry:``, 2 s). max_retries: failed connection
    attempts in a row before :class:`RealplexorConnectionError` is raised (``None``:
    never give up). headers: extra request headers.

    A reply other than ``200`` raises :class:`RealplexorRequestError`. Stop listening by
    leaving the loop (or ``close()`` on the generator): the connection is closed.
    """
    ids = [ids] if isinstance(ids, (str, int)) else list(ids)
    prefix = namespace or ""
    state = _State(url, identifier, timeout, retry, headers)
    for ident in ids:
        ident = str(ident)
        if not _ID.match(ident):
            raise RealplexorError('Identifier must be alphanumeric, "%s" given' % ident)
        state.order.append(prefix + ident)
    if not state.order:
        raise RealplexorError("Nothing to listen to")
    for ident, cursor in (cursors or {}).items():
        if cursor is not None:
            state.cursors[prefix + str(ident)] = _cursor_text(cursor)

    failures = 0
    while True:
        try:
            for event in state.stream():
                if event is None:  # connected
                    failures = 0
                    continue
                yield _public(event, prefix)
        except (OSError, http.client.HTTPException) as e:
            reason = "%s: %s" % (type(e).__name__, e)
        else:
            reason = "closed by the server"
        # A stream that was up reconnects at once; a failed attempt waits first.
        if not state.opened:
            failures += 1
            if max_retries is not None and failures > max_retries:
                raise RealplexorConnectionError(
                    "Cannot listen on %s after %d attempts (%s)" % (url, failures, reason))
            time.sleep(state.retry)


class _State:
    """What survives reconnects: the cursors, the last event id, the server's retry."""

    def __init__(self, url, identifier, timeout, retry, headers):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RealplexorError("listen() needs an http:// or https:// URL, %r given" % url)
        self.parts = parts
        self.identifier = identifier
        self.timeout = timeout
        self.retry = _DEFAULT_RETRY if retry is None else float(retry)
        self.retry_fixed = retry is not None
        self.headers = dict(headers or {})
        self.order = []          # wire ids, as given
        self.cursors = {}        # wire id -> cursor reached (text)
        self.stamps = {}         # wire id without a cursor -> about when it was registered
        self.last_event_id = None
        self.offset = None       # lower bound of (server clock - ours), seconds
        self.opened = False      # the current connection got its 200

    def request_target(self):
        # An id without a cursor of its own resumes from Last-Event-ID when that is one
        # cursor (the server's clock: exact); before any event, from its registration.
        plain = self.last_event_id is not None and ":" not in self.last_event_id
        items = []
        for i in self.order:
            cursor = self.cursors.get(i) or (None if plain else self.stamps.get(i))
            items.append("%s:%s" % (cursor, i) if cursor else i)
        base = self.parts.path or "/"
        query = self.parts.query + "&" if self.parts.query else ""
        return "%s?%s%s=%s" % (base, query, self.identifier, ",".join(items))

    def stream(self):
        """One connection: yields an event per SSE event (``None`` when it opens)."""
        self.opened = False
        p = self.parts
        cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        conn = cls(p.hostname, p.port, timeout=self.timeout)
        try:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if self.last_event_id is not None:
                headers["Last-Event-ID"] = self.last_event_id
            headers.update(self.headers)
            fresh = [i for i in self.order if i not in self.cursors]
            sent = time.time()
            conn.request("GET", self.request_target(), headers=headers)
            resp = conn.getresponse()
            if resp.status != 200:
                body = resp.read(4096)
                raise RealplexorRequestError(
                    "Request failed: %d %s\n%s" % (resp.status, resp.reason, body.decode("utf-8", "replace")),
                    resp.status, "%d %s" % (resp.status, resp.reason), body)
            ctype = resp.getheader("Content-Type", "")
            if not ctype.startswith("text/event-stream"):
                raise RealplexorProtocolError("Not an event stream (Content-Type %r)" % ctype)
            # Registered: ids without a cursor listen from about now; remember that, so a
            # reconnect gets what was pushed to them while it was away.
            stamp = sent + (self.offset if self.offset is not None else _DEFAULT_OFFSET)
            for ident in fresh:
                self.stamps.setdefault(ident, "%.3f" % stamp)
            self.opened = True
            yield None
            for kind, data, event_id in _events(resp, self):
                yield self.take(kind, data, event_id)
        finally:
            conn.close()

    def take(self, kind, data, event_id):
        try:
            obj = json.loads(data)
        except ValueError:
            raise RealplexorProtocolError("Event data is not JSON: %r" % data[:200]) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("ids"), dict):
            raise RealplexorProtocolError("Event without \"ids\": %r" % data[:200])
        gap = kind == "gap" or obj.get("gap") is True
        if not gap and "data" not in obj:
            raise RealplexorProtocolError("Event without \"data\": %r" % data[:200])
        now = time.time()
        ids = {}
        for ident, cursor in obj["ids"].items():
            cursor = str(cursor)
            ids[ident] = cursor
            self.cursors[ident] = cursor
            try:
                c = float(cursor)
            except ValueError:
                continue
            if c > 1e9 and (self.offset is None or c - now > self.offset):
                self.offset = c - now
        if event_id is not None and not gap:
            self.last_event_id = event_id
        return ListenEvent(ids, None if gap else obj["data"], gap, None if gap else event_id)


def _events(resp, state):
    """(type, data, id) of each event on an SSE body; comments and retry: handled here."""
    kind, data, event_id = None, [], None
    while True:
        raw = resp.readline()
        if not raw:
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield kind or "message", "\n".join(data), event_id
            kind, data, event_id = None, [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id":
            event_id = value
        elif name == "retry" and value.isdigit() and not state.retry_fixed:
            state.retry = int(value) / 1000.0


def _public(event, prefix):
    """The event with the namespace taken off its ids."""
    if prefix:
        event.ids = {(i[len(prefix):] if i.startswith(prefix) else i): c for i, c in event.ids.items()}
    return event
