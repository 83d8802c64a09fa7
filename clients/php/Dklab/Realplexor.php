<?php
/**
 * Dklab_Realplexor: publisher API for the realplexor comet server (IN line).
 *
 * Same class, methods and behaviour as the original Dklab Realplexor PHP API
 * (version 1.31), rewritten to run cleanly on PHP 7 and 8: declared
 * properties, no track_errors / $php_errormsg (errors come from
 * error_get_last()), and a read timeout so a silent server cannot hang the
 * caller. Released under the MIT License.
 *
 *   $rpl = new Dklab_Realplexor("127.0.0.1", "10010", "demo_");
 *   $rpl->send(array("alpha", "beta"), array("text" => "hello"));
 *   print_r($rpl->cmdOnline());
 *
 * With $api = "http" (or Dklab_Realplexor::$defaultApi = "http") the calls go
 * to the server's HTTP API instead (POST /pub, GET /online, GET /watch) over
 * one keep-alive connection reused by every call (reopened when the server
 * closed it while idle); credentials go as Authorization: Basic, and send()
 * returns the server's reply (array("cursor" => ..., "ids" => ..., "skipped"
 * => ...)). Same methods, same exceptions (getCode() is the HTTP status).
 *
 * @version 1.50
 */
class Dklab_Realplexor
{
    /** Seconds allowed for connecting, and for each wait on the reply. */
    private $_timeout = 5;
    private $_host;
    private $_port;
    private $_namespace;
    private $_identifier;
    private $_login;
    private $_password;
    /** "legacy" (a connection per call, half-closed) or "http" (keep-alive HTTP API). */
    private $_api;
    /** The keep-alive connection of the HTTP API, and bytes read past the last reply. */
    private $_conn = null;
    private $_inbuf = "";

    /** The protocol of objects built without an explicit $api. */
    public static $defaultApi = "legacy";

    /**
     * @param string $host        Host of the IN line.
     * @param string $port        Port of the IN line (443 means ssl://, through a TLS proxy).
     * @param string $namespace   Prefix of every id, or null.
     * @param string $identifier  The server's IDENTIFIER.
     * @param string $api         "legacy" (default) or "http" (the HTTP API, keep-alive).
     */
    public function __construct($host, $port, $namespace = null, $identifier = "identifier", $api = null)
    {
        $this->_host = $host;
        $this->_port = $port;
        $this->_namespace = $namespace;
        $this->_identifier = $identifier;
        $this->_api = $api === null ? self::$defaultApi : $api;
        if ($this->_api !== "legacy" && $this->_api !== "http") {
            throw new Dklab_Realplexor_Exception("api must be \"legacy\" or \"http\", \"{$this->_api}\" given");
        }
    }

    public function __destruct()
    {
        $this->close();
    }

    /**
     * Close the keep-alive connection of the HTTP API (the next call reopens it).
     *
     * @return void
     */
    public function close()
    {
        if ($this->_conn) {
            @fclose($this->_conn);
        }
        $this->_conn = null;
        $this->_inbuf = "";
    }

    /**
     * Publish as $login: every id gets the prefix "$login_". The server
     * checks the credentials on each call, not this method.
     *
     * @param string $login
     * @param string $password
     * @return void
     */
    public function logon($login, $password)
    {
        $this->_login = $login;
        $this->_password = $password;
        $this->_namespace = $login . "_" . $this->_namespace;
    }

    /**
     * Set the timeout in seconds (connect, and each wait for reply bytes).
     *
     * @param float $seconds
     * @return void
     */
    public function setTimeout($seconds)
    {
        $this->_timeout = $seconds;
    }

    /**
     * Push $data (json_encode'd) to ids. Throws Dklab_Realplexor_Exception.
     *
     * @param mixed $idsAndCursors   array(id => cursor, ...), array(id, ...) or a single id.
     * @param mixed $data            Anything json_encode accepts.
     * @param array $showOnlyForIds  Show the message only to browsers that also listen to one of these ids.
     * @return array|null  With the HTTP API, the server's reply (cursor, ids, skipped).
     */
    public function send($idsAndCursors, $data, $showOnlyForIds = null)
    {
        $json = json_encode($data);
        $items = array();
        foreach ((array)$idsAndCursors as $key => $value) {
            // A list element is an id without a cursor; a string key is id => cursor.
            $id = is_int($key) ? $value : $key;
            $cursor = is_int($key) ? null : $value;
            if (!preg_match('/^\w+$/', (string)$id)) {
                throw new Dklab_Realplexor_Exception("Identifier must be alphanumeric, \"$id\" given");
            }
            $id = $this->_namespace . $id;
            if ($cursor === null) {
                $items[] = $id;
                continue;
            }
            if (!is_numeric($cursor)) {
                throw new Dklab_Realplexor_Exception("Cursor must be numeric, \"$cursor\" given");
            }
            $items[] = $cursor . ":" . $id;
        }
        if (is_array($showOnlyForIds)) {
            foreach ($showOnlyForIds as $id) {
                $items[] = "*" . $this->_namespace . $id;
            }
        }
        if ($this->_api === "http") {
            $target = "/pub?identifier=" . str_replace("%2C", ",", rawurlencode(implode(",", $items)));
            return json_decode($this->_http("POST", $target, $json), true);
        }
        $this->_send(implode(",", $items), $json);
        return null;
    }

