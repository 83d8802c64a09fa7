<?php
/**
 * Dklab_Realplexor against the real server: the scenarios of the original's
 * api/php/t tests, plus errors and timeouts. Every notice, warning or
 * deprecation fails the run (the point is a clean PHP 8).
 *
 *   php clients/php/tests/run.php      (uses target/debug/realplexor or $REALPLEXOR_BIN)
 */
error_reporting(E_ALL);
set_error_handler(function ($no, $str, $file, $line) {
    if (!(error_reporting() & $no)) {
        return false; // silenced with @: the client reports it itself
    }
    throw new ErrorException($str, 0, $no, $file, $line);
});
require __DIR__ . "/../Dklab/Realplexor.php";

$ROOT = realpath(__DIR__ . "/../../..");
$BIN = getenv("REALPLEXOR_BIN") ?: "$ROOT/target/debug/realplexor";

class TestServer
{
    public $wait;
    public $in;
    private $proc;
    private $dir;

    public function __construct($extra = "")
    {
        global $BIN;
        $this->dir = sys_get_temp_dir() . "/rpl-php-" . getmypid() . "-" . mt_rand();
        mkdir($this->dir);
        $conf = "$this->dir/test.conf";
        file_put_contents($conf, "\$CONFIG{WAIT_ADDR} = [ '127.0.0.1:0' ];\n"
            . "\$CONFIG{IN_ADDR} = [ '127.0.0.1:0' ];\n"
            . "\$CONFIG{SU_USER} = '';\n\$CONFIG{VERBOSITY} = 1;\n" . $extra . "return 1;\n");
        $log = "$this->dir/server.log";
        $this->proc = proc_open(array($BIN, $conf), array(0 => array("file", "/dev/null", "r"),
            1 => array("file", $log, "w"), 2 => array("file", $log, "w")), $pipes);
        $deadline = microtime(true) + 10;
        for (;;) {
            $text = (string)@file_get_contents($log);
            if (preg_match('/WAIT: listening [\d.]+:(\d+)/', $text, $w) && preg_match('/IN: listening [\d.]+:(\d+)/', $text, $i)) {
                $this->wait = (int)$w[1];
                $this->in = (int)$i[1];
                return;
            }
            if (microtime(true) > $deadline || !proc_get_status($this->proc)['running']) {
                $this->stop();
                throw new Exception("realplexor did not start:\n$text");
            }
            usleep(20000);
        }
    }

    public function dir()
    {
        return $this->dir;
    }

