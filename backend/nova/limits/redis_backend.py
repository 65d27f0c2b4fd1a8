"""Admission on Redis: exact sliding-window limits shared by every gateway process.

One Lua script per acquire and one per settle (one round trip each; scripts issued in the same
event-loop tick leave in one write on one pipelined connection, see ``scripts``), timed by Redis ``TIME`` so
process clocks do not matter. Windows are sliding logs (sorted sets), not fixed buckets, so a
600/min key admits exactly 600 in any 60 s, across any number of replicas:

- requests/min (key, user): member = lease id, score = admission time.
- tokens/min (key): member = ``lease:tokens``, score = admission time, plus a running sum; the
  estimate is reserved on acquire and replaced by the real count on settle.
- concurrency (key): member = lease id, score = expiry, so a crashed process frees its slots.
- monthly budget (key): a counter per calendar month (UTC), reserved and settled like tokens;
  when missing (new month, Redis restarted) it is seeded once from the usage table.

Redis trouble never hangs a request: sockets time out after ``redis_socket_timeout``, the pool
wait is bounded, and after three failed round trips in a row Redis is skipped for a second;
``limits_fail_mode`` decides between admitting (metric + log) and refusing with 503.
"""

from __future__ import annotations

import logging
import secrets
import time
from itertools import count
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from nova.config import Settings
from nova.errors import ServiceUnavailable
from nova.identity.principal import Principal
from nova.limits.admission import Lease, Unlimited
from nova.limits.plan import (
    NONE,
    WINDOW_MS,
    BudgetSeeder,
    MonthClock,
    Plan,
    headers,
    month_start,
    plan_for,
    refuse,
)
from nova.limits.scripts import PipelinedScripts

log = logging.getLogger("nova.limits")
BACKEND_ERRORS = Counter(
    "nova_limits_backend_errors", "Rate-limit backend (Redis) failures by the action taken.", ["action"]
)
_RETRY_REDIS_AFTER = 1.0
_TRIP_AFTER = 3  # consecutive failed round trips before Redis is skipped for _RETRY_REDIS_AFTER

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = ARGV[1]
local est = tonumber(ARGV[2])
local krpm, urpm, ktpm = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local kconc, kbud = tonumber(ARGV[6]), tonumber(ARGV[7])
local win, lttl, bttl = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local floor = now - win

local function oldest_reset(key)
  local o = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if o[2] then return tonumber(o[2]) + win - now end
  return win
end

local kcount, ucount, toksum = 0, 0, 0
if krpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', floor)
  kcount = redis.call('ZCARD', KEYS[1])
end
if urpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', floor)
  ucount = redis.call('ZCARD', KEYS[2])