    /**
     * Online ids (keys, namespace removed) and the number of browsers
     * listening to each (values, strings).
     *
     * @param array $idPrefixes  Only ids with one of these prefixes.
     * @return array
     */
    public function cmdOnlineWithCounters($idPrefixes = null)
    {
        if ($this->_api === "http") {
            $counts = json_decode($this->_http("GET", "/online?counters=1" . $this->_prefixQuery($this->_prefixes($idPrefixes))), true);
            $result = array();
            foreach ((array)$counts as $id => $n) {
                $result[$this->_stripNamespace((string)$id)] = (string)$n;
            }
            return $result;
        }
        $reply = $this->_sendCmd("online", $this->_prefixes($idPrefixes));
        $result = array();
        if (trim($reply) === "") {
            return $result;
        }
        foreach (explode("\n", $reply) as $line) {
            $fields = explode(" ", $line, 3);
            $id = $fields[0];
            if ($id === "") {
                continue;
            }
            $result[$this->_stripNamespace($id)] = isset($fields[1]) ? $fields[1] : null;
        }
        return $result;
    }

    /**
     * Online ids (namespace removed).
     *
     * @param array $idPrefixes  Only ids with one of these prefixes.
     * @return array
     */
    public function cmdOnline($idPrefixes = null)
    {
        return array_keys($this->cmdOnlineWithCounters($idPrefixes));
    }

    /**
     * Online/offline events after position $fromPos: a list of
     * array("event" => ..., "pos" => ..., "id" => ...).
     *
     * @param string $fromPos     Position to start after (0: from the start).
     * @param array $idPrefixes   Only ids with one of these prefixes.
     * @return array
     */
    public function cmdWatch($fromPos, $idPrefixes = null)
    {
        if (!$fromPos) {
            $fromPos = 0;
        }
        if (!preg_match('/^[\d.]+$/', (string)$fromPos)) {
            throw new Dklab_Realplexor_Exception("Position value must be numeric, \"$fromPos\" given");
        }
        if ($this->_api === "http") {
            $got = json_decode($this->_http("GET", "/watch?from=$fromPos" . $this->_prefixQuery($this->_prefixes($idPrefixes))), true);
            $events = array();
            foreach ((array)$got as $e) {
                $events[] = array(
                    'event' => $e['event'],
                    'pos'   => (string)$e['pos'],
                    'id'    => $fromPos ? $this->_stripNamespace($e['id']) : $e['id'],
                );
            }
            return $events;
        }
        $reply = trim($this->_sendCmd("watch $fromPos", $this->_prefixes($idPrefixes)));
        $events = array();
        if ($reply === "") {
            return $events;
        }
        foreach (explode("\n", $reply) as $line) {
            if (!preg_match('/^(\w+)\s+([^:]+):(\S+)\s*$/s', $line, $m)) {
                trigger_error("Cannot parse the event: \"$line\"");
                continue;
            }
            // Compat: like the original, ids keep the namespace for position 0
            // (whose only event is the server's FAKE one).
            $events[] = array(
                'event' => $m[1],
                'pos'   => $m[2],
                'id'    => $fromPos ? $this->_stripNamespace($m[3]) : $m[3],
            );
        }
        return $events;
    }

    private function _prefixes($idPrefixes)
    {
        $prefixes = $idPrefixes !== null ? (array)$idPrefixes : array();
        if (strlen((string)$this->_namespace)) {
            // Without a prefix the namespace still limits the answer.
            if (!$prefixes) {
                $prefixes = array("");
            }
            foreach ($prefixes as $i => $prefix) {
                $prefixes[$i] = $this->_namespace . $prefix;
            }
        }
        return $prefixes;
    }

    private function _stripNamespace($id)
    {
        $ns = (string)$this->_namespace;
        return $ns !== "" && strpos($id, $ns) === 0 ? substr($id, strlen($ns)) : $id;
    }

    private function _prefixQuery($prefixes)
    {
        return $prefixes ? "&prefix=" . str_replace("%2C", ",", rawurlencode(implode(",", $prefixes))) : "";
    }

