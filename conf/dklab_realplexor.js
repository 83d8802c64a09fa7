/*
 * realplexor browser client: the Dklab_Realplexor API over CORS long-polling,
 * Server-Sent Events or WebSocket. Released under the MIT License.
 *
 *   var rpl = new Dklab_Realplexor("https://rpl.example.com/", "myapp_");
 *   rpl.subscribe("chat", function (data, id, cursor) { ... });
 *   rpl.execute();
 *
 * It talks to the WAIT line straight from the page: by default it long-polls
 * with XMLHttpRequest (the original's requests); the option transport
 * ("websocket", "sse" or "auto": WebSocket, then SSE, then long-poll) keeps
 * one connection open instead. The server must list the page's origin in
 * ALLOWED_ORIGINS. There is no IFRAME, no document.domain and no eval, so it
 * works on https pages, across unrelated hosts and with explicit ports. It is
 * a plain script defining window.Dklab_Realplexor; realplexor.mjs is the same
 * code as an ES module.
 *
 * When the realplexor server serves this file (?identifier=SCRIPT) it fills
 * in the quoted settings below from its configuration; served any other way
 * the stock defaults apply. Options passed to the constructor win over both.
 *
 * Source: clients/js/dklab_realplexor.js. conf/dklab_realplexor.js and
 * clients/js/realplexor.mjs are generated from it by clients/js/build.mjs.
 */
