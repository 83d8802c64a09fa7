// Generated from dklab_realplexor.js by build.mjs: edit that file, then run `node build.mjs`.
/*
 * realplexor browser client: the Dklab_Realplexor API over CORS long-polling.
 * Released under the MIT License.
 *
 *   var rpl = new Dklab_Realplexor("https://rpl.example.com/", "myapp_");
 *   rpl.subscribe("chat", function (data, id, cursor) { ... });
 *   rpl.execute();
 *
 * It polls the WAIT line straight from the page with XMLHttpRequest: the
 * server must list the page's origin in ALLOWED_ORIGINS. There is no IFRAME,
 * no document.domain and no eval, so it works on https pages, across
 * unrelated hosts and with explicit ports. It is a plain script defining
 * window.Dklab_Realplexor; realplexor.mjs is the same code as an ES module.
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
        // An id list longer than this goes in a POST body instead of the URL.
        maxGetLength: 1700
    };

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
     * ignored): { onStatus, debug, maxBounces, reconnectDelay, waitTimeout,
     * identifier, maxGetLength, withCredentials }.
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
        this._item(id).cursor = cursor == null ? null : "" + cursor;
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

    // (Re)connect with the current subscriptions.
    proto.execute = function () {
        this._running = true;
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
    // "callbackError", "idle" and "stopped" events. One callback; null removes it.
    proto.onStatus = function (fn) {
        this._onStatus = typeof fn == "function" ? fn : null;
        return this;
    };

    proto._item = function (id) {
        if (!own(this._map, id)) this._map[id] = { cursor: null, callbacks: [] };
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

    // Forget the poll in flight without counting it as a bounce.
    proto._abort = function () {
        var xhr = this._xhr;
        if (this._timer) {
            clearTimeout(this._timer);
            this._timer = null;
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

    // Send one long poll.
    proto._loop = function () {
        this._timer = null;
        var ids = this._requestIds();
        if (!this._running || !ids.length) {
            if (this._running) this._status({ type: "idle" });
            return;
        }
        var prefix = this._prefix(), list = [], fresh = [];
        for (var i = 0; i < ids.length; i++) {
            var item = this._map[ids[i]];
            if (item.cursor == null) fresh.push(ids[i]);
            list.push((item.cursor != null ? item.cursor + ":" : "") + prefix + ids[i]);
        }
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
        this._status({ type: "connecting", ids: ids, method: method });
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
        if (!this._online) {
            this._online = true;
            this._status({ type: "online" });
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
            if (bounce || text !== "") {
                this._status({ type: "error", message: message(e), status: status, response: text, bounceCount: this._bounceCount, retryIn: delay });
            }
            this._prevReqTime = t;
        }
        // A callback may have called execute() or stop() already.
        if (!this._running || this._xhr || this._timer) return;
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
        for (var i = 0; i < parts.length; i++) {
            var part = parts[i];
            if (!part || typeof part != "object" || part.ids == null) {
                throw new Error("Cannot find \"ids\" property within the response part");
            }
            if (!own(part, "data") && part.gap !== true) throw new Error("Cannot find \"data\" property within the response part");
        }
        for (i = 0; i < parts.length; i++) this._dispatch(parts[i], t);
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

export { Dklab_Realplexor, Dklab_Realplexor as Realplexor };
export default Dklab_Realplexor;
