#!/usr/bin/env bash
# The black-box data-path tests (delivery, WAIT line, SSE, WebSocket) a second time, in
# cluster mode: every server the harness starts gets CLUSTER_REDIS (a redis-server started
# here on a free loopback port, stopped by PID), its own key prefix and WORKERS=2
# (tests/util/server.rs `cluster_conf`). The log-order ports of the original's phpt tests
# stay embedded-only: in cluster mode a push's lines come when it is read back from Redis.
set -uo pipefail
cd "$(dirname "$0")/../.."
if ! command -v redis-server >/dev/null; then
    if [ "${CI:-}" = true ]; then
        echo "15-cluster: FAIL: redis-server is missing (scripts/deps/cluster.txt)" >&2
        exit 1
    fi
    echo "15-cluster: SKIP: redis-server is missing (a failure when CI=true)" >&2
    exit 0
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    >"$dir/redis.log" 2>&1 &
rpid=$!
cleanup() { kill "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
done
REALPLEXOR_TEST_CLUSTER_REDIS="127.0.0.1:$port" REALPLEXOR_TEST_WORKERS="${REALPLEXOR_TEST_WORKERS:-2}" \
    cargo test --test integration -- delivery:: wait_line:: sse:: websocket:: \
    --skip wait_line::several_wait_addrs_are_all_served --skip wait_line::ipv6_wait_addr \
    --skip delivery::queue_cleaned_after_clean_id_after --skip delivery::fan_out_to_50_parked_listeners
# The first two set their own port-0 addresses, which every worker binds apart; the third
# times one worker's CLEAN_ID_AFTER to the second while the other cleans a moment later; the
# fourth asserts the storage counters of the last log line, which is either worker's.
