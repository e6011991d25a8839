"""Rate limits and budgets, checked before a call reaches the provider (and before ingest writes).

Requests per minute (of a key, of the project, of one end user) are counted in shared counters (the
database's ``limit_usage`` through the writer, or Redis when ``SIGHTLINE_REDIS_URL`` is set), so every
server process draws from the same count and together they never admit more than the limit. Going to
the shared counter for every request would cost a round trip each; a process takes requests in
*leases* instead: while the limit is far away it takes up to an eighth of what is left (at most 100)
and counts them down locally, and near the limit it takes them one at a time. A request that finds
none left is answered 429 in OpenAI's error shape with ``Retry-After``, ``retry-after-ms`` and the
``x-ratelimit-*`` headers OpenAI's clients read.

Tokens per minute and cost per day and per month count what the project's generations used (every
road: SDK, gateway, pipelines, compatibility endpoints), and cost per day and month of one API key
what that key's generations used (the daily totals per key), read at most once a second per
process; a call is refused once the budget is spent (the call that crosses it is let through: its
cost is known only when it ends).

The limits themselves are read at most once a second per process (a change reaches every process
within that). When the shared counter cannot be reached (Redis down), requests are let through or
refused as ``SIGHTLINE_LIMITS_FAIL_OPEN`` says, and that is logged once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from ..errors import RateLimited
from ..store import Database
from ..store.access.limits import (
    DAY_US,
    MINUTE_US,
    Limits,
    Periods,
    PruneUsage,
    TakeRequests,
    get_limits,
    key_spend,
    spent,
)
from ..store.access.projects import ApiKey
from ..store.jobs import Job

__all__ = ["PRUNE_USAGE_KIND", "Limiter", "prune_usage"]

PRUNE_USAGE_KIND = "limits.prune"

log = logging.getLogger(__name__)

_CONFIG_SECONDS = 1.0
_SPENT_SECONDS = 1.0
_LEASE_MAX = 100

_TAKE_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.max(0, math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used))
if grant > 0 then
  redis.call('INCRBY', KEYS[1], grant)
  redis.call('EXPIRE', KEYS[1], 180)
end
return {grant, used + grant}
"""


