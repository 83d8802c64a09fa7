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

    /**
     * @param string $host        Host of the IN line.
     * @param string $port        Port of the IN line (443 means ssl://, through a TLS proxy).
     * @param string $namespace   Prefix of every id, or null.
     * @param string $identifier  The server's IDENTIFIER.
     */
    public function __construct($host, $port, $namespace = null, $identifier = "identifier")
    {
        $this->_host = $host;
        $this->_port = $port;
        $this->_namespace = $namespace;
        $this->_identifier = $identifier;
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
     * @return void
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
        $this->_send(implode(",", $items), $json);
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