end
if ktpm >= 0 then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', floor)
  if #expired > 0 then
    local freed = 0
    for _, m in ipairs(expired) do freed = freed + tonumber(string.match(m, ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', floor)
    toksum = redis.call('DECRBY', KEYS[4], freed)
  else
    toksum = tonumber(redis.call('GET', KEYS[4]) or '0')
  end
end

local function hdrs()
  local rl, rr, rs = -1, 0, 0
  if krpm >= 0 then rl, rr, rs = krpm, krpm - kcount, oldest_reset(KEYS[1])
  elseif urpm >= 0 then rl, rr, rs = urpm, urpm - ucount, oldest_reset(KEYS[2]) end
  local tl, tr, ts = -1, 0, 0
  if ktpm >= 0 then tl, tr, ts = ktpm, ktpm - toksum, oldest_reset(KEYS[3]) end
  return rl, rr, rs, tl, tr, ts
end

local function refuse(scope, retry)
  local rl, rr, rs, tl, tr, ts = hdrs()
  return {0, scope, retry, rl, rr, rs, tl, tr, ts}
end

if krpm >= 0 and kcount >= krpm then return refuse('key_requests', oldest_reset(KEYS[1])) end
if urpm >= 0 and ucount >= urpm then return refuse('user_requests', oldest_reset(KEYS[2])) end
if ktpm >= 0 then
  if est > ktpm then return refuse('key_tokens_too_large', win) end
  if toksum + est > ktpm then
    local need = toksum + est - ktpm
    local entries = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
    local freed, retry = 0, win
    for i = 1, #entries, 2 do
      freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
      if freed >= need then retry = tonumber(entries[i + 1]) + win - now; break end
    end
    return refuse('key_tokens', retry)
  end
end
if kconc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) >= kconc then
    return refuse('key_concurrency', 1000)
  end
end
if kbud >= 0 then
  local cur = redis.call('GET', KEYS[6])
  if not cur and ARGV[12] == '1' then return {2, '', 0, -1, 0, 0, -1, 0, 0} end  -- caller seeds from DB
  local used = tonumber(cur or '0')
  if used + est > kbud then return refuse('key_budget', tonumber(ARGV[11]) * 1000) end
end

-- admitted: record everything
if krpm >= 0 then
  redis.call('ZADD', KEYS[1], now, lease); redis.call('PEXPIRE', KEYS[1], win); kcount = kcount + 1
end
if urpm >= 0 then
  redis.call('ZADD', KEYS[2], now, lease); redis.call('PEXPIRE', KEYS[2], win); ucount = ucount + 1
end
if ktpm >= 0 then
  redis.call('ZADD', KEYS[3], now, lease .. ':' .. est)
  toksum = redis.call('INCRBY', KEYS[4], est)
  redis.call('PEXPIRE', KEYS[3], win); redis.call('PEXPIRE', KEYS[4], win)
end
if kconc >= 0 then
  redis.call('ZADD', KEYS[5], now + lttl, lease); redis.call('PEXPIRE', KEYS[5], lttl)
end
if kbud >= 0 then
  redis.call('INCRBY', KEYS[6], est); redis.call('EXPIRE', KEYS[6], bttl)
end
local rl, rr, rs, tl, tr, ts = hdrs()
return {1, '', 0, rl, rr, rs, tl, tr, ts}
"""

_SETTLE = """
local lease, est, actual = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local win = tonumber(ARGV[4])
if ARGV[5] == '1' then
  local old = lease .. ':' .. est
  local score = redis.call('ZSCORE', KEYS[1], old)
  if score then
    redis.call('ZREM', KEYS[1], old)
    redis.call('ZADD', KEYS[1], score, lease .. ':' .. actual)
    redis.call('INCRBY', KEYS[2], actual - est)
    redis.call('PEXPIRE', KEYS[1], win); redis.call('PEXPIRE', KEYS[2], win)
  end
end
if ARGV[6] == '1' then redis.call('ZREM', KEYS[3], lease) end
if ARGV[7] == '1' then
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('INCRBY', KEYS[4], actual - est) end
end
return 1
"""


class _RedisLease:
    __slots__ = ("_admission", "_done", "_est", "_keys", "_lease_id", "_plan", "headers")

    def __init__(
        self,
        admission: RedisAdmission,
        lease_id: str,
        plan: Plan,
        keys: list[str],
        est: int,
        hdrs: dict[str, str],
    ) -> None:
        self._admission = admission
        self._lease_id = lease_id
        self._plan = plan
        self._keys = keys
        self._est = est
        self._done = False
        self.headers = hdrs

    async def settle(self, actual_tokens: int) -> None:
        if self._done:
            return
        self._done = True
        if self._plan.needs_settle:
            await self._admission._settle(self, max(0, int(actual_tokens)))


def redis_client(settings: Settings) -> aioredis.Redis:
    """Bounded pool: under a burst, requests wait (at most ``redis_socket_timeout`` x 4) for one of
    ``redis_max_connections`` connections instead of opening hundreds at once; connects get at
    least 1 s because a loaded host can be slow to accept. Every wait is bounded."""
    assert settings.redis_url
    timeout = settings.redis_socket_timeout
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=max(timeout * 4, 0.5),
        socket_timeout=timeout,
        socket_connect_timeout=max(timeout, 1.0),
    )
    return aioredis.Redis(connection_pool=pool)


class RedisAdmission:
    def __init__(
        self, client: aioredis.Redis, settings: Settings, budget_seeder: BudgetSeeder | None = None
    ) -> None:
        self._redis = client
        self._seeder = budget_seeder
        self._ns = settings.redis_namespace
        self._fail_open = settings.limits_fail_mode == "open"
        self._lease_ttl_ms = settings.limits_lease_ttl_seconds * 1000
        assert settings.redis_url
        timeout = settings.redis_socket_timeout
        connect_timeout = max(timeout, 1.0)
        self._scripts = PipelinedScripts(
            settings.redis_url,
            {"acquire": _ACQUIRE, "settle": _SETTLE},
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        self._ids = count()
        self._id_prefix = secrets.token_hex(4)
        self._skip_until = 0.0
        self._failures = 0
        self._last_exc: BaseException | None = None
        self._open = Unlimited()
        self._month = MonthClock()

    @classmethod
    def from_settings(cls, settings: Settings, budget_seeder: BudgetSeeder | None = None) -> RedisAdmission:
        assert settings.redis_url
        return cls(redis_client(settings), settings, budget_seeder)

    async def aclose(self) -> None:
        await self._scripts.aclose()
        await self._redis.aclose()

    def _keys_for(self, principal: Principal, month: str) -> list[str]:
        k = f"{self._ns}:rl:k:{principal.key_id}"
        return [
            f"{k}:req",
            f"{self._ns}:rl:u:{principal.user_id}:req",
            f"{k}:tok",
            f"{k}:toksum",
            f"{k}:conc",
            f"{k}:budget:{month}",
        ]

    async def acquire(self, principal: Principal, model: str, estimated_tokens: int) -> Lease:
        plan = plan_for(principal, model)
        if plan.empty:
            return await self._open.acquire(principal, model, estimated_tokens)
        if time.monotonic() < self._skip_until:
            return self._backend_down(None)
        est = max(0, int(estimated_tokens))
        lease_id = f"{self._id_prefix}{next(self._ids):x}"
        month, to_next_month = self._month.read()
        keys = self._keys_for(principal, month)
        budget_ttl = to_next_month + 86400 * 3
        seed = "1" if self._seeder is not None and plan.key_budget != NONE and principal.key_id else "0"
        args: list[Any] = [
            lease_id, est, plan.key_rpm, plan.user_rpm, plan.key_tpm, plan.key_concurrency,
            plan.key_budget, WINDOW_MS, self._lease_ttl_ms, budget_ttl, to_next_month, seed,
        ]  # fmt: skip
        try:
            r = await self._scripts.call("acquire", keys, args, on_orphan=self._release_orphan)
            if r[0] == 2:  # no budget counter this month yet (new month, Redis restarted): seed it once
                await self._seed_budget(str(principal.key_id), keys[5], budget_ttl)
                args[-1] = "0"
                r = await self._scripts.call("acquire", keys, args, on_orphan=self._release_orphan)
        except (RedisError, OSError) as exc:
            return self._backend_down(exc)
        self._failures = 0
        hdrs = headers(int(r[3]), int(r[4]), int(r[5]), int(r[6]), int(r[7]), int(r[8]))
        if r[0] == 0:
            scope = r[1].decode() if isinstance(r[1], bytes) else str(r[1])
            raise refuse(scope, int(r[2]), hdrs)
        return _RedisLease(self, lease_id, plan, keys, est, hdrs)

    async def _settle(self, lease: _RedisLease, actual: int) -> None:
        p = lease._plan
        try:
            await self._scripts.call(
                "settle",
                [lease._keys[2], lease._keys[3], lease._keys[4], lease._keys[5]],
                [
                    lease._lease_id, lease._est, actual, WINDOW_MS,
                    "1" if p.key_tpm != NONE else "0",
                    "1" if p.key_concurrency != NONE else "0",
                    "1" if p.key_budget != NONE else "0",
                ],
                defer=True,  # nobody waits: ride along with the next acquire's write
            )  # fmt: skip
        except (RedisError, OSError) as exc:
            # The reservation stays as estimated and the concurrency slot expires with its TTL.
            BACKEND_ERRORS.labels(action="settle_failed").inc()
            log.warning("rate-limit settle failed: %s", exc)

    async def _seed_budget(self, key_id: str, counter: str, ttl: int) -> None:
        assert self._seeder is not None
        try:
            used = await self._seeder(key_id, month_start())
        except Exception:  # database down: count from zero rather than refuse every request
            log.warning("could not seed the monthly budget of key %s from usage", key_id, exc_info=True)
            return
        await self._redis.set(counter, used, nx=True, ex=ttl)

    def _release_orphan(self, keys: list[str], args: list[Any], result: Any) -> None:
        """An acquire whose caller was cancelled mid-flight but which Redis admitted: give back
        its concurrency slot and token reservation (nothing was sent upstream)."""
        if not result or result[0] != 1:
            return
        flags = ["0" if int(args[i]) == NONE else "1" for i in (4, 5, 6)]
        fut = self._scripts.call(
            "settle",
            [keys[2], keys[3], keys[4], keys[5]],
            [args[0], args[1], 0, WINDOW_MS, *flags],
            defer=True,
        )
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _backend_down(self, exc: BaseException | None) -> Lease:
        """This request is admitted (fail open) or refused with 503 (fail closed). A slow reply
        affects only its own requests; after ``_TRIP_AFTER`` failed round trips in a row Redis is
        skipped for a second, so an outage costs no timeout per request."""
        if exc is not None and exc is not self._last_exc:  # one pipelined batch = one failure
            self._last_exc = exc
            self._failures += 1
            if self._failures >= _TRIP_AFTER:
                now = time.monotonic()
                if now >= self._skip_until + _RETRY_REDIS_AFTER:  # one log line per outage
                    log.warning(
                        "rate-limit backend unreachable (%s); failing %s",
                        exc,
                        "open" if self._fail_open else "closed",
                    )
                self._skip_until = now + _RETRY_REDIS_AFTER
        if self._fail_open:
            BACKEND_ERRORS.labels(action="fail_open").inc()
            return Unlimited._lease
        BACKEND_ERRORS.labels(action="fail_closed").inc()
        raise ServiceUnavailable(
            "Rate limiting is unavailable; try again shortly.", headers={"Retry-After": "1"}
        )