    /** A registered WAIT connection listening to $ids. */
    public function listen($ids)
    {
        $s = stream_socket_client("tcp://127.0.0.1:$this->wait", $errno, $errstr, 5);
        stream_set_timeout($s, 5);
        fwrite($s, "GET /?identifier=$ids HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        $buf = "";
        while (strpos($buf, "\r\n\r\n \r\n") === false) {
            $chunk = fread($s, 4096);
            if ($chunk === "" || $chunk === false) {
                throw new Exception("WAIT closed before registering: $buf");
            }
            $buf .= $chunk;
        }
        return (object)array("s" => $s, "buf" => $buf);
    }

    public function stop()
    {
        if ($this->proc) {
            proc_terminate($this->proc);
            proc_close($this->proc);
            $this->proc = null;
        }
        if ($this->dir) {
            array_map("unlink", glob("$this->dir/*"));
            rmdir($this->dir);
            $this->dir = null;
        }
    }
}

/** Reads a WAIT reply to EOF; returns array of [ids => cursors, data text]. */
function blocks($w)
{
    $all = $w->buf . stream_get_contents($w->s);
    fclose($w->s);
    preg_match_all('/"ids": \{ (.*?) \},\n    "data":[ \n](.*?)\n  \}/s', $all, $m, PREG_SET_ORDER);
    $out = array();
    foreach ($m as $b) {
        preg_match_all('/"(\w+)": "([\d.]+)"/', $b[1], $ids);
        $out[] = array(array_combine($ids[1], $ids[2]), $b[2]);
    }
    return $out;
}

function check($cond, $what)
{
    if (!$cond) {
        throw new Exception("check failed: $what");
    }
}

function same($got, $want)
{
    check($got === $want, "got " . var_export($got, true) . ", want " . var_export($want, true));
}

function throws($fn, $message)
{
    try {
        $fn();
    } catch (Dklab_Realplexor_Exception $e) {
        same($e->getMessage(), $message);
        return;
    }
    throw new Exception("no exception, want: $message");
}

function loginConf(TestServer $dummy = null)
{
    $file = sys_get_temp_dir() . "/rpl-php-users-" . getmypid();
    file_put_contents($file, "user:" . crypt("password", '$6$rplphp$') . "\n");
    return "\$CONFIG{USERS_FILE} = '$file';\n";
}

/**
 * A one-shot fake IN line in a child process: it answers $reply once the
 * request is read to EOF, or with $answerAfter as soon as that many bytes
 * have arrived (closing with the rest unread, as the server does past
 * IN_MAXLEN). Returns array(port, process).
 */
function fakeInLine($reply, $answerAfter = 0)
{
    $code = '$srv = stream_socket_server("tcp://127.0.0.1:0");'
        . 'echo substr(strrchr(stream_socket_get_name($srv, false), ":"), 1), "\n";'
        . '$c = stream_socket_accept($srv, 10);'
        . 'stream_set_timeout($c, 5);'
        . '$limit = (int)$argv[2]; $got = 0;'
        . 'while (!$limit || $got < $limit) {'
        . '  $chunk = fread($c, 65536);'
        . '  if ($chunk === "" || $chunk === false) { break; }'
        . '  $got += strlen($chunk);'
        . '}'
        . 'fwrite($c, base64_decode($argv[1]));'
        . 'fclose($c);';
    $proc = proc_open(array(PHP_BINARY, "-r", $code, base64_encode($reply), (string)$answerAfter),
        array(0 => array("file", "/dev/null", "r"), 1 => array("pipe", "w"), 2 => STDERR), $pipes);
    $port = (int)trim((string)fgets($pipes[1]));
    fclose($pipes[1]);
    check($port > 0, "fake IN line started");
    return array($port, $proc);
}

$TOO_LARGE = "HTTP/1.0 413 Request Entity Too Large\r\nContent-Type: text/plain\r\n"
    . "Content-Length: 24\r\n\r\nmore than IN_MAXLEN=100\n";

/** The exception $fn throws (a Dklab_Realplexor_Exception), or a failure. */
function caught($fn)
{
    try {
        $fn();
    } catch (Dklab_Realplexor_Exception $e) {
        return $e;
    }
    throw new Exception("no exception");
}

$tests = array(
    "500 send json" => function ($s) {
        $w = $s->listen("abc");
        (new Dklab_Realplexor("127.0.0.1", $s->in))->send(array("abc", "def"), "Test!");
        $b = blocks($w);
        same(count($b), 1);
        same(array_keys($b[0][0]), array("abc"));
        same($b[0][1], '"Test!"');
    },
    "505 namespace" => function ($s) {
        $w = $s->listen("ns_abc");
        (new Dklab_Realplexor("127.0.0.1", $s->in, "ns_"))->send(array("abc", "def"), "Test!");
        same(array_keys(blocks($w)[0][0]), array("ns_abc"));
    },
    "505 namespace, limited visibility" => function ($s) {
        $rpl = new Dklab_Realplexor("127.0.0.1", $s->in, "ns_");
        $rpl->send(array("abc" => 10, "def" => 10), "public data");
        $rpl->send(array("abc" => 11, "def" => 11), "private data", array("myid1", "myid2"));
        same(blocks($s->listen("5:ns_abc")), array(array(array("ns_abc" => "10"), '"public data"')));
        same(blocks($s->listen("5:ns_abc,666:ns_myid1")), array(
            array(array("ns_abc" => "10"), '"public data"'),
            array(array("ns_abc" => "11"), '"private data"'),
        ));
    },
    "520 cursors" => function ($s) {
        $w = $s->listen("5:abc");
        (new Dklab_Realplexor("127.0.0.1", $s->in))->send(array("abc" => 10, "def" => 20, "ghi"), "Test!");
        same(blocks($w), array(array(array("abc" => "10"), '"Test!"')));
    },
    "single id as a string, structured data" => function ($s) {
        $w = $s->listen("one");
        (new Dklab_Realplexor("127.0.0.1", $s->in))->send("one", array("a" => array(1, 2)));
        same(blocks($w)[0][1], '{"a":[1,2]}');
    },
    "530 errors" => function ($s) {
        $probe = stream_socket_server("tcp://127.0.0.1:0");
        $port = (int)substr(strrchr(stream_socket_get_name($probe, false), ":"), 1);
        fclose($probe);
        throws(function () use ($port) {
            (new Dklab_Realplexor("127.0.0.1", $port))->send("abc", "x");
        }, "Error #111: Connection refused");
        $rpl = new Dklab_Realplexor("127.0.0.1", $s->in);
        throws(function () use ($rpl) {
            $rpl->send(array("no-num"), "x");
        }, 'Identifier must be alphanumeric, "no-num" given');
        throws(function () use ($rpl) {
            $rpl->send(array("abc" => "aaa"), "x");
        }, 'Cursor must be numeric, "aaa" given');
        throws(function () use ($rpl) {
            $rpl->cmdWatch("x");
        }, 'Position value must be numeric, "x" given');
    },
    "540 online" => function ($s) {
        $w = $s->listen("5:abc,10:def");
        $got = (new Dklab_Realplexor("127.0.0.1", $s->in))->cmdOnline();
        sort($got);
        same($got, array("abc", "def"));
    },
    "541 online with counters" => function ($s) {
        $w = $s->listen("5:abc,10:def,6:abc");
        $got = (new Dklab_Realplexor("127.0.0.1", $s->in))->cmdOnlineWithCounters();
        ksort($got);
        same($got, array("abc" => "1", "def" => "1"));
    },
    "542 online, empty" => function ($s) {
        same((new Dklab_Realplexor("127.0.0.1", $s->in))->cmdOnline(), array());
    },
    "545 online prefix, namespace; 547 no match" => function ($s) {
        $w = $s->listen("5:ns_A_abc,10:def,20:ns_B_ghi,5:A_x");
        $got = (new Dklab_Realplexor("127.0.0.1", $s->in, "ns_"))->cmdOnline(array("A_", "B_"));
        sort($got);
        same($got, array("A_abc", "B_ghi"));
        same((new Dklab_Realplexor("127.0.0.1", $s->in))->cmdOnline(array("A_")), array("A_x"));
        same((new Dklab_Realplexor("127.0.0.1", $s->in))->cmdOnline(array("xxx_")), array());
    },
    "560 watch" => function ($s) {
        fclose($s->listen("abc")->s);
        fclose($s->listen("def")->s);
        $got = (new Dklab_Realplexor("127.0.0.1", $s->in))->cmdWatch(1);
        same(count($got), 2);
        same(array($got[0]['event'], $got[0]['id'], $got[1]['event'], $got[1]['id']), array("online", "abc", "online", "def"));
        check(preg_match('/^[\d.]+$/', $got[1]['pos']) === 1, "numeric pos");
    },
    "562 watch, empty" => function ($s) {
        same((new Dklab_Realplexor("127.0.0.1", $s->in))->cmdWatch(0), array(array('event' => 'FAKE', 'pos' => '10', 'id' => 'FAKE')));
    },
    "562/564 watch, namespace and prefix" => function ($s) {
        foreach (array("ns_demo_abc", "def", "ns_ghi") as $id) {
            fclose($s->listen($id)->s);
        }
        $rpl = new Dklab_Realplexor("127.0.0.1", $s->in, "ns_");
        same(array_map(function ($e) { return $e['id']; }, $rpl->cmdWatch(1)), array("demo_abc", "ghi"));
        same(array_map(function ($e) { return $e['id']; }, $rpl->cmdWatch(1, array("demo_"))), array("demo_abc"));
    },
    "600/610/620 login" => array(loginConf(), function ($s) {
        $w = $s->listen("5:user_abc,10:user_ns_def");
        $rpl = new Dklab_Realplexor("127.0.0.1", $s->in);
        $rpl->logon("user", "password");
        $got = $rpl->cmdOnline();
        sort($got);
        same($got, array("abc", "ns_def"));
        $rpl->send(array("abc", "def"), "Test!");
        $b = blocks($w);
        same(array_keys($b[0][0]), array("user_abc"));
        $w = $s->listen("user_ns_abc");
        $rpl = new Dklab_Realplexor("127.0.0.1", $s->in, "ns_");
        $rpl->logon("user", "password");
        $rpl->send("abc", "x");
        same(array_keys(blocks($w)[0][0]), array("user_ns_abc"));
    }),
    "605 login invalid" => array(loginConf(), function ($s) {
        $rpl = new Dklab_Realplexor("127.0.0.1", $s->in);
        $rpl->logon("unknown", "password");
        throws(function () use ($rpl) {
            $rpl->send(array("abc", "def"), "Test!");
        }, "Request failed: 403 Access Deined\nunknown login: unknown\n");
    }),
    "413 reply raises a clear too-large error" => function ($s) {
        global $TOO_LARGE;
        list($port, $proc) = fakeInLine($TOO_LARGE);
        $e = caught(function () use ($port) {
            (new Dklab_Realplexor("127.0.0.1", $port))->send("abc", str_repeat("x", 200));
        });
        proc_close($proc);
        same($e->getCode(), 413);
        check(preg_match("/^Request failed: 413 Request Entity Too Large: message too large for the server's IN_MAXLEN \\(\\d+ bytes sent\\)\nmore than IN_MAXLEN=100\n\$/", $e->getMessage()) === 1,
            "413 message: " . $e->getMessage());
    },
    "413 sent before the request is read is not a write error" => function ($s) {
        global $TOO_LARGE;
        // The server answers as soon as IN_MAXLEN is passed and closes with the rest
        // unread: the client's write fails, yet the 413 is what it must report.
        list($port, $proc) = fakeInLine($TOO_LARGE, 1000);
        $e = caught(function () use ($port) {
            (new Dklab_Realplexor("127.0.0.1", $port))->send("abc", str_repeat("x", 8 << 20));
        });
        proc_close($proc);
        same($e->getCode(), 413);
        check(strpos($e->getMessage(), "IN_MAXLEN") !== false, "413 message: " . $e->getMessage());
    },
    "other statuses carry their code" => function ($s) {
        list($port, $proc) = fakeInLine("HTTP/1.0 500 Oops\r\nContent-Length: 4\r\n\r\nbad\n");
        $e = caught(function () use ($port) {
            (new Dklab_Realplexor("127.0.0.1", $port))->cmdOnline();
        });
        proc_close($proc);
        same($e->getMessage(), "Request failed: 500 Oops\nbad\n");
        same($e->getCode(), 500);
    },
    "timeout on a silent IN line" => function ($s) {
        $silent = stream_socket_server("tcp://127.0.0.1:0");
        $port = (int)substr(strrchr(stream_socket_get_name($silent, false), ":"), 1);
        $rpl = new Dklab_Realplexor("127.0.0.1", $port);
        $rpl->setTimeout(0.5);
        $t = microtime(true);
        throws(function () use ($rpl) {
            $rpl->cmdOnline();
        }, "Timed out after 0.5 s waiting for 127.0.0.1:$port");
        check(microtime(true) - $t < 3, "bounded wait");
        fclose($silent);
    },
);

/** The scenarios above that run again with the HTTP API (same methods, same results). */
$shared = array("500 send json", "505 namespace", "505 namespace, limited visibility", "520 cursors",
    "single id as a string, structured data", "530 errors", "540 online", "541 online with counters",
    "542 online, empty", "545 online prefix, namespace; 547 no match", "560 watch", "562 watch, empty",
    "562/564 watch, namespace and prefix", "600/610/620 login", "timeout on a silent IN line");
foreach ($shared as $name) {
    $test = $tests[$name];
    $extra = is_array($test) ? $test[0] : "";
    $fn = is_array($test) ? $test[1] : $test;
    $tests["http: $name"] = array($extra, function ($s) use ($fn) {
        Dklab_Realplexor::$defaultApi = "http";
        try {
            $fn($s);
        } finally {
            Dklab_Realplexor::$defaultApi = "legacy";
        }
    });
}

/** A private member of a client, for checks on its connection. */
function member($rpl, $name)
{
    $p = new ReflectionProperty("Dklab_Realplexor", $name);
    $p->setAccessible(true);
    return $p->getValue($rpl);
}

$tests["http: one keep-alive connection for many sends"] = function ($s) {
    $w = $s->listen("abc");
    $rpl = new Dklab_Realplexor("127.0.0.1", $s->in, null, "identifier", "http");
    $cursors = array();
    for ($i = 0; $i < 10; $i++) {
        $reply = $rpl->send("zz$i", $i);
        $cursors[] = $reply["cursor"];
        if ($i === 0) {
            $conn = member($rpl, "_conn");
        }
    }
    check(member($rpl, "_conn") === $conn, "the connection was reused");
    $sorted = $cursors;
    usort($sorted, function ($a, $b) { return $a <=> $b; });
    same($cursors, $sorted);
    $reply = $rpl->send(array("abc", "def"), "last");
    same(array_keys($reply["ids"]), array("abc", "def"));
    same($reply["skipped"], array());
    same(blocks($w)[0][0], array("abc" => $reply["ids"]["abc"]));
    same(preg_match_all('/IN: [\d.:]+: DEBUG: connection opened/', file_get_contents($s->dir() . "/server.log")), 1);
    $rpl->close();
    same(member($rpl, "_conn"), null);
};
$tests["http: reopens a connection the server closed while idle"] = array("\$CONFIG{IN_TIMEOUT} = 1;\n", function ($s) {
    $rpl = new Dklab_Realplexor("127.0.0.1", $s->in, null, "identifier", "http");
    $rpl->send("a", 1);
    usleep(1600000);
    $rpl->send("a", 2);
    same($rpl->cmdOnline(), array());
});
$tests["http: refusals carry their status"] = array(loginConf(), function ($s) {
    $rpl = new Dklab_Realplexor("127.0.0.1", $s->in, null, "identifier", "http");
    $e = caught(function () use ($rpl) {
        $rpl->send("abc", "x");
    });
    same($e->getCode(), 401);
    check(strpos($e->getMessage(), "Request failed: 401 Unauthorized\naccess denied for guest user") === 0, $e->getMessage());
    $rpl->logon("unknown", "password");
    $e = caught(function () use ($rpl) {
        $rpl->send("abc", "x");
    });
    same($e->getMessage(), "Request failed: 401 Unauthorized\nunknown login: unknown\n");
});
$tests["http: 413 over IN_MAXLEN, then a new connection"] = array("\$CONFIG{IN_MAXLEN} = 100;\n", function ($s) {
    $rpl = new Dklab_Realplexor("127.0.0.1", $s->in, null, "identifier", "http");
    $e = caught(function () use ($rpl) {
        $rpl->send("abc", str_repeat("x", 200));
    });
    same($e->getCode(), 413);
    check(strpos($e->getMessage(), "IN_MAXLEN (100 bytes)") !== false, $e->getMessage());
    same(array_keys($rpl->send("abc", "small")["ids"]), array("abc"));
    throws(function () {
        new Dklab_Realplexor("127.0.0.1", 1, null, "identifier", "bogus");
    }, 'api must be "legacy" or "http", "bogus" given');
});

$passed = 0;
$failed = 0;
foreach ($tests as $name => $test) {
    $extra = is_array($test) ? $test[0] : "";
    $fn = is_array($test) ? $test[1] : $test;
    $server = null;
    try {
        $server = new TestServer($extra);
        $fn($server);
        echo "ok - $name\n";
        $passed++;
    } catch (Throwable $e) {
        echo "not ok - $name: " . get_class($e) . ": " . $e->getMessage() . " (" . basename($e->getFile()) . ":" . $e->getLine() . ")\n";
        $failed++;
    }
    if ($server) {
        $server->stop();
    }
}
@unlink(sys_get_temp_dir() . "/rpl-php-users-" . getmypid());
echo "$passed passed, $failed failed\n";
exit($failed ? 1 : 0);
