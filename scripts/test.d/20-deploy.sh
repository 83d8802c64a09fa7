#!/usr/bin/env bash
# Deployment test: the shipped conf/ files and scripts/tune-host, against the real binary.
#
#  1. the server (--foreground, as systemd runs it) on ephemeral loopback ports;
#  2. a real nginx with conf/nginx-realplexor.conf, changed only in its two addresses:
#     a long-poll through it must get the header block before anything is pushed, then
#     the data pushed while it is open (fails with `proxy_buffering on`); an SSE client
#     gets its head, a ping and the pushed event as they come; a WebSocket client gets its
#     101, a pushed message and, after a subscribe command sent through nginx, a message
#     for that id; the Python client's listen() (SSE, chunked by nginx) gets a push too; a
#     poll nobody answers gets the WAIT_TIMEOUT reply, properly ended; a second nginx in
#     front of a fake upstream shows the request nginx sends: HTTP/1.1, Connection: close
#     (no Upgrade), the forwarded headers;
#  3. conf/dklab_realplexor.init: start, status, reload, restart, stop on a temp pid prefix;
#  4. systemd-analyze verify (and the offline security score) on conf/realplexor.service;
#  5. bash -n on the scripts and a dry run of scripts/tune-host.
#
# Needs the Debian packages in scripts/deps/deploy.txt. A missing tool skips the test,
# except with CI=true, where it fails. Everything started here is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/scripts/test.d

fail() {
    echo "20-deploy: FAIL: $*" >&2
    exit 1
}
missing() {
    if [ "${CI:-}" = true ]; then fail "$1 is missing (scripts/deps/deploy.txt)"; fi
    echo "20-deploy: SKIP: $1 is missing (install scripts/deps/deploy.txt)"
    exit 0
}

NGINX=$(command -v nginx || true)
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; } || missing nginx
command -v python3 >/dev/null || missing python3
command -v setsid >/dev/null || missing setsid
command -v timeout >/dev/null || missing timeout
ANALYZE=$(command -v systemd-analyze || true)
[ -n "$ANALYZE" ] || [ "${CI:-}" != true ] || fail "systemd-analyze is missing (package systemd)"

BIN=${REALPLEXOR_BIN:-$ROOT/target/debug/realplexor}
if [ ! -x "$BIN" ]; then
    timeout 900 cargo build
fi
[ -x "$BIN" ] || fail "$BIN not built"

T=$(mktemp -d /tmp/rp-deploy.XXXXXX)
chmod 755 "$T" # nginx workers run as nobody when we are root
pids=()
cleanup() {
    local pid i
    # The init-script server, if a check stopped half-way.
    if [ -s "$T/rp_init.conf.pid" ]; then pids+=("$(cat "$T/rp_init.conf.pid")"); fi
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || continue
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT

client() { timeout 60 python3 "$HERE/deploy_client.py" "$@"; }

# Waits up to $3 s for a line matching $2 in file $1.
wait_log() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "--- $1:" >&2
    tail -n 20 "$1" >&2 || true
    fail "no '$2' in $1 after $3 s"
}

# "WAIT: listening 127.0.0.1:PORT" -> PORT
port_of() { sed -n "s/.*$2: listening 127\.0\.0\.1:\([0-9]*\).*/\1/p" "$1" | tail -n 1; }

# --- 1. the server ----------------------------------------------------------------------
cat >"$T/rp.conf" <<'EOF'
$CONFIG{WAIT_ADDR} = [ '127.0.0.1:0' ];
$CONFIG{IN_ADDR} = [ '127.0.0.1:0' ];
$CONFIG{SU_USER} = '';
$CONFIG{WAIT_TIMEOUT} = 4;
$CONFIG{STREAM_PING} = 1;
return 1;
EOF
"$BIN" --foreground "$T/rp.conf" >"$T/server.log" 2>&1 &
SRV=$!
pids+=($SRV)
wait_log "$T/server.log" "IN: listening" 10
WPORT=$(port_of "$T/server.log" WAIT)
IPORT=$(port_of "$T/server.log" IN)
[ -n "$WPORT" ] && [ -n "$IPORT" ] || fail "cannot read the ports from $T/server.log"
echo "server: WAIT 127.0.0.1:$WPORT, IN 127.0.0.1:$IPORT"

