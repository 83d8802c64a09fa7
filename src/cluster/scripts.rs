//! The Lua scripts that keep cluster-wide presence in Redis, run with EVAL (each is atomic
//! in Redis, so the first worker's "online" and the last worker's "offline" become exactly
//! one event, numbered from one counter).
//!
//! Keys (`<p>` = CLUSTER_PREFIX):
//! - `<p>:h:<id>` set: the workers (uids) where an id is online;
//! - `<p>:n:<uid>` hash: the ids online on a worker -> its listener count there (0 while
//!   OFFLINE_TIMEOUT runs after the last one left). TRANSITION adds an id (count 0 if not
//!   known yet) and removes it; the worker's 100 ms batches `HSET` the counts that changed.
//!   ONLINE reads these hashes at request time (`HSCAN`, one per live worker), so no
//!   worker keeps a copy of the cluster's online ids;
//! - `<p>:workers` sorted set: uid -> last heartbeat (ms);
//! - `<p>:events` stream: the online/offline events (`k` online|offline, `i` id, `p`
//!   position), replayed by every worker into WATCH's bounded history;
//! - `<p>:evpos` the position counter.
//!
//! Like the rest of cluster mode, the scripts name keys they build themselves: a single
//! Redis (or a primary with replicas), not Redis Cluster's sharding.
//! Uses: nothing.

/// ARGV: prefix, uid, events maxlen, now ms, then (kind, id) pairs, kind `online` |
/// `offline`: a worker's transitions of one loop turn in one call (one EVAL per id sent the
/// script's text once per transition, and a million ids queued gigabytes of commands while
/// Redis worked through them). Returns how many events were emitted.
pub const TRANSITION: &str = r#"
local p, uid, maxlen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('ZADD', p .. ':workers', now, uid)
local n = 0
for i = 5, #ARGV - 1, 2 do
  local kind, id = ARGV[i], ARGV[i + 1]
  local h = p .. ':h:' .. id
  local emit = false
  if kind == 'online' then
    redis.call('HSETNX', p .. ':n:' .. uid, id, 0)
    if redis.call('SADD', h, uid) == 1 and redis.call('SCARD', h) == 1 then emit = true end
  else
    redis.call('HDEL', p .. ':n:' .. uid, id)
    if redis.call('SREM', h, uid) == 1 and redis.call('SCARD', h) == 0 then emit = true end
  end
  if emit then
    local pos = redis.call('INCR', p .. ':evpos')
    redis.call('XADD', p .. ':events', 'MAXLEN', '~', maxlen, '*', 'k', kind, 'i', id, 'p', pos)
    n = n + 1
  end
end
return n
"#;

/// Transitions sent in one TRANSITION call at most (Redis runs a script alone: this bounds
/// how long one call holds it).
pub const TRANSITIONS_PER_CALL: usize = 500;

/// ARGV: prefix, uid, now ms, dead-after ms, events maxlen, the number of ids online on
/// this worker. Refreshes this worker's heartbeat, then removes every worker silent for
/// longer than dead-after: its ids go offline (one event each where it was the last
/// holder) and its counts hash is deleted. Returns `{reaped, missing}`: `missing` > 0 when
/// this worker's hash holds fewer ids than it has online (it was reaped while alive, e.g.
/// frozen for longer than dead-after, or Redis lost them), so that it reports them again.
/// (Every transition of this worker ran before, on the same connection, so the counts
/// agree unless Redis lost some.)
pub const HEARTBEAT: &str = r#"
local p, uid, now, dead_after, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local missing = (tonumber(ARGV[6]) or 0) - redis.call('HLEN', p .. ':n:' .. uid)
if missing < 0 then missing = 0 end
redis.call('ZADD', p .. ':workers', now, uid)
local dead = redis.call('ZRANGEBYSCORE', p .. ':workers', '-inf', now - dead_after)
local n = 0
for _, w in ipairs(dead) do
  if w ~= uid then
    for _, id in ipairs(redis.call('HKEYS', p .. ':n:' .. w)) do
      local h = p .. ':h:' .. id
      if redis.call('SREM', h, w) == 1 and redis.call('SCARD', h) == 0 then
        local pos = redis.call('INCR', p .. ':evpos')
        redis.call('XADD', p .. ':events', 'MAXLEN', '~', maxlen, '*', 'k', 'offline', 'i', id, 'p', pos)
      end
    end
    redis.call('DEL', p .. ':n:' .. w)
    redis.call('ZREM', p .. ':workers', w)
    n = n + 1
  end
end
return {n, missing}
"#;