class Limiter:
    """The limits of every project, checked for one server process."""

    def __init__(
        self,
        db: Database,
        redis_url: str | None = None,
        *,
        fail_open: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._redis_url = redis_url
        self._redis: Any = None
        self._fail_open = fail_open
        self._clock = clock
        self._config: dict[int, tuple[float, dict[int, Limits]]] = {}
        self._leases: dict[tuple[str, int], int] = {}  # (counter, window) -> requests left here
        self._known: dict[tuple[str, int], int] = {}  # (counter, window) -> used, as last seen
        self._spent: dict[tuple[int, int, str, int], tuple[float, float]] = {}
        self._warned = False

    async def _limits(self, project_id: int) -> dict[int, Limits]:
        now = time.monotonic()
        found = self._config.get(project_id)
        if found is not None and found[0] > now:
            return found[1]

        rows = await self._db.read_in_thread(lambda conn: get_limits(conn, project_id))
        limits = {x.key_id: x for x in rows}
        self._config[project_id] = (now + _CONFIG_SECONDS, limits)
        return limits

    def forget(self, project_id: int) -> None:
        """Read the project's limits again on its next request (they were just changed here)."""
        self._config.pop(project_id, None)

    async def check(self, key: ApiKey, user_id: str | None = None, *, budgets: bool = True) -> None:
        """Count one request of ``key`` (and ``user_id``); :class:`RateLimited` when over a limit.
        ``budgets``: also refuse once the project's tokens or cost budget is spent (model calls)."""
        limits = await self._limits(key.project_id)
        if not limits:
            return
        project = limits.get(0)
        mine = limits.get(key.id) if key.id else None
        now_us = int(self._clock() * 1_000_000)
        if budgets:
            for owner in (project, mine):
                if owner is not None:
                    await self._budgets(owner, now_us)
        counters: list[tuple[str, int]] = []
        if mine is not None and mine.requests_per_minute:
            counters.append((f"rpm:k:{key.id}", mine.requests_per_minute))
        if project is not None and project.requests_per_minute:
            counters.append((f"rpm:p:{key.project_id}", project.requests_per_minute))
        if project is not None and project.user_requests_per_minute and user_id:
            counters.append((f"rpm:u:{key.project_id}:{user_id[:200]}", project.user_requests_per_minute))
        for name, cap in counters:
            await self._take(name, cap, now_us)

    async def _take(self, name: str, cap: int, now_us: int) -> None:
        window = now_us - now_us % MINUTE_US
        at = (name, window)
        left = self._leases.get(at, 0)
        if left > 0:
            self._leases[at] = left - 1
            return
        if len(self._known) > 1000:  # counters of minutes gone by
            self._leases = {k: v for k, v in self._leases.items() if k[1] >= window}
            self._known = {k: v for k, v in self._known.items() if k[1] >= window}
        want = max(1, min(_LEASE_MAX, (cap - self._known.get(at, 0)) // 8))
        granted, used = await self._shared_take(name, window, want, cap)
        self._known[at] = used
        if granted <= 0:
            reset = (window + MINUTE_US - now_us) / 1_000_000
            who = {"k": "this API key", "u": "this user", "p": "this project"}[name.split(":")[1]]
            raise RateLimited(
                f"rate limit reached: {cap} requests per minute for {who}; try again in {math.ceil(reset)} s",
                _headers("requests", cap, reset),
            )
        self._leases[at] = self._leases.get(at, 0) + granted - 1

    async def _shared_take(self, name: str, window: int, want: int, cap: int) -> tuple[int, int]:
        try:
            if self._redis_url:
                if self._redis is None:
                    import redis.asyncio

                    self._redis = redis.asyncio.Redis.from_url(self._redis_url, socket_timeout=2)
                grant, used = await self._redis.eval(
                    _TAKE_LUA, 1, self._db.shared_name("limit", name, window), want, cap
                )
                return int(grant), int(used)
            granted, used = await self._db.writer.write(TakeRequests(name, window, want, cap))
            return int(granted), int(used)
        except Exception:  # noqa: BLE001 - the counter cannot be reached: the operator chose which way
            if not self._warned:
                self._warned = True
                log.warning(
                    "rate limit counters cannot be reached; requests are %s (SIGHTLINE_LIMITS_FAIL_OPEN)",
                    "let through" if self._fail_open else "refused",
                )
            return (want, 0) if self._fail_open else (0, cap)

    async def _budgets(self, limits: Limits, now_us: int) -> None:
        if not (limits.tokens_per_minute or limits.cost_per_day or limits.cost_per_month):
            return  # requests per minute only: nothing spent to read
        at = Periods.at(now_us)
        checks = (
            ("tokens", limits.tokens_per_minute, at.minute, at.minute + MINUTE_US, "tokens per minute"),
            ("cost", limits.cost_per_day, at.day, at.day + DAY_US, "USD per day"),
            ("cost", limits.cost_per_month, at.month, at.next_month, "USD per month"),
        )
        for kind, cap, since, until, unit in checks:
            if not cap:
                continue
            used = await self._spent_since(limits, kind, since)
            if used >= cap:
                reset = (until - now_us) / 1_000_000
                who = f"this API key ({limits.key_id})" if limits.key_id else "this project"
                raise RateLimited(
                    f"budget reached: {cap:g} {unit} for {who}; try again in {math.ceil(reset)} s",
                    _headers("tokens" if kind == "tokens" else "requests", cap, reset),
                )

    async def _spent_since(self, limits: Limits, kind: str, since: int) -> float:
        at = (limits.project_id, limits.key_id, kind, since)
        now = time.monotonic()
        found = self._spent.get(at)
        if found is not None and found[0] > now:
            return found[1]

        def read(conn: Connection) -> float:
            if not limits.key_id:
                return spent(conn, limits.project_id, since, tokens=kind == "tokens")
            mine = key_spend(conn, limits.project_id, since).get(limits.key_id)
            return mine.cost if mine is not None else 0.0

        value = await self._db.read_in_thread(read)
        if len(self._spent) > 10_000:
            self._spent.clear()
        self._spent[at] = (now + _SPENT_SECONDS, value)
        return value

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


async def prune_usage(job: Job) -> PruneUsage:
    """The hourly job's handler: drop request counters of minutes that ended over an hour ago."""
    return PruneUsage(int(time.time() * 1_000_000) - 3600 * 1_000_000)


def _headers(kind: str, cap: float, reset: float) -> dict[str, str]:
    seconds = max(1, math.ceil(reset))
    return {
        "retry-after": str(seconds),
        "retry-after-ms": str(max(1, int(reset * 1000))),
        f"x-ratelimit-limit-{kind}": f"{cap:g}",
        f"x-ratelimit-remaining-{kind}": "0",
        f"x-ratelimit-reset-{kind}": f"{seconds}s",
    }