# --- 2. nginx ---------------------------------------------------------------------------
SITE=$ROOT/conf/nginx-realplexor.conf
# Starts nginx in dir $1 with the shipped site, upstream port $2, listen port $3.
start_nginx() {
    local d=$1 changed
    mkdir -p "$d/tmp"
    sed -e "s/^\( *\)server 127\.0\.0\.1:8088;/\1server 127.0.0.1:$2;/" \
        -e "s/^\( *\)listen 80;/\1listen 127.0.0.1:$3;/" "$SITE" >"$d/site.conf"
    # Exactly those two lines may differ from the shipped file.
    changed=$(diff "$SITE" "$d/site.conf" | grep -c '^[<>]' || true)
    [ "$changed" = 4 ] || fail "shipped site no longer has 'server 127.0.0.1:8088;' and 'listen 80;' lines"
    cat >"$d/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log info;
events { worker_connections 256; }
http {
    access_log $d/access.log;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    include $d/site.conf;
}
EOF
    timeout 30 "$NGINX" -t -q -e "$d/error.log" -p "$d" -c "$d/nginx.conf" ||
        { cat "$d/error.log" >&2; fail "nginx -t rejects the shipped site"; }
    "$NGINX" -e "$d/error.log" -p "$d" -c "$d/nginx.conf" &
    pids+=($!)
    client wait_port "$3" 10 || { cat "$d/error.log" >&2; fail "nginx did not start"; }
}

NPORT=$(client free_port)
start_nginx "$T/nginx" "$WPORT" "$NPORT"
echo "nginx: 127.0.0.1:$NPORT -> 127.0.0.1:$WPORT"

client longpoll "$NPORT" "$IPORT" abc || fail "long-poll and push through nginx"
client sse "$NPORT" "$IPORT" ssea || fail "SSE stream and push through nginx"
client websocket "$NPORT" "$IPORT" wsa || fail "WebSocket and push through nginx"
client pylisten "$NPORT" "$IPORT" pya || fail "the Python client's listen() through nginx"
client timeout "$NPORT" xyz 4 || fail "WAIT_TIMEOUT reply through nginx"