var Dklab_Realplexor = (function () {
    "use strict";

    var VERSION = "1.50";

    // A substituted setting, or the fallback when the file was not served by
    // the server (the text is then still the placeholder) or the key is unset.
    function num(text, fallback) {
        var n = parseFloat(text);
        return isNaN(n) ? fallback : n;
    }
    function str(text, fallback) {
        return text.charAt(0) == "$" || text.indexOf("undefined-") === 0 ? fallback : text;
    }

    var DEFAULTS = {
        // Consecutive bounces tolerated before the delay grows.
        maxBounces: num("$JS_MAX_BOUNCES", 10),
        // Pause between two polls, in seconds.
        reconnectDelay: num("$JS_WAIT_RECONNECT_DELAY", 0.01),
        // The server's WAIT_TIMEOUT, in seconds: a reply sooner than half of
        // it that carries no data is a bounce, a later one a normal timeout.
        waitTimeout: num("$WAIT_TIMEOUT", 300),
        // Name of the marker that carries the id list.
        identifier: str("$IDENTIFIER", "identifier"),
        // Log polling to the console.
        debug: num("$JS_DEBUG", 0) ? true : false,
        // An id list longer than this goes in a POST body instead of the URL
        // (long-poll), or partly in WebSocket commands once connected.
        maxGetLength: 1700,
        // How to reach the WAIT line: "longpoll" (the original's requests),
        // "websocket", "sse" (Server-Sent Events), or "auto" (WebSocket, then
        // SSE, then long-poll, each tried when the one before cannot connect).
        transport: str("$JS_TRANSPORT", "longpoll")
    };

    // The transports "auto" tries, in order, and whether this browser has them.
    var AUTO = ["websocket", "sse", "longpoll"];
    function available(kind) {
        if (kind == "websocket") return typeof WebSocket == "function";
        if (kind == "sse") return typeof EventSource == "function";
        return kind == "longpoll";
    }
    // Failures in a row of a transport that never connected before "auto"
    // moves on to the next one.
    var FALLBACK_AFTER = 2;
    // The most ids one WebSocket command may name (the server's limit).
    var WS_MAX_IDS = 256;

    function own(obj, key) {
        return Object.prototype.hasOwnProperty.call(obj, key);
    }
    function now() {
        return new Date().getTime();
    }
    function say(kind, msg) {
        var c = typeof console != "undefined" ? console : null;
        if (!c) return;
        try {
            (c[kind] || c.log).call(c, msg);
        } catch (e) {
            // Logging must never break polling.
        }
    }
    function dump(value) {
        if (typeof value == "string") return value;
        try {
            return JSON.stringify(value);
        } catch (e) {
            return "" + value;
        }
    }
    function message(e) {
        return e && e.message ? e.message : "" + e;
    }

    // A cursor the server would have issued at local time t (ms), given the
    // estimated offset of the server's clock (seconds). Three decimals: the
    // server compares cursors as exact decimals, whatever their length.
    function cursorAt(t, offset) {
        var secs = t / 1000 + offset;
        return secs > 1 ? (Math.floor(secs * 1000) / 1000).toFixed(3) : null;
    }

    /**
     * new Dklab_Realplexor(url, namespace, options)
     *
     * url: the WAIT line, e.g. "https://rpl.example.com/" (any path or query
     * is kept). namespace: prefix of every id, or null. options (optional;
     * the original's third argument, viaDocumentWrite, is accepted and
     * ignored): { transport, onStatus, onGap, debug, maxBounces,
     * reconnectDelay, waitTimeout, identifier, maxGetLength, withCredentials }.
     */
    function Dklab_Realplexor(url, namespace, options) {
        if (!/^\w+:\/\/[^\/?#]+/.test("" + url)) {
            throw new Error("Dklab_Realplexor constructor argument must be fully-qualified URL, " + url + " given.");
        }
        var opt = options && typeof options == "object" ? options : {};
        this.version = VERSION;
        this._url = "" + url;
        this._namespace = namespace != null ? "" + namespace : null;
        this._login = null;
        this._map = {};
        this._opt = {};
        for (var k in DEFAULTS) {
            if (own(DEFAULTS, k)) this._opt[k] = opt[k] != null ? opt[k] : DEFAULTS[k];
        }
        this._withCredentials = !!opt.withCredentials;
        this._onStatus = typeof opt.onStatus == "function" ? opt.onStatus : null;
        // onGap(id, cursor): the server dropped messages this client had not seen (queue
        // trimmed or cleaned, or a restart without snapshot); listening goes on from
        // cursor. Setting it makes the poll send gap=1 (realplexor only).
        this._onGap = typeof opt.onGap == "function" ? opt.onGap : null;

        // The transports to use, in order ("auto": all three); _pick is the current one.
        var want = "" + this._opt.transport;
        if (want != "auto" && want != "websocket" && want != "sse" && want != "longpoll") {
            say("warn", "Dklab_Realplexor: unknown transport " + want + ", using longpoll");
            want = "longpoll";
        }
        var order = want == "auto" ? AUTO : [want];
        this._order = [];
        for (var i = 0; i < order.length; i++) {
            if (available(order[i])) this._order.push(order[i]);
        }
        if (!this._order.length) this._order.push("longpoll");
        this._auto = this._order.length > 1;
        this._pick = 0;
        this._failures = 0;        // failures in a row of the current transport
        this._proven = {};         // transports that connected at least once
        this._stream = null;       // the WebSocket or EventSource in use
        this._streamKind = null;
        this._streamIds = {};      // ids the open WebSocket listens to
        this._streamPrefix = null; // the prefix it was opened with
        this._opened = false;      // the stream in use has connected

        this._xhr = null;          // the poll in flight
        this._timer = null;        // the scheduled next poll
        this._running = false;     // execute() called and stop() not since
        this._bounceCount = 0;     // consecutive bounces
        this._prevReqTime = 0;     // when the current poll was sent (ms)
        this._serverOffset = null; // lower bound of server clock - ours (s)
        this._online = false;      // the server took the current poll
    }

    Dklab_Realplexor.VERSION = VERSION;
    Dklab_Realplexor.DEFAULTS = DEFAULTS;

    // Kept from the original API: calls func with args, returns null or the
    // exception as a string.
    Dklab_Realplexor._callAndReturnException = function (func, args) {
        try {
            func.apply(null, args);
            return null;
        } catch (e) {
            return "" + e;
        }
    };

    var proto = Dklab_Realplexor.prototype;

    // Set the login: every id gets the prefix login + "_" (before the namespace).
    proto.logon = function (login) {
        this._login = login;
        return this;
    };

    // Listen to an id from this cursor on (messages with a greater cursor).
    proto.setCursor = function (id, cursor) {
        var item = this._item(id);
        item.cursor = cursor == null ? null : "" + cursor;
        item.moved = true;
        return this;
    };

    // Add a callback(data, id, cursor) for an id; execute() applies it.
    proto.subscribe = function (id, callback) {
        var list = this._item(id).callbacks;
        for (var i = 0; i < list.length; i++) {
            if (list[i] === callback) return this;
        }
        list.push(callback);
        return this;
    };

    // Remove a callback, or every callback of the id when callback is null.
    // The id leaves the next poll; when no id is left, polling stops at once.
    proto.unsubscribe = function (id, callback) {
        var item = own(this._map, id) ? this._map[id] : null;
        if (!item) return this;
        if (callback == null) {
            item.callbacks = [];
        } else {
            for (var i = 0; i < item.callbacks.length; i++) {
                if (item.callbacks[i] === callback) {
                    item.callbacks.splice(i, 1);
                    break;
                }
            }
        }
        if (this._running && !this._requestIds().length) this._halt("idle");
        return this;
    };

    // (Re)connect with the current subscriptions. On an open WebSocket the
    // changes since the last execute() are sent as commands instead.
    proto.execute = function () {
        this._running = true;
        if (this._wsUpdate()) return this;
        this._abort();
        this._loop();
        return this;
    };

    // Modern surface: stop polling until the next execute().
    proto.stop = function () {
        this._running = false;
        this._halt("stopped");
        return this;
    };

    // Modern surface: fn({type, ...}) hears "connecting", "online", "error",
    // "callbackError", "gap", "idle" and "stopped" events. One callback; null removes it.
    proto.onStatus = function (fn) {
        this._onStatus = typeof fn == "function" ? fn : null;
        return this;
    };

    // Modern surface: the transport in use or tried next ("websocket", "sse", "longpoll").
    proto.transport = function () {
        return this._order[this._pick];
    };

    proto._item = function (id) {
        if (!own(this._map, id)) this._map[id] = { cursor: null, callbacks: [], moved: false };
        return this._map[id];
    };

    proto._prefix = function () {
        return (this._login != null ? this._login + "_" : "") + (this._namespace != null ? this._namespace : "");
    };

    // Ids with at least one callback, in subscription order.
    proto._requestIds = function () {
        var ids = [];
        for (var id in this._map) {
            if (own(this._map, id) && this._map[id].callbacks.length) ids.push(id);
        }
        return ids;
    };

    proto._log = function (msg, kind) {
        if (this._opt.debug) say(kind || "log", "Dklab_Realplexor: " + msg);
    };

    proto._status = function (event) {
        if (!this._onStatus) return;
        try {
            this._onStatus(event);
        } catch (e) {
            say("error", "Dklab_Realplexor: status callback failed: " + message(e));
        }
    };

    proto._halt = function (type) {
        this._abort();
        if (this._timer) {
            clearTimeout(this._timer);
            this._timer = null;
        }
        this._status({ type: type });
    };

    // Forget the poll or stream in flight without counting it as a bounce.
    proto._abort = function () {
        var xhr = this._xhr, stream = this._stream;
        if (this._timer) {
            clearTimeout(this._timer);
            this._timer = null;
        }
        if (stream) {
            this._stream = null;
            this._opened = false;
            this._streamIds = {};
            detach(stream);
        }
        if (!xhr) return;
        this._xhr = null;
        xhr.onreadystatechange = null;
        try {
            xhr.abort();
        } catch (e) {
            // Nothing to do.
        }
    };

    // The identifier list of ids: [cursor:]prefix+id each.
    proto._idList = function (ids) {
        var prefix = this._prefix(), list = [];
        for (var i = 0; i < ids.length; i++) {
            var item = this._map[ids[i]];
            item.moved = false;
            list.push((item.cursor != null ? item.cursor + ":" : "") + prefix + ids[i]);
        }
        return list;
    };

    // Ids of the list that have no cursor yet.
    proto._fresh = function (ids) {
        var fresh = [];
        for (var i = 0; i < ids.length; i++) {
            if (this._map[ids[i]].cursor == null) fresh.push(ids[i]);
        }
        return fresh;
    };

    // Connect: one long poll, or a stream.
    proto._loop = function () {
        this._timer = null;
        var ids = this._requestIds();
        if (!this._running || !ids.length) {
            if (this._running) this._status({ type: "idle" });
            return;
        }
        var kind = this._order[this._pick];
        if (kind != "longpoll") {
            this._openStream(kind, ids);
            return;
        }
        var fresh = this._fresh(ids), list = this._idList(ids);
        var idParam = this._opt.identifier + "=" + list.join(",");
        var uri = this._url, method = "GET", body = null;
        // The opt-in goes first in the request line, before the identifier.
        if (this._onGap) uri += (uri.indexOf("?") < 0 ? "?" : "&") + "gap=1";
        if (idParam.length + uri.length < this._opt.maxGetLength) {
            // ncrnd defeats caches that ignore Cache-Control.
            uri += (uri.indexOf("?") < 0 ? "?" : "&") + idParam + "&ncrnd=" + now();
        } else {
            // The server takes the list only once a character follows it.
            // A text/plain POST is a simple CORS request: no preflight.
            method = "POST";
            body = idParam + "\n";
        }

        var self = this, xhr = new XMLHttpRequest(), sent = now();
        xhr.open(method, uri, true);
        if (this._withCredentials) xhr.withCredentials = true;
        xhr.onreadystatechange = function () {
            if (self._xhr !== xhr) return;
            if (xhr.readyState == 2 && xhr.status == 200) {
                self._registered(fresh, sent);
            } else if (xhr.readyState == 4) {
                self._xhr = null;
                if (xhr.status == 200) self._registered(fresh, sent);
                self._onresponse(xhr.status, "" + (xhr.responseText == null ? "" : xhr.responseText));
            }
        };
        this._xhr = xhr;
        this._prevReqTime = sent;
        this._log(method + " " + uri + (body ? " (" + body.length + " bytes)" : ""));
        this._status({ type: "connecting", ids: ids, method: method, transport: "longpoll" });
        try {
            xhr.send(body);
        } catch (e) {
            if (this._xhr === xhr) {
                this._xhr = null;
                this._onresponse(0, "");
            }
        }
    };

    // The server took the poll: ids that had no cursor now listen from the
    // moment it was sent, so a reconnect (network blip, server restart) gets
    // whatever was pushed in between instead of starting from "now" again.
    proto._registered = function (fresh, sent) {
        if (fresh.length) {
            var offset = this._serverOffset != null ? this._serverOffset : -1;
            var cursor = cursorAt(sent, offset);
            for (var i = 0; cursor != null && i < fresh.length; i++) {
                var item = own(this._map, fresh[i]) ? this._map[fresh[i]] : null;
                if (item && item.cursor == null) item.cursor = cursor;
            }
            fresh.length = 0;
        }
        this._proven[this._order[this._pick]] = true;
        this._failures = 0;
        if (!this._online) {
            this._online = true;
            this._status({ type: "online", transport: this._order[this._pick] });
        }
    };

    // A poll finished: dispatch, then schedule the next one.
    proto._onresponse = function (status, text) {
        var delay = Math.round(this._opt.reconnectDelay * 1000);
        try {
            if (status != 200) {
                this._online = false;
                throw new Error(status ? "HTTP status " + status : "Network error (server unreachable or origin not allowed)");
            }
            // Only whitespace: the server's WAIT timeout (or a dropped connection).
            if (/^\s*$/.test(text)) {
                text = "";
                throw new Error("Empty response");
            }
            this._process(text);
            this._bounceCount = 0;
        } catch (e) {
            var t = now(), bounce = t - this._prevReqTime < this._opt.waitTimeout * 1000 / 2;
            if (bounce) {
                this._bounceCount++;
                this._log("Bounce detected (bounceCount = " + this._bounceCount + ")");
            } else {
                this._log("Disconnect detected");
            }
            if (this._bounceCount > this._opt.maxBounces) {
                var p = this._bounceCount - this._opt.maxBounces + 2;
                delay = Math.min(60000, 1000 + 500 * p * p);
            }
            if (text !== "" || status != 200) {
                this._log(message(e) + (text !== "" ? "\nResponse:\n" + text : ""), "error");
            }
            var msg = message(e);
            if (status != 200) {
                this._failures++;
                var next = this._fallback();
                if (next) msg += "; trying " + next;
            }
            if (bounce || text !== "") {
                this._status({ type: "error", message: msg, status: status, response: text, bounceCount: this._bounceCount, retryIn: delay, transport: "longpoll" });
            }
            this._prevReqTime = t;
        }
        // A callback may have called execute() or stop() already.
        if (!this._running || this._xhr || this._timer || this._stream) return;
        this._log("Next query in " + delay + " ms");
        var self = this;
        this._timer = setTimeout(function () {
            self._loop();
        }, delay);
    };

    // Parse a reply body and dispatch every part of it.
    proto._process = function (text) {
        var start = text.indexOf("[");
        if (start > 0) text = text.substring(start);
        this._log("Received response:\n" + text);
        if (!/^\s*\[[\s\S]*\]\s*$/.test(text)) throw new Error("Response is not a complete JSON");
        var parts = JSON.parse(text), t = now();
        // Check every part before running any callback.
        for (var i = 0; i < parts.length; i++) checkPart(parts[i]);
        for (i = 0; i < parts.length; i++) this._dispatch(parts[i], t);
    };

    function checkPart(part) {
        if (!part || typeof part != "object" || part.ids == null || typeof part.ids != "object") {
            throw new Error("Cannot find \"ids\" property within the response part");
        }
        if (!own(part, "data") && part.gap !== true) throw new Error("Cannot find \"data\" property within the response part");
    }

    // Drops a WebSocket or EventSource without hearing from it again.
    function detach(stream) {
        stream.onopen = stream.onmessage = stream.onerror = stream.onclose = null;
        try {
            stream.close();
        } catch (e) {
            // Nothing to do.
        }
    }

    // "auto": after FALLBACK_AFTER failures in a row of a transport that never
    // connected, the next one (after long-poll, WebSocket again: the server may
    // have been down rather than the transports refused). A transport that
    // connected once is kept. Returns the new transport, or null.
    proto._fallback = function () {
        var kind = this._order[this._pick];
        if (!this._auto || this._proven[kind] || this._failures < FALLBACK_AFTER) return null;
        this._pick = (this._pick + 1) % this._order.length;
        this._failures = 0;
        var next = this._order[this._pick];
        this._log(kind + " cannot connect, trying " + next, "warn");
        return next;
    };

    // Opens a WebSocket or an EventSource on the WAIT line for ids. Both carry
    // one { "ids": ..., "data": ... } part per message (or a gap notice).
    proto._openStream = function (kind, ids) {
        var list = this._idList(ids), n = list.length, base = this._url;
        var head = base + (base.indexOf("?") < 0 ? "?" : "&") + this._opt.identifier + "=";
        if (kind == "websocket") {
            // The ids that fit in the URL; the others are subscribed once it is open.
            var len = head.length;
            for (n = 0; n < list.length; n++) {
                len += list[n].length + 1;
                if (n > 0 && len > this._opt.maxGetLength) break;
            }
        }
        var uri = head + list.slice(0, n).join(",");
        // ncrnd defeats caches that ignore Cache-Control.
        if (kind == "sse") uri += "&ncrnd=" + now();
        var self = this, sent = now(), inUrl = ids.slice(0, n), fresh = this._fresh(inUrl), stream;
        this._streamIds = {};
        for (var i = 0; i < inUrl.length; i++) this._streamIds[inUrl[i]] = true;
        this._streamPrefix = this._prefix();
        this._streamKind = kind;
        this._opened = false;
        this._prevReqTime = sent;
        this._log(kind + " " + uri);
        this._status({ type: "connecting", ids: ids, method: "GET", transport: kind });
        try {
            stream = kind == "websocket"
                ? new WebSocket(uri.replace(/^http/i, "ws"))
                : new EventSource(uri, { withCredentials: this._withCredentials });
        } catch (e) {
            this._streamEnded(kind, message(e));
            return;
        }
        this._stream = stream;
        var mine = function () {
            return self._stream === stream;
        };
        stream.onopen = function () {
            if (!mine()) return;
            self._opened = true;
            self._registered(fresh, sent);
            if (kind == "websocket") self._wsUpdate();
        };
        stream.onmessage = function (e) {
            if (mine()) self._streamPart(e.data);
        };
        if (kind == "websocket") {
            stream.onclose = function (e) {
                if (!mine()) return;
                self._stream = null;
                detach(stream);
                self._streamEnded(kind, "WebSocket closed (" + e.code + (e.reason ? ": " + e.reason : "") + ")");
            };
        } else {
            stream.addEventListener("gap", function (e) {
                if (mine()) self._streamPart(e.data);
            });
            // Closed, refused or unreachable: reconnect ourselves, with the
            // cursors of every id (EventSource would resend the old URL).
            stream.onerror = function () {
                if (!mine()) return;
                self._stream = null;
                detach(stream);
                self._streamEnded(kind, "EventSource failed (server unreachable, refused or closed)");
            };
        }
    };

    // One message of a stream.
    proto._streamPart = function (text) {
        this._log("Received message:\n" + text);
        var part;
        try {
            part = JSON.parse(text);
            checkPart(part);
        } catch (e) {
            this._log(message(e) + "\nMessage:\n" + text, "error");
            this._status({ type: "error", message: message(e), status: 200, response: "" + text, bounceCount: this._bounceCount, retryIn: null, transport: this._streamKind });
            return;
        }
        this._bounceCount = 0;
        this._dispatch(part, now());
    };

    // A stream ended. One that had connected was cut (server restart, network,
    // proxy): reconnect at once with the cursors it got. One that never
    // connected is a bounce, counted towards the back-off and the fallback.
    proto._streamEnded = function (kind, why) {
        var delay = Math.round(this._opt.reconnectDelay * 1000), msg = why;
        var opened = this._opened;
        this._opened = false;
        this._online = false;
        this._streamIds = {};
        if (opened) {
            this._bounceCount = 0;
            this._failures = 0;
        } else {
            this._bounceCount++;
            this._failures++;
            var next = this._fallback();
            if (next) msg += "; trying " + next;
        }
        if (this._bounceCount > this._opt.maxBounces) {
            var p = this._bounceCount - this._opt.maxBounces + 2;
            delay = Math.min(60000, 1000 + 500 * p * p);
        }
        this._log(msg + "; next connection in " + delay + " ms", "error");
        this._status({ type: "error", message: msg, status: 0, response: "", bounceCount: this._bounceCount, retryIn: delay, transport: kind });
        this._prevReqTime = now();
        if (!this._running || this._xhr || this._timer || this._stream) return;
        var self = this;
        this._timer = setTimeout(function () {
            self._loop();
        }, delay);
    };

    // On an open WebSocket, sends the changes of the id set as commands:
    // subscribe the new ids (and those setCursor moved), unsubscribe the ones
    // no longer wanted. False when there is no open WebSocket to do it on.
    proto._wsUpdate = function () {
        var ws = this._stream, prefix = this._prefix(), ids = this._requestIds();
        if (!ws || this._streamKind != "websocket" || !this._opened || ws.readyState != 1) return false;
        if (prefix !== this._streamPrefix || !ids.length) return false;
        var want = {}, subs = [], drop = [], fresh = [], i, id;
        for (i = 0; i < ids.length; i++) {
            id = ids[i];
            var item = this._map[id];
            want[id] = true;
            if (own(this._streamIds, id) && !item.moved) continue;
            item.moved = false;
            subs.push(id);
            if (item.cursor == null) fresh.push(id);
        }
        for (id in this._streamIds) {
            if (own(this._streamIds, id) && !own(want, id)) drop.push(id);
        }
        try {
            for (i = 0; i < drop.length; i += WS_MAX_IDS) {
                var names = [];
                for (var j = i; j < drop.length && j < i + WS_MAX_IDS; j++) names.push(prefix + drop[j]);
                ws.send(JSON.stringify({ unsubscribe: names }));
            }
            for (i = 0; i < subs.length; i += WS_MAX_IDS) {
                var cmd = {};
                for (var k = i; k < subs.length && k < i + WS_MAX_IDS; k++) cmd[prefix + subs[k]] = this._map[subs[k]].cursor;
                ws.send(JSON.stringify({ subscribe: cmd }));
            }
        } catch (e) {
            return false;
        }
        for (i = 0; i < drop.length; i++) delete this._streamIds[drop[i]];
        for (i = 0; i < subs.length; i++) this._streamIds[subs[i]] = true;
        if (subs.length || drop.length) {
            this._log("WebSocket: subscribe " + subs.join(",") + "; unsubscribe " + drop.join(","));
        }
        this._registered(fresh, now());
        return true;
    };

    // One part: { "ids": { id: cursor, ... }, "data": ... }, or a gap notice
    // { "ids": { id: cursor, ... }, "gap": true }: messages before cursor were dropped.
    proto._dispatch = function (part, t) {
        var prefix = this._prefix();
        if (part.gap === true) {
            for (var gapId in part.ids) {
                if (!own(part.ids, gapId)) continue;
                var name = prefix && gapId.indexOf(prefix) === 0 ? gapId.substring(prefix.length) : gapId;
                var at = "" + part.ids[gapId];
                this._item(name).cursor = at;
                this._status({ type: "gap", id: name, cursor: at });
                try {
                    if (this._onGap) this._onGap(name, at);
                } catch (e) {
                    this._log("Error executing onGap for ID " + name + ": " + message(e), "error");
                }
            }
            return;
        }
        for (var wireId in part.ids) {
            if (!own(part.ids, wireId)) continue;
            var id = wireId;
            if (prefix && id.indexOf(prefix) === 0) id = id.substring(prefix.length);
            // The server's string, never a float: a float would lose digits.
            var cursor = "" + part.ids[wireId];
            var c = parseFloat(cursor);
            // A cursor the server generated tells how far its clock is ahead.
            if (c > 1e9) {
                var offset = c - t / 1000;
                if (this._serverOffset == null || offset > this._serverOffset) this._serverOffset = offset;
            }
            var item = this._item(id);
            item.cursor = cursor;
            var callbacks = item.callbacks.slice(0);
            for (var j = 0; j < callbacks.length; j++) {
                try {
                    callbacks[j](part.data, id, cursor);
                } catch (e) {
                    this._log("Error executing callback #" + j + " for ID " + id + ": " + message(e) + "\nData:\n" + dump(part.data), "error");
                    this._status({ type: "callbackError", id: id, error: e, data: part.data });
                }
            }
        }
    };

    return Dklab_Realplexor;
})();
