"""In-process admission for the embedded default (one process, no Redis): the same sliding-window
semantics as the Redis scripts, so both backends pass one contract test suite. Single event
loop, no awaits inside a decision, hence atomic without locks."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from nova.config import Settings
from nova.identity.principal import Principal
from nova.limits.admission import Lease, Unlimited
from nova.limits.plan import (
    NONE,
    WINDOW_MS,
    BudgetSeeder,
    Plan,
    headers,
    month_start,
    month_tag,
    plan_for,
    refuse,
    seconds_to_next_month,
)

_PRUNE_EVERY = 10_000


class _TokEntry:
    __slots__ = ("live", "tokens", "ts")

    def __init__(self, ts: int, tokens: int) -> None:
        self.ts = ts
        self.tokens = tokens
        self.live = True


@dataclass(slots=True)
class _KeyState:
    req: deque[int] = field(default_factory=deque)
    tok: deque[_TokEntry] = field(default_factory=deque)
    toksum: int = 0
    conc: int = 0


class _MemoryLease:
    __slots__ = ("_budget_tag", "_done", "_entry", "_est", "_owner", "_plan", "_state", "headers")

    def __init__(
        self,
        owner: MemoryAdmission,
        plan: Plan,
        state: _KeyState,
        entry: _TokEntry | None,
        est: int,
        budget_tag: str,
        hdrs: dict[str, str],
    ) -> None:
        self._owner = owner
        self._plan = plan
        self._state = state
        self._entry = entry
        self._est = est
        self._budget_tag = budget_tag
        self._done = False
        self.headers = hdrs

    async def settle(self, actual_tokens: int) -> None:
        if self._done:
            return
        self._done = True
        actual = max(0, int(actual_tokens))
        if self._entry is not None and self._entry.live:
            self._state.toksum += actual - self._entry.tokens
            self._entry.tokens = actual
        if self._plan.key_concurrency != NONE:
            self._state.conc -= 1
        if self._plan.key_budget != NONE:
            self._owner._budget[self._budget_tag] = (
                self._owner._budget.get(self._budget_tag, 0) + actual - self._est
            )


class MemoryAdmission:
    def __init__(self, settings: Settings | None = None, budget_seeder: BudgetSeeder | None = None) -> None:
        self._seeder = budget_seeder
        self._keys: dict[str, _KeyState] = {}
        self._users: dict[str, deque[int]] = {}
        self._budget: dict[str, int] = {}
        self._open = Unlimited()
        self._calls = 0

    def _prune(self) -> None:
        """Forget idle keys and users so state stays proportional to recent callers."""
        floor = self._now() - WINDOW_MS
        for key_id, ks in list(self._keys.items()):
            if (
                ks.conc == 0
                and (not ks.req or ks.req[-1] <= floor)
                and (not ks.tok or ks.tok[-1].ts <= floor)
            ):
                for e in ks.tok:
                    e.live = False
                del self._keys[key_id]
        for user_id, log in list(self._users.items()):
            if not log or log[-1] <= floor:
                del self._users[user_id]
        tag = month_tag()
        for budget_tag in [t for t in self._budget if not t.endswith(tag)]:
            del self._budget[budget_tag]

    @staticmethod
    def _now() -> int:
        return int(time.monotonic() * 1000)

    async def acquire(self, principal: Principal, model: str, estimated_tokens: int) -> Lease:
        plan = plan_for(principal, model)
        if plan.empty:
            return await self._open.acquire(principal, model, estimated_tokens)
        est = max(0, int(estimated_tokens))
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            self._prune()
        budget_tag = f"{principal.key_id}:{month_tag()}"
        if plan.key_budget != NONE and budget_tag not in self._budget and self._seeder and principal.key_id:
            used = await self._seeder(principal.key_id, month_start())
            self._budget.setdefault(budget_tag, used)  # (another request may have seeded meanwhile)
        now = self._now()
        floor = now - WINDOW_MS
        ks = self._keys.setdefault(principal.key_id or "", _KeyState())
        ureq = self._users.setdefault(principal.user_id, deque())
        while ks.req and ks.req[0] <= floor:
            ks.req.popleft()
        while ureq and ureq[0] <= floor:
            ureq.popleft()
        while ks.tok and ks.tok[0].ts <= floor:
            gone = ks.tok.popleft()
            gone.live = False
            ks.toksum -= gone.tokens

        def reset(log: deque[int]) -> int:
            return log[0] + WINDOW_MS - now if log else WINDOW_MS

        def hdrs() -> dict[str, str]:
            if plan.key_rpm != NONE:
                rl, rr, rs = plan.key_rpm, plan.key_rpm - len(ks.req), reset(ks.req)
            elif plan.user_rpm != NONE:
                rl, rr, rs = plan.user_rpm, plan.user_rpm - len(ureq), reset(ureq)
            else:
                rl, rr, rs = NONE, 0, 0
            if plan.key_tpm != NONE:
                ts = ks.tok[0].ts + WINDOW_MS - now if ks.tok else WINDOW_MS
                return headers(rl, rr, rs, plan.key_tpm, plan.key_tpm - ks.toksum, ts)
            return headers(rl, rr, rs, NONE, 0, 0)

        if plan.key_rpm != NONE and len(ks.req) >= plan.key_rpm:
            raise refuse("key_requests", reset(ks.req), hdrs())
        if plan.user_rpm != NONE and len(ureq) >= plan.user_rpm:
            raise refuse("user_requests", reset(ureq), hdrs())
        if plan.key_tpm != NONE:
            if est > plan.key_tpm:
                raise refuse("key_tokens_too_large", WINDOW_MS, hdrs())
            if ks.toksum + est > plan.key_tpm:
                need, freed, retry = ks.toksum + est - plan.key_tpm, 0, WINDOW_MS
                for e in ks.tok:
                    freed += e.tokens
                    if freed >= need:
                        retry = e.ts + WINDOW_MS - now
                        break
                raise refuse("key_tokens", retry, hdrs())
        if plan.key_concurrency != NONE and ks.conc >= plan.key_concurrency:
            raise refuse("key_concurrency", 1000, hdrs())
        if plan.key_budget != NONE and self._budget.get(budget_tag, 0) + est > plan.key_budget:
            raise refuse("key_budget", seconds_to_next_month() * 1000, hdrs())

        entry = None
        if plan.key_rpm != NONE:
            ks.req.append(now)
        if plan.user_rpm != NONE:
            ureq.append(now)
        if plan.key_tpm != NONE:
            entry = _TokEntry(now, est)
            ks.tok.append(entry)
            ks.toksum += est
        if plan.key_concurrency != NONE:
            ks.conc += 1
        if plan.key_budget != NONE:
            self._budget[budget_tag] = self._budget.get(budget_tag, 0) + est
        return _MemoryLease(self, plan, ks, entry, est, budget_tag, hdrs())
