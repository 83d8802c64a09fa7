/*
 * realplexor: browser client for the comet server, served for the SCRIPT
 * marker id. Released under the MIT License.
 *
 *   var rpl = new Dklab_Realplexor("http://rpl.example.com/", "myapp_");
 *   rpl.subscribe("chat", function (data, id, cursor) { ... });
 *   rpl.execute();
 *
 * The client loads a hidden IFRAME from the realplexor host and lets the
 * loader inside it do the long polling (both documents share
 * document.domain). When that IFRAME cannot be scripted, as happens on
 * https pages or with an unrelated host, the client polls the WAIT line
 * itself with XMLHttpRequest, which needs CORS headers on the server reply.
 */
var Dklab_Realplexor = (function () {
    "use strict";

    var VERSION = "1.32";
    var iframeSerial = 0;

    function own(obj, key) {
        return Object.prototype.hasOwnProperty.call(obj, key);
    }
    function now() {
        return new Date().getTime();
    }
    function escapeAttr(s) {
        return ("" + s).replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
    }
    function consoleSay(kind, msg) {
        var c = typeof window != "undefined" ? window.console : null;
        if (!c) return;
        try {
            if (c[kind]) c[kind](msg);
            else if (c.log) c.log(msg);
        } catch (e) {
            // Logging must never break the client.
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

    // Constructor.
    function Dklab_Realplexor(fullUrl, namespace, viaDocumentWrite) {
        var m = /^\w+:\/\/([^\/?#]+)/.exec("" + fullUrl);
        if (!m) {
            throw "Dklab_Realplexor constructor argument must be fully-qualified URL, " + fullUrl + " given.";
        }
        // Host names without credentials and port.
        var rplHost = m[1].replace(/^.*@/, "").replace(/:\d*$/, "").toLowerCase();
        var host = ("" + document.location.hostname).toLowerCase();

        this.version = VERSION;
        this._map = {};
        this._realplexor = null;
        this._namespace = namespace;
        this._login = null;
        this._fullUrl = "" + fullUrl;
        this._iframeLoadSeen = false;
        this._executeTimer = null;
        this._fallbackReason = null;

        var id = "mpl" + now();
        while (Dklab_Realplexor._registry[id]) id = "mpl" + now() + "_" + (++iframeSerial);
        this._iframeId = id;
        this._iframeSrc = this._fullUrl + "?identifier=IFRAME&HOST=" + encodeURIComponent(host) + "&version=" + VERSION;
        Dklab_Realplexor._registry[id] = this;

        // The IFRAME can only be scripted when both documents can agree on a
        // document.domain: the same host or one of its sub-domains.
        var related = rplHost == host ||
            (rplHost.length > host.length && rplHost.substring(rplHost.length - host.length - 1) == "." + host);
        if (!related) {
            this._iframeCreated = true; // no IFRAME at all
            this._fallbackReason = "realplexor host " + rplHost + " is not " + host + " or its sub-domain";
            return;
        }
        this._iframeCreated = false;

        // Let the realplexor IFRAME and this page reach each other.
        // Browsers with origin-keyed pages ignore this; the fallback covers them.
        try {
            document.domain = host;
        } catch (e) {
            // Old browsers refuse some values; the fallback covers them too.
        }

        if (viaDocumentWrite) {
            document.write(
                '<iframe id="' + id + '"' +
                ' onload="Dklab_Realplexor._iframeLoaded(&quot;' + id + '&quot;)"' +
                ' src="' + escapeAttr(this._iframeSrc) + '"' +
                ' style="' + Dklab_Realplexor._iframeStyle + '"></iframe>'
            );
            this._iframeCreated = true;
        }
    }

    Dklab_Realplexor.VERSION = VERSION;
    Dklab_Realplexor._registry = {};
    Dklab_Realplexor._iframeStyle =
        "position:absolute; visibility:hidden; width:200px; height:200px; left:-1000px; top:-1000px";

    // Set to true to log the direct (fallback) poller's activity.
    Dklab_Realplexor.DEBUG = false;

    // Called from the IFRAME's load event.
    Dklab_Realplexor._iframeLoaded = function (id) {
        var th = Dklab_Realplexor._registry[id];
        if (!th || th._iframeLoadSeen) return;
        th._iframeLoadSeen = true;
        // Give the loader's script a moment before we look for it.
        setTimeout(function () {
            th._attachLoader();
        }, 50);
    };

    // Calls func with args; returns null, or the exception as a string.
    // The loader calls page callbacks through this, because old IE could
    // not catch exceptions thrown across frames.
    Dklab_Realplexor._callAndReturnException = function (func, args) {
        try {
            func.apply(null, args);
            return null;
        } catch (e) {
            return "" + e;
        }
    };

    var proto = Dklab_Realplexor.prototype;

    // Set the login; it prefixes every id as login + "_".
    proto.logon = function (login) {
        this._login = login;
        return this;
    };

    // Listen to an id from this cursor on.
    proto.setCursor = function (id, cursor) {
        if (!this._map[id]) this._map[id] = { cursor: null, callbacks: [] };
        this._map[id].cursor = cursor;
        return this;
    };

    // Add a callback for an id; call execute() afterwards to reconnect.
    proto.subscribe = function (id, callback) {
        if (!this._map[id]) this._map[id] = { cursor: null, callbacks: [] };
        var list = this._map[id].callbacks;
        for (var i = 0; i < list.length; i++) {
            if (list[i] === callback) return this;
        }
        list.push(callback);
        return this;
    };

    // Remove a callback (or all of them when callback is null). Takes effect
    // at once: ids without callbacks are left out of the next poll.
    proto.unsubscribe = function (id, callback) {
        var item = this._map[id];
        if (!item) return this;
        if (callback == null) {
            item.callbacks = [];
            return this;
        }
        for (var i = 0; i < item.callbacks.length; i++) {
            if (item.callbacks[i] === callback) {
                item.callbacks.splice(i, 1);
                break;
            }
        }
        return this;
    };

    // (Re)connect and listen to every subscribed id.
    proto.execute = function () {
        if (this._executeTimer) {
            clearTimeout(this._executeTimer);
            this._executeTimer = null;
        }
        if (!this._realplexor && this._createIframe()) this._attachLoader();
        if (!this._realplexor) {
            // Not ready yet: try again shortly.
            var th = this;
            this._executeTimer = setTimeout(function () {
                th._executeTimer = null;
                th.execute();
            }, 30);
            return this;
        }
        this._realplexor.execute(
            this._map,
            Dklab_Realplexor._callAndReturnException,
            (this._login != null ? this._login + "_" : "") + (this._namespace != null ? this._namespace : "")
        );
        return this;
    };

    // Insert the IFRAME unless it exists; false if the page has no body yet.
    proto._createIframe = function () {
        if (this._iframeCreated) return true;
        if (!document.body) return false;
        var iframe = document.createElement("iframe");
        var id = this._iframeId;
        iframe.id = id;
        iframe.style.cssText = Dklab_Realplexor._iframeStyle;
        iframe.onload = function () {
            Dklab_Realplexor._iframeLoaded(id);
        };
        iframe.src = this._iframeSrc;
        var div = document.createElement("div");
        div.appendChild(iframe);
        document.body.appendChild(div);
        this._iframeCreated = true;
        return true;
    };

    // Look for the loader inside the IFRAME; true once a poller is set.
    proto._attachLoader = function () {
        if (this._realplexor) return true;
        if (this._fallbackReason) return this._useFallback(this._fallbackReason);
        var iframe = document.getElementById(this._iframeId);
        if (!iframe) return false;
        var loader = null, problem = null;
        try {
            loader = iframe.contentWindow.Dklab_Realplexor_Loader;
        } catch (e) {
            problem = e; // typically a cross-origin SecurityError
        }
        if (loader) {
            this._realplexor = loader;
            return true;
        }
        // Before the load event the IFRAME may simply not be ready yet.
        if (!this._iframeLoadSeen) return false;
        return this._useFallback(problem ?
            "IFRAME loader is not reachable (" + (problem.name || problem) + ")" :
            "IFRAME loader was not found");
    };

    // Switch to polling the WAIT line straight from this page.
    proto._useFallback = function (reason) {
        this._realplexor = new DirectPoller(this._fullUrl);
        consoleSay("warn", "Dklab_Realplexor: " + reason + "; polling " + this._fullUrl + " directly (needs CORS)");
        return true;
    };

    // Long-polling client run in this page: the same protocol as the
    // IFRAME loader, with the stock server settings.
    function DirectPoller(url) {
        this.JS_WAIT_URI = url;
        this._ids = {};
    }

    DirectPoller.prototype = {
        JS_MAX_BOUNCES: 10,
        JS_WAIT_RECONNECT_DELAY: 0.01,
        JS_WAIT_TIMEOUT: 300,
        JS_IDENTIFIER: "identifier",

        _bounceCount: 0,
        _namespace: null,
        _prevReqTime: null,
        _lastXmlhttp: null,
        _timer: null,
        _callAndReturnException: Dklab_Realplexor._callAndReturnException,

        _getXmlHttp: function () {
            return typeof XMLHttpRequest != "undefined" ? new XMLHttpRequest() : null;
        },

        _log: function (msg, kind) {
            if (Dklab_Realplexor.DEBUG) consoleSay(kind || "log", msg);
        },

        _error: function (prefix, msg) {
            this._log(prefix, "error");
            if (msg != null) this._log(msg);
        },

        _makeRequestId: function () {
            var list = [], prefix = this._namespace || "";
            for (var id in this._ids) {
                if (!own(this._ids, id)) continue;
                var item = this._ids[id];
                if (!item || !item.callbacks || !item.callbacks.length) continue;
                list.push((item.cursor != null ? item.cursor + ":" : "") + prefix + id);
            }
            return list.join(",");
        },

        _abort: function () {
            var xhr = this._lastXmlhttp;
            if (!xhr) return;
            this._lastXmlhttp = null;
            xhr.onreadystatechange = function () {};
            try {
                xhr.abort();
            } catch (e) {
                // Nothing to do.
            }
        },

        _loopFunc: function () {
            this._timer = null;
            var requestId = this._makeRequestId();
            if (!requestId.length) return;

            var idParam = this.JS_IDENTIFIER + "=" + requestId;
            var uri = this.JS_WAIT_URI, method = "GET", body = null;
            if (idParam.length + uri.length < 1700) {
                uri += (uri.indexOf("?") < 0 ? "?" : "&") + idParam + "&ncrnd=" + now();
            } else {
                // The server needs a character after the list: end with "\n".
                method = "POST";
                body = idParam + "\n";
            }

            var xhr = this._getXmlHttp();
            if (!xhr) {
                this._error("No XMLHttpRequest found!");
                return;
            }
            var self = this;
            xhr.open(method, uri, true);
            xhr.onreadystatechange = function () {
                if (xhr.readyState != 4 || self._lastXmlhttp !== xhr) return;
                self._lastXmlhttp = null;
                self._onresponse("" + (xhr.responseText == null ? "" : xhr.responseText));
            };
            this._lastXmlhttp = xhr;
            this._prevReqTime = now();
            try {
                xhr.send(body);
            } catch (e) {
                if (this._lastXmlhttp === xhr) {
                    this._lastXmlhttp = null;
                    this._onresponse("");
                }
            }
        },

        _onresponse: function (text) {
            var delay = Math.round(this.JS_WAIT_RECONNECT_DELAY * 1000);
            if (!document.body) return; // page is unloading

            try {
                if (/^\s*$/.test(text)) {
                    text = "";
                    throw "Empty response";
                }
                this._processResponseText(text);
                this._bounceCount = 0;
            } catch (e) {
                var t = now();
                if (t - this._prevReqTime < this.JS_WAIT_TIMEOUT * 1000 / 2) {
                    this._bounceCount++;
                    this._log("Bounce detected (bounceCount = " + this._bounceCount + ")");
                } else {
                    this._log("Disconnect detected");
                }
                if (text !== "") {
                    this._error(e && e.message ? e.message : "" + e, "Response:\n" + text);
                }
                this._prevReqTime = t;
            }

            if (this._bounceCount > this.JS_MAX_BOUNCES) {
                var p = this._bounceCount - this.JS_MAX_BOUNCES + 2;
                delay = Math.min(60000, 1000 + 500 * p * p);
            }

            if (this._lastXmlhttp || this._timer) return;
            this._log("Next query in " + delay + " ms");
            var self = this;
            this._timer = setTimeout(function () {
                self._loopFunc();
            }, delay);
        },

        _processResponseText: function (text) {
            var start = text.indexOf("[");
            if (start > 0) text = text.substring(start);
            this._log("Received response:\n" + text);
            if (!/^\s*\[[\s\S]*\]\s*$/.test(text)) {
                throw "Response is not a complete JSON";
            }
            var parts = JSON.parse(text);
            for (var i = 0; i < parts.length; i++) {
                this._processPart(parts[i]);
            }
        },

        _processPart: function (part) {
            if (!part || part.ids == null) {
                throw "Cannot find \"ids\" property within the response part";
            }
            if (typeof part.data == "undefined") {
                throw "Cannot find \"data\" property within the response part";
            }
            var data = part.data, prefix = this._namespace;
            for (var wireId in part.ids) {
                if (!own(part.ids, wireId)) continue;
                var id = wireId;
                if (prefix && id.indexOf(prefix) === 0) id = id.substring(prefix.length);
                var item = this._ids[id];
                if (!item) item = this._ids[id] = { cursor: null, callbacks: [] };
                item.cursor = "" + part.ids[wireId]; // string: keeps every digit
                var callbacks = item.callbacks.slice(0);
                for (var j = 0; j < callbacks.length; j++) {
                    var err = this._callAndReturnException(callbacks[j], [data, id, item.cursor]);
                    if (err) {
                        this._error("Error executing callback #" + j + " for ID " + id + ": " + err, "Data:\n" + dump(data));
                    }
                }
            }
        },

        execute: function (ids, callAndReturnException, namespace) {
            this._abort();
            if (this._timer) {
                clearTimeout(this._timer);
                this._timer = null;
            }
            this._namespace = namespace && ("" + namespace).length ? "" + namespace : null;
            this._ids = ids || {};
            this._callAndReturnException = callAndReturnException || Dklab_Realplexor._callAndReturnException;
            this._loopFunc();
        }
    };

    Dklab_Realplexor._DirectPoller = DirectPoller;

    return Dklab_Realplexor;
})();