    /**
     * One HTTP API request on the keep-alive connection; returns the 200 reply's
     * body. A connection the server closed while idle is reopened and the request
     * sent again; a request the server may have processed is never repeated.
     */
    private function _http($method, $target, $body = "")
    {
        $request = "$method $target HTTP/1.1\r\nHost: {$this->_host}\r\n";
        if ($method === "POST") {
            $request .= "Content-Length: " . strlen($body) . "\r\n";
        }
        if ($this->_login) {
            $request .= "Authorization: Basic " . base64_encode($this->_login . ":" . $this->_password) . "\r\n";
        }
        $request .= "\r\n" . $body;
        for ($attempt = 0; ; $attempt++) {
            $reused = $this->_conn !== null;
            if (!$reused) {
                $this->_connect();
            }
            try {
                $this->_writeAll($request);
                $reply = $this->_readReply();
                break;
            } catch (Dklab_Realplexor_Stale $e) {
                $this->close();
                if (!$reused || $attempt > 0) {
                    throw new Dklab_Realplexor_Exception("Connection closed by {$this->_host}:{$this->_port} before a reply");
                }
            }
        }
        list($status, $headers, $payload) = $reply;
        if (!preg_match('{^HTTP/[\d.]+ \s+ ((\d+) [^\r\n]*)}six', $status, $m)) {
            $this->close();
            throw new Dklab_Realplexor_Exception("Non-HTTP response received:\n" . $status);
        }
        if (preg_match('/^Connection:\s*close/mi', $headers)) {
            $this->close();
        }
        if ($m[2] == 413) {
            throw new Dklab_Realplexor_Exception("Request failed: " . $m[1]
                . ": message too large for the server's IN_MAXLEN (" . strlen($request) . " bytes sent)\n" . $payload, 413);
        }
        if ($m[2] != 200) {
            throw new Dklab_Realplexor_Exception("Request failed: " . $m[1] . "\n" . $payload, (int)$m[2]);
        }
        return $payload;
    }

    private function _connect()
    {
        $host = $this->_port == 443 ? "ssl://" . $this->_host : $this->_host;
        $errno = 0;
        $errstr = "";
        $f = @fsockopen($host, (int)$this->_port, $errno, $errstr, $this->_timeout);
        if (!$f) {
            throw new Dklab_Realplexor_Exception("Error #$errno: $errstr");
        }
        stream_set_timeout($f, (int)$this->_timeout, (int)(fmod($this->_timeout, 1) * 1000000));
        $this->_conn = $f;
        $this->_inbuf = "";
    }

    private function _writeAll($request)
    {
        for ($done = 0; $done < strlen($request); $done += $n) {
            $n = @fwrite($this->_conn, substr($request, $done));
            if (!$n) {
                // A connection the server closed while idle: nothing of it was read.
                throw new Dklab_Realplexor_Stale();
            }
        }
    }

    /** array(status line, headers, body) of one Content-Length reply. */
    private function _readReply()
    {
        while (($end = strpos($this->_inbuf, "\r\n\r\n")) === false) {
            $this->_readMore();
        }
        $head = substr($this->_inbuf, 0, $end);
        $this->_inbuf = (string)substr($this->_inbuf, $end + 4);
        $lines = explode("\r\n", $head, 2);
        $headers = isset($lines[1]) ? $lines[1] : "";
        if (!preg_match('/^Content-Length: \s* (\d+)/mix', $headers, $m)) {
            $this->close();
            throw new Dklab_Realplexor_Exception("No Content-Length header in response headers:\n" . $head);
        }
        while (strlen($this->_inbuf) < (int)$m[1]) {
            $this->_readMore(true);
        }
        $payload = (string)substr($this->_inbuf, 0, (int)$m[1]);
        $this->_inbuf = (string)substr($this->_inbuf, (int)$m[1]);
        return array($lines[0], $headers, $payload);
    }

    private function _readMore($started = false)
    {
        $chunk = @fread($this->_conn, 65536);
        $meta = stream_get_meta_data($this->_conn);
        if (!empty($meta['timed_out'])) {
            $this->close();
            throw new Dklab_Realplexor_Exception("Timed out after {$this->_timeout} s waiting for {$this->_host}:{$this->_port}");
        }
        if ($chunk === false || $chunk === "") {
            if ($started || $this->_inbuf !== "") {
                $this->close();
                throw new Dklab_Realplexor_Exception("Connection closed in the middle of a reply");
            }
            throw new Dklab_Realplexor_Stale();
        }
        $this->_inbuf .= $chunk;
    }

