"""The official OpenAI SDK against Nova: sync and async, streamed and not, tools, extra_body."""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes.upstream import FakeUpstream, token_text
from tests.gateway import ADMIN_KEY, GatewayServer

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
EXPECTED = "".join(token_text(i) for i in range(8))


def client(gw: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=ADMIN_KEY, max_retries=0)


def test_sync_chat_and_stream(gateway: GatewayServer) -> None:
    c = client(gateway)
    r = c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == EXPECTED
    assert r.usage is not None and r.usage.completion_tokens == 8
    stream = c.chat.completions.create(
        model="nano",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == EXPECTED
    assert usage is not None and usage.completion_tokens == 8


def test_tools_and_passthrough_fields(gateway: GatewayServer, fake: FakeUpstream) -> None:
    c = client(gateway)
    r = c.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="auto",
        response_format={"type": "json_object"},
        logprobs=True,
        top_logprobs=2,
        n=2,
        stop=["\n\n"],
        seed=42,
        temperature=0.1,
        extra_body={"top_k": 5, "repetition_penalty": 1.1, "guided_json": {"type": "object"}},
    )
    assert len(r.choices) == 2
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    sent = fake.stats.recorded[-1].body
    for key, value in {
        "tools": TOOLS,
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "logprobs": True,
        "top_logprobs": 2,
        "n": 2,
        "stop": ["\n\n"],
        "seed": 42,
        "top_k": 5,
        "repetition_penalty": 1.1,
        "guided_json": {"type": "object"},
    }.items():
        assert sent[key] == value, key


def test_nova_extensions_are_validated_not_forwarded(gateway: GatewayServer, fake: FakeUpstream) -> None:
    c = client(gateway)
    with pytest.raises(openai.BadRequestError) as err:  # this gateway runs without retrieval
        c.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"rag": {"collections": ["docs"]}},
        )
    assert err.value.body["param"] == "rag"  # type: ignore[index]
    assert fake.stats.requests == 0
    c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}], user="u-1")
    assert fake.stats.recorded[-1].body["user"] == "u-1"


def test_sdk_errors_map_to_exceptions(gateway: GatewayServer) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        client(gateway).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert nf.value.code == "model_not_found"
    bad = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


async def test_async_chat_stream_and_completions(gateway: GatewayServer) -> None:
    c = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=ADMIN_KEY, max_retries=0)
    r = await c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == EXPECTED
    stream = await c.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = ""
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    assert text == EXPECTED
    comp = await c.completions.create(model="fake-model", prompt="Say", max_tokens=2)
    assert comp.choices[0].text == "t0 t1 "
    models = await c.models.list()
    assert {m.id for m in models.data} == {"fake-model", "nano"}
    await c.close()
