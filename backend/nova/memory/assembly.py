"""Context-window assembly, as a pure function: system prompt + the current turn + as many of the
most recent *whole* turns as fit, with an optional summary standing in for the turns dropped.

Budget: ``context_window - max_tokens - overhead`` (the reply's own priming), and every message
costs its stored token count plus ``overhead`` (role markers of the chat template). A turn starts
at a user message and runs until the next one, so a question is never sent without its answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nova.errors import BadRequest
from nova.memory.messages import StoredMessage

SUMMARY_PREFIX = "Summary of the earlier conversation:\n"


@dataclass(frozen=True, slots=True)
class Budget:
    context_window: int
    max_tokens: int
    overhead: int

    @property
    def available(self) -> int:
        return self.context_window - self.max_tokens - self.overhead

    def cost(self, message: StoredMessage) -> int:
        return message.tokens + self.overhead


@dataclass(slots=True)
class Assembled:
    messages: list[dict[str, Any]]
    prompt_tokens: int  # what the assembled prompt costs under the budget's accounting
    dropped_upto_seq: int = 0  # highest seq of the history left out (0: nothing dropped)
    used_summary: bool = False
    kept: list[StoredMessage] = field(default_factory=list)


def turns(history: Sequence[StoredMessage]) -> list[list[StoredMessage]]:
    """Group usable history into turns (errors and empty answers are not context)."""
    out: list[list[StoredMessage]] = []
    for m in history:
        if m.status == "error" or not m.content:
            continue
        if m.role == "user" or not out:
            out.append([m])
        else:
            out[-1].append(m)
    return out


def _fit(groups: list[list[StoredMessage]], room: int, budget: Budget) -> tuple[list[StoredMessage], int]:
    """Newest whole turns that fit in ``room``; returns them oldest first and the tokens used."""
    kept: list[list[StoredMessage]] = []
    used = 0
    for group in reversed(groups):
        cost = sum(budget.cost(m) for m in group)
        if used + cost > room:
            break
        kept.append(group)
        used += cost
    kept.reverse()
    return [m for g in kept for m in g], used


def assemble(
    system: Sequence[StoredMessage],
    history: Sequence[StoredMessage],
    new: Sequence[StoredMessage],
    budget: Budget,
    summary: StoredMessage | None = None,
) -> Assembled:
    """Raises ``BadRequest`` (``context_length_exceeded``) when even the new turn does not fit."""
    fixed = sum(budget.cost(m) for m in system) + sum(budget.cost(m) for m in new)
    room = budget.available - fixed
    if room < 0:
        raise BadRequest(
            f"This message needs {fixed} tokens but the model's context window leaves {budget.available} "
            f"after reserving {budget.max_tokens} for the answer.",
            code="context_length_exceeded",
            param="messages",
        )
    groups = turns(history)
    kept, used = _fit(groups, room, budget)
    n_kept_groups = _count_groups(kept)
    use_summary = False
    if n_kept_groups < len(groups) and summary is not None and summary.content:
        s_cost = budget.cost(summary)
        if s_cost <= room:
            kept, used = _fit(groups, room - s_cost, budget)
            used += s_cost
            n_kept_groups = _count_groups(kept)
            use_summary = True
    dropped = groups[: len(groups) - n_kept_groups]
    dropped_upto = dropped[-1][-1].seq if dropped else 0
    messages = [m.wire() for m in system]
    if use_summary and summary is not None:
        messages.append(summary.wire())
    messages.extend(m.wire() for m in kept)
    messages.extend(m.wire() for m in new)
    return Assembled(messages, fixed + used + budget.overhead, dropped_upto, use_summary, kept)


def _count_groups(kept: Sequence[StoredMessage]) -> int:
    return len(turns(kept))