    private function _sendCmd($command, $prefixes)
    {
        return $this->_send(null, $command . ($prefixes ? " " . implode(" ", $prefixes) : "") . "\n");
    }

    /**
     * One IN request: send, half-close, read to EOF. Returns the reply body
     * ("" for an empty reply, which is how the server acknowledges a push).
     */
    private function _send($ids, $body)
    {
        $credentials = $this->_login ? $this->_login . ":" . $this->_password . "@" : "";
        $request = "POST / HTTP/1.1\r\n"
            . "Host: " . $this->_host . "\r\n"
            . "Content-Length: " . strlen($body) . "\r\n"
            . "X-Realplexor: " . $this->_identifier . "=" . $credentials . (string)$ids . "\r\n"
            . "\r\n"
            . $body;

        $host = $this->_port == 443 ? "ssl://" . $this->_host : $this->_host;
        $errno = 0;
        $errstr = "";
        $f = @fsockopen($host, (int)$this->_port, $errno, $errstr, $this->_timeout);
        if (!$f) {
            throw new Dklab_Realplexor_Exception("Error #$errno: $errstr");
        }
        try {
            stream_set_timeout($f, (int)$this->_timeout, (int)(fmod($this->_timeout, 1) * 1000000));
            $writeError = null;
            for ($done = 0; $done < strlen($request); $done += $n) {
                $n = @fwrite($f, substr($request, $done));
                if (!$n) {
                    $writeError = $this->_lastError("Cannot write to the IN line");
                    break;
                }
            }
            if ($writeError === null && !@stream_socket_shutdown($f, STREAM_SHUT_WR)) {
                $writeError = $this->_lastError("Cannot shut down the IN connection");
            }
            if ($writeError !== null) {
                // The server may answer (413 over IN_MAXLEN) and close before it has
                // read everything: report its answer rather than the broken write.
                $reply = (string)@stream_get_contents($f);
                if ($reply === "") {
                    throw new Dklab_Realplexor_Exception($writeError);
                }
                return $this->_parseReply($reply, strlen($request));
            }
            $reply = "";
            while (!feof($f)) {
                $chunk = @fread($f, 65536);
                $meta = stream_get_meta_data($f);
                if (!empty($meta['timed_out'])) {
                    throw new Dklab_Realplexor_Exception("Timed out after {$this->_timeout} s waiting for {$this->_host}:{$this->_port}");
                }
                if ($chunk === false) {
                    throw new Dklab_Realplexor_Exception($this->_lastError("Cannot read from the IN line"));
                }
                $reply .= $chunk;
            }
        } finally {
            @fclose($f);
        }
        return $this->_parseReply($reply, strlen($request));
    }

    /**
     * The body of a reply to an IN request of $sent bytes ("" for an empty reply).
     */
    private function _parseReply($reply, $sent)
    {
        if ($reply === "") {
            return $reply;
        }
        $parts = preg_split('/\r?\n\r?\n/s', $reply, 2);
        $headers = $parts[0];
        $payload = isset($parts[1]) ? $parts[1] : "";
        if (!preg_match('{^HTTP/[\d.]+ \s+ ((\d+) [^\r\n]*)}six', $headers, $m)) {
            throw new Dklab_Realplexor_Exception("Non-HTTP response received:\n" . $reply);
        }
        if ($m[2] == 413) {
            throw new Dklab_Realplexor_Exception("Request failed: " . $m[1]
                . ": message too large for the server's IN_MAXLEN ($sent bytes sent)\n" . $payload, 413);
        }
        if ($m[2] != 200) {
            throw new Dklab_Realplexor_Exception("Request failed: " . $m[1] . "\n" . $payload, (int)$m[2]);
        }
        if (!preg_match('/^Content-Length: \s* (\d+)/mix', $headers, $m)) {
            throw new Dklab_Realplexor_Exception("No Content-Length header in response headers:\n" . $headers);
        }
        if ((int)$m[1] !== strlen($payload)) {
            throw new Dklab_Realplexor_Exception("Response length (" . strlen($payload) . ") is different than specified in Content-Length header ({$m[1]}): possibly broken response\n");
        }
        return $payload;
    }

    private function _lastError($fallback)
    {
        $e = error_get_last();
        return $e && $e['message'] !== "" ? $e['message'] : $fallback;
    }
}

/**
 * Every error of Dklab_Realplexor. When the server refused the request,
 * getCode() is its HTTP status (403 bad login, 413 over IN_MAXLEN).
 */
class Dklab_Realplexor_Exception extends Exception
{
}

/**
 * Internal: the keep-alive connection was closed by the server before any
 * reply byte (it is reopened once). Never escapes Dklab_Realplexor.
 */
class Dklab_Realplexor_Stale extends Exception
{
}
