"""End to end through the real vLLM CPU server (SmolLM2): directly, then through `nova serve` with the
official OpenAI SDK. Proves answers, token accounting and that a client disconnect frees vLLM's request."""

from __future__ import annotations

import time

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import ALIAS, SERVED_NAME, NovaGateway, VllmServer, metric_sum

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
LONG_TASK = [{"role": "user", "content": "Write a very long, detailed essay about the history of computing."}]


def client(gw: NovaGateway) -> OpenAI:
    return OpenAI(base_url=f"{gw.url}/v1", api_key=gw.api_key, timeout=300.0, max_retries=0)


def tokens(gw: NovaGateway, kind: str) -> float:
    return metric_sum(gw.metrics_text(), "nova_tokens_total", model=SERVED_NAME, kind=kind)


def test_vllm_serves_the_openai_api(vllm_server: VllmServer) -> None:
    """The server `make run` starts: model listed with its context, chat tokenizer, vLLM metrics."""
    models = httpx.get(f"{vllm_server.url}/v1/models", timeout=10).json()["data"]
    assert [(m["id"], m["max_model_len"]) for m in models] == [(SERVED_NAME, 2048)]
    tok = httpx.post(
        f"{vllm_server.url}/tokenize", json={"model": SERVED_NAME, "messages": QUESTION}, timeout=30
    ).json()
    assert tok["count"] == len(tok["tokens"]) > 10  # chat template applied around the question
    exported = {
        s.name
        for family in text_string_to_metric_families(vllm_server.metrics_text())
        for s in family.samples
        if s.labels.get("model_name") == SERVED_NAME
    }
    # The names the dashboards and alert rules use (DESIGN.md): vLLM must really export them.
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_count",
        "vllm:inter_token_latency_seconds_count",
        "vllm:e2e_request_latency_seconds_count",
    ):
        assert name in exported, name


def test_chat_non_streamed_through_gateway(nova_gateway: NovaGateway) -> None:
    before = tokens(nova_gateway, "completion")
    resp = client(nova_gateway).chat.completions.create(
        model=ALIAS, messages=QUESTION, max_tokens=40, temperature=0
    )
    assert resp.choices[0].message.content
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert "paris" in resp.choices[0].message.content.lower()
    assert tokens(nova_gateway, "completion") - before == resp.usage.completion_tokens


def test_chat_streamed_with_usage_through_gateway(nova_gateway: NovaGateway) -> None:
    stream = client(nova_gateway).chat.completions.create(
        model=SERVED_NAME,
        messages=QUESTION,
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts: list[str] = []
    finish: list[str] = []
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert "".join(parts).strip()
    assert finish and finish[-1] in ("stop", "length")
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.completion_tokens >= len([p for p in parts if p])  # one or more tokens per content chunk


async def test_stream_usage_metered_even_when_not_requested(nova_gateway: NovaGateway) -> None:
    """The gateway asks vLLM for usage to meter tokens and strips that chunk for a client that did not."""
    before = tokens(nova_gateway, "completion")
    aclient = AsyncOpenAI(base_url=f"{nova_gateway.url}/v1", api_key=nova_gateway.api_key, max_retries=0)
    stream = await aclient.chat.completions.create(
        model=ALIAS,
        messages=QUESTION,
        max_tokens=24,
        temperature=0,
        stream=True,
    )
    content_chunks = 0
    async for chunk in stream:
        assert chunk.usage is None
        content_chunks += sum(1 for c in chunk.choices if c.delta.content)
    await aclient.close()
    assert content_chunks > 0
    metered = tokens(nova_gateway, "completion") - before
    assert content_chunks <= metered <= 24


def test_client_disconnect_cancels_vllm_request(nova_gateway: NovaGateway, vllm_server: VllmServer) -> None:
    """Closing a long stream mid-way must abort the request in vLLM (its KV cache is freed at once),
    not leave it generating the remaining ~1,500 tokens for nobody."""
    assert vllm_server.wait_metric("vllm:num_requests_running", 0, timeout=60) == 0
    generated_before = vllm_server.metric("vllm:generation_tokens_total")
    disconnects_before = metric_sum(nova_gateway.metrics_text(), "nova_client_disconnects_total")
    stream = client(nova_gateway).chat.completions.create(
        model=SERVED_NAME,
        messages=LONG_TASK,
        max_tokens=1500,
        stream=True,
        extra_body={"ignore_eos": True},  # vLLM extension: the answer cannot end early by itself
    )
    received = 0
    for chunk in stream:
        received += sum(1 for c in chunk.choices if c.delta.content)
        if received >= 5:
            break
    assert received >= 5
    # The request really is running in vLLM now and does not end by itself, so the check below can fail.
    assert vllm_server.metric("vllm:num_requests_running") == 1
    assert vllm_server.wait_metric("vllm:num_requests_running", 0, timeout=2) == 1
    stream.close()

    # ~1,500 tokens at ~20 tokens/s would keep it running for over a minute if the abort did not reach vLLM.
    assert vllm_server.wait_metric("vllm:num_requests_running", 0, timeout=20) == 0
    generated = vllm_server.metric("vllm:generation_tokens_total") - generated_before
    assert generated < 1500
    assert vllm_server.metric("vllm:num_requests_waiting") == 0
    deadline = time.monotonic() + 10
    while metric_sum(nova_gateway.metrics_text(), "nova_client_disconnects_total") == disconnects_before:
        assert time.monotonic() < deadline, "the gateway did not count the client disconnect"
        time.sleep(0.2)
