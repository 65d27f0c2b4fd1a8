"""Context assembly (pure) and token counting against a real /tokenize endpoint."""

from __future__ import annotations

import pytest

from nova.config import Settings
from nova.errors import BadRequest
from nova.llm.models_file import ModelsFile
from nova.llm.pool import UpstreamPool
from nova.memory.assembly import Budget, assemble, turns
from nova.memory.messages import StoredMessage
from nova.memory.tokens import TokenCounter, estimate_tokens
from tests.fakes.upstream import FakeUpstream

OVERHEAD = 4


def m(seq: int, role: str, tokens: int, status: str = "complete") -> StoredMessage:
    return StoredMessage(seq, role, f"{role}{seq}", tokens, status)


SYSTEM = [StoredMessage(0, "system", "be brief", 10)]
NEW = [StoredMessage(7, "user", "latest", 5)]
HISTORY = [
    m(1, "user", 20),
    m(2, "assistant", 30),
    m(3, "user", 15),
    m(4, "assistant", 25),
    m(5, "user", 7),
    m(6, "assistant", 3),
]


def exact_window(n_turns: int) -> int:
    """The context window that fits the system prompt, new turn and exactly the last n turns."""
    groups = turns(HISTORY)
    kept = groups[len(groups) - n_turns :] if n_turns else []
    cost = sum(x.tokens + OVERHEAD for x in SYSTEM + NEW) + sum(x.tokens + OVERHEAD for g in kept for x in g)
    return cost + 100 + OVERHEAD  # + max_tokens + reply priming


def test_everything_fits_exactly() -> None:
    window = exact_window(3)
    a = assemble(SYSTEM, HISTORY, NEW, Budget(window, 100, OVERHEAD))
    assert [x["content"] for x in a.messages] == ["be brief"] + [x.content for x in HISTORY] + ["latest"]
    assert a.prompt_tokens == window - 100
    assert a.dropped_upto_seq == 0


def test_one_token_over_drops_the_oldest_whole_turn() -> None:
    window = exact_window(3) - 1
    a = assemble(SYSTEM, HISTORY, NEW, Budget(window, 100, OVERHEAD))
    assert [x["content"] for x in a.messages] == [
        "be brief",
        "user3",
        "assistant4",
        "user5",
        "assistant6",
        "latest",
    ]
    assert a.dropped_upto_seq == 2
    # and the same at the next edge
    assert assemble(SYSTEM, HISTORY, NEW, Budget(exact_window(2), 100, OVERHEAD)).dropped_upto_seq == 2
    a1 = assemble(SYSTEM, HISTORY, NEW, Budget(exact_window(2) - 1, 100, OVERHEAD))
    assert [x["content"] for x in a1.messages] == ["be brief", "user5", "assistant6", "latest"]
    assert a1.dropped_upto_seq == 4


def test_max_tokens_counts_against_the_window() -> None:
    window = exact_window(3)
    assert assemble(SYSTEM, HISTORY, NEW, Budget(window, 101, OVERHEAD)).dropped_upto_seq == 2


def test_new_turn_that_cannot_fit_is_a_400() -> None:
    window = exact_window(0)
    assert assemble(SYSTEM, HISTORY, NEW, Budget(window, 100, OVERHEAD)).messages[-1]["content"] == "latest"
    with pytest.raises(BadRequest) as err:
        assemble(SYSTEM, HISTORY, NEW, Budget(window - 1, 100, OVERHEAD))
    assert err.value.code == "context_length_exceeded"


def test_error_messages_are_not_context_and_partial_answers_are() -> None:
    history = [
        m(1, "user", 5),
        m(2, "assistant", 0, "error"),
        m(3, "user", 5),
        m(4, "assistant", 5, "partial"),
    ]
    a = assemble([], history, NEW, Budget(10_000, 100, OVERHEAD))
    assert [x["content"] for x in a.messages] == ["user1", "user3", "assistant4", "latest"]


def test_summary_replaces_dropped_turns_when_it_fits() -> None:
    summary = StoredMessage(0, "system", "SUMMARY", 6)
    window = exact_window(3) - 1  # the oldest turn would be dropped
    a = assemble(SYSTEM, HISTORY, NEW, Budget(window, 100, OVERHEAD), summary)
    assert a.used_summary
    assert [x["content"] for x in a.messages][:2] == ["be brief", "SUMMARY"]
    assert a.messages[-1]["content"] == "latest"
    assert sum(1 for x in a.messages if x["content"] == "user1") == 0
    # nothing dropped: no summary
    assert not assemble(SYSTEM, HISTORY, NEW, Budget(exact_window(3), 100, OVERHEAD), summary).used_summary


def test_estimate_is_conservative() -> None:
    assert estimate_tokens("hello world") >= 2
    assert estimate_tokens("") == 1
    assert estimate_tokens("日本語のテキスト") >= 8


async def test_counts_with_upstream_tokenize_and_falls_back(fake: FakeUpstream) -> None:
    pool = UpstreamPool(Settings(env="test"))
    pool.load(
        ModelsFile.model_validate({"models": {"fake-model": {"deployments": [{"base_url": fake.base_url}]}}})
    )
    counter = TokenCounter(pool, 2.0)
    assert await counter.count("fake-model", ["one two three", "four", ""]) == [3, 1, 0]
    assert fake.stats.requests == 0  # /tokenize is not a completion
    # cached: the same text is not recounted
    assert await counter.count("fake-model", ["one two three"]) == [3]
    # an unknown model cannot be tokenized upstream: estimate
    assert await counter.count("nope", ["abcdef"]) == [estimate_tokens("abcdef")]
    fake.stop()
    assert await counter.count("fake-model", ["x y z w v u t s r q p"]) == [
        estimate_tokens("x y z w v u t s r q p")
    ]
    await pool.close()