# What nginx sends upstream, seen by a fake WAIT line behind a second nginx.
FPORT=$(client free_port)
NPORT2=$(client free_port)
timeout 60 python3 "$HERE/deploy_client.py" capture "$FPORT" "$T/upstream-request" &
cap=$!
pids+=($cap)
client wait_port "$FPORT" 10
start_nginx "$T/nginx2" "$FPORT" "$NPORT2"
timeout 20 python3 - "$NPORT2" <<'EOF' || fail "request through the second nginx"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /?identifier=abc HTTP/1.1\r\nHost: rpl.example.com\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n")
data = b""
while not data.endswith(b"0\r\n\r\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
assert b'"data": "x"' in data, data
EOF
timeout 10 tail --pid="$cap" -f /dev/null || fail "fake upstream did not finish"
req=$(tr -d '\r' <"$T/upstream-request")
echo "$req" | head -n 1 | grep -q '^GET /?identifier=abc HTTP/1.1$' || fail "upstream request line: $req"
for h in 'Connection: close' 'Host: rpl.example.com' 'X-Real-IP: 127.0.0.1' \
    'X-Forwarded-For: 10.1.2.3, 127.0.0.1' 'X-Forwarded-Proto: http'; do
    echo "$req" | grep -qix "$h" || fail "nginx did not send '$h' upstream: $req"
done
! echo "$req" | grep -qi '^Upgrade:' || fail "nginx sent an Upgrade header for a long-poll: $req"
echo "nginx -> upstream: HTTP/1.1, Connection: close, Host, X-Real-IP, X-Forwarded-For/Proto"
# The IN line is never proxied: no active line of the site names its port.
! grep -v '^ *#' "$SITE" | grep -q 10010 || fail "the nginx site exposes the IN line"

# Reload and graceful stop of the server as systemd runs it (--foreground): SIGHUP keeps
# it serving; SIGTERM gives a parked client its empty reply and exits 0 within 2 s.
kill -HUP "$SRV"
wait_log "$T/server.log" "SIGHUP received" 5
sleep 0.5
kill -0 "$SRV" 2>/dev/null || fail "the --foreground server died on SIGHUP"
client wait_port "$WPORT" 5
timeout 30 python3 "$HERE/deploy_client.py" timeout "$NPORT" parked 0 &
poll=$!
wait_log "$T/server.log" ":parked] registered" 5
kill -TERM "$SRV"
for ((i = 0; i < 30; i++)); do
    kill -0 "$SRV" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$SRV" 2>/dev/null && fail "the server still runs 3 s after SIGTERM"
st=0
wait "$SRV" || st=$?
[ "$st" = 0 ] || fail "the server exited with status $st on SIGTERM, want 0"
wait "$poll" || fail "the parked long-poll did not get its reply on SIGTERM"
echo "server: SIGHUP reloads, SIGTERM answers the parked poll through nginx and exits 0"

# --- 3. the init script -----------------------------------------------------------------
INIT=$ROOT/conf/dklab_realplexor.init
bash -n "$INIT" || fail "bash -n $INIT"
cat >"$T/init.conf" <<'EOF'
$CONFIG{WAIT_ADDR} = [ '127.0.0.1:0' ];
$CONFIG{IN_ADDR} = [ '127.0.0.1:0' ];
$CONFIG{SU_USER} = '';
EOF
initd() {
    env BIN="$BIN" ADDCONFIG="$T/init.conf" PIDPREFIX="$T/rp" LOGFILE="$T/init.log" \
        CWD="$T" RESTART_DELAY=0 STOP_WAIT=5 timeout 30 "$INIT" "$@"
}
PIDF=$T/rp_init.conf.pid
out=$(initd start) || fail "init start: $out"
[ "$out" = "OK: $T/init.conf" ] || fail "init start printed: $out"
pid1=$(cat "$PIDF")
kill -0 "$pid1" || fail "init start: pid $pid1 not running"
wait_log "$T/init.log" "IN: listening" 10
initd status >/dev/null || fail "init status after start"
out=$(initd start) || fail "init start (again): $out"
echo "$out" | grep -q "already running" || fail "second start printed: $out"
client wait_port "$(port_of "$T/init.log" WAIT)" 5

out=$(initd reload) || fail "init reload: $out"
[ "$out" = "OK: $T/init.conf" ] || fail "init reload printed: $out"
wait_log "$T/init.log" "SIGHUP received" 5
sleep 1
kill -0 "$pid1" || fail "the server died on reload"
client wait_port "$(port_of "$T/init.log" WAIT)" 5

out=$(initd restart) || fail "init restart: $out"
pid2=$(cat "$PIDF")
[ "$pid2" != "$pid1" ] && kill -0 "$pid2" || fail "init restart: old $pid1, new $pid2"
kill -0 "$pid1" 2>/dev/null && fail "init restart left $pid1 running"

out=$(initd stop) || fail "init stop: $out"
[ "$out" = "OK: $T/init.conf" ] || fail "init stop printed: $out"
kill -0 "$pid2" 2>/dev/null && fail "init stop left $pid2 running"
[ ! -e "$PIDF" ] || fail "init stop left $PIDF"
st=0
initd status >/dev/null || st=$?
[ "$st" = 3 ] || fail "init status after stop returned $st, want 3"
echo "init script: start, status, reload (SIGHUP, still serving), restart, stop"

# --- 4. the systemd unit ----------------------------------------------------------------
UNIT=$ROOT/conf/realplexor.service
grep -q '^ExecStart=/usr/local/bin/realplexor --foreground ' "$UNIT" || fail "ExecStart in $UNIT"
if [ -n "$ANALYZE" ]; then
    # verify checks that ExecStart exists: point it at the binary we built.
    sed "s#/usr/local/bin/realplexor#$BIN#" "$UNIT" >"$T/realplexor.service"
    out=$(cd "$T" && timeout 60 "$ANALYZE" verify ./realplexor.service 2>&1) ||
        fail "systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify warns: $out"
    if "$ANALYZE" security --help 2>/dev/null | grep -q -- --offline; then
        out=$(cd "$T" && timeout 60 "$ANALYZE" security --offline=yes ./realplexor.service 2>&1 | tail -n 1)
        score=$(echo "$out" | sed -n 's/.*realplexor.service: \([0-9.]*\).*/\1/p')
        [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' ||
            fail "systemd-analyze security exposure above 3.0: $out"
        echo "systemd unit: verify clean, exposure $score"
    else
        echo "systemd unit: verify clean"
    fi
else
    echo "systemd unit: systemd-analyze not installed, checked ExecStart only"
fi

# --- 5. tune-host -----------------------------------------------------------------------
TUNE=$ROOT/scripts/tune-host
bash -n "$TUNE" || fail "bash -n $TUNE"
out=$(timeout 30 "$TUNE") || fail "tune-host dry run exited non-zero: $out"
for k in fs.nr_open fs.file-max net.ipv4.ip_local_port_range net.core.somaxconn \
    net.ipv4.tcp_max_syn_backlog net.ipv4.tcp_mem net.core.netdev_max_backlog \
    net.ipv4.tcp_max_orphans 'Dry run; nothing changed'; do
    echo "$out" | grep -q -- "$k" || fail "tune-host dry run does not show $k"
done
echo "$out" | head -n 1 | grep -q '^SETTING  *CURRENT  *RECOMMENDED  *STATUS$' || fail "tune-host table header"
echo "tune-host: dry run shows the table"
echo "20-deploy: OK"
