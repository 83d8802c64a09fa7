#!/usr/bin/env bash
# scripts/tune-host in dry-run mode against a fake /proc (TUNE_HOST_PROC), so the
# proposals are checked without reading or changing the host's settings:
#
#   ephemeral_range_starts_above_service_ports: the proposed ip_local_port_range starts
#     at 10240 (the old 1024 let outgoing connections take 5432, 6379, ... before their
#     services started), also on a host an earlier version already set to 1024;
#   listening_and_configured_ports_are_reserved: ip_local_reserved_ports keeps what was
#     reserved, and adds the --ports inside the range, memcached/MongoDB, and every TCP
#     port in LISTEN state (IPv4 and IPv6) inside the range, but no connected socket;
#   dry_run_changes_nothing: the fake files are untouched and the output says so.
#
# Needs only bash and coreutils; never runs --apply.
set -euo pipefail
cd "$(dirname "$0")/../.."
TUNE=$PWD/scripts/tune-host

T=$(mktemp -d /tmp/rp-tune.XXXXXX)
trap 'rm -rf "$T"' EXIT
failed=0
fail() {
    echo "25-tune-host: FAIL: $*" >&2
    failed=1
}

# A host tuned by the old script: range 1024-65535, 8088 and 10010 reserved.
mkdir -p "$T/sys/net/ipv4" "$T/sys/net/core" "$T/sys/fs" "$T/net"
printf '1024\t65535\n' >"$T/sys/net/ipv4/ip_local_port_range"
echo 8088,10010 >"$T/sys/net/ipv4/ip_local_reserved_ports"
echo 4096 >"$T/sys/net/core/somaxconn"
echo 1048576 >"$T/sys/fs/nr_open"
echo 'MemTotal:        8000000 kB' >"$T/meminfo"
# Listening: 5432 and 6379 (below the range), 11211 (IPv4), 40000 (IPv6). Connected, not
# listening: 50000 (state 01), which must not be reserved.
cat >"$T/net/tcp" <<'EOF'
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   100        0 1001 1 0 100 0 0 10 0
   1: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   100        0 1002 1 0 100 0 0 10 0
   2: 0100007F:2BCB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   100        0 1003 1 0 100 0 0 10 0
   3: 0100007F:C350 0100007F:1538 01 00000000:00000000 00:00000000 00000000   100        0 1004 1 0 100 0 0 10 0
EOF
cat >"$T/net/tcp6" <<'EOF'
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:9C40 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0 100 0 0 10 0
EOF
before=$(cd "$T" && find . -type f -exec md5sum {} + | sort)

out=$(TUNE_HOST_PROC=$T timeout 30 "$TUNE" --ports 8088,10010,12000) || fail "dry run exited non-zero: $out"
line() { echo "$out" | grep -E "^$1 = " | sed "s/^$1 = //"; }

ephemeral_range_starts_above_service_ports() {
    local range
    range=$(line net.ipv4.ip_local_port_range)
    [ "$range" = "10240 65535" ] || fail "ephemeral_range_starts_above_service_ports: proposed range '$range', want '10240 65535'"
    echo "$out" | grep -q '^net.ipv4.ip_local_port_range  *1024 65535  *10240 65535  *change$' ||
        fail "ephemeral_range_starts_above_service_ports: the table does not show 1024 65535 -> 10240 65535 as a change"
}

listening_and_configured_ports_are_reserved() {
    local reserved want p
    reserved=$(line net.ipv4.ip_local_reserved_ports)
    want=8088,10010,12000,11211,27017,40000
    [ "$reserved" = "$want" ] || fail "listening_and_configured_ports_are_reserved: reserved '$reserved', want '$want'"
    for p in 5432 6379 50000; do
        case ",$reserved," in *",$p,"*) fail "listening_and_configured_ports_are_reserved: $p reserved" ;; esac
    done
    echo "$out" | grep -q '^  40000  *listening now$' || fail "listening_and_configured_ports_are_reserved: output does not say 40000 is listening now"
    echo "$out" | grep -q '^  12000  *configured (--ports)$' || fail "listening_and_configured_ports_are_reserved: output does not say 12000 is configured"
}

dry_run_changes_nothing() {
    local after
    after=$(cd "$T" && find . -type f -exec md5sum {} + | sort)
    [ "$before" = "$after" ] || fail "dry_run_changes_nothing: the fake /proc files changed"
    echo "$out" | grep -q '^Dry run; nothing changed' || fail "dry_run_changes_nothing: no dry-run notice"
}

ephemeral_range_starts_above_service_ports
listening_and_configured_ports_are_reserved
dry_run_changes_nothing
if [ "$failed" != 0 ]; then
    echo "$out" >&2
    exit 1
fi
echo "25-tune-host: OK"
