"""Token counts: the upstream's own tokenizer (vLLM ``POST /tokenize``) when it has one, else a
conservative estimate. Each text is counted once (when a message is stored) and kept with it;
a small cache spares recounting the same system prompt every turn."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence

import aiohttp
import orjson

from nova.llm.pool import UpstreamPool
from nova.llm.routing import Deployment

log = logging.getLogger("nova.memory")

_CACHE_SIZE = 4096


def estimate_tokens(text: str) -> int:
    """Upper-ish bound without a tokenizer: BPE vocabularies average ~4 bytes per token on
    English and ~3 on code or CJK, so one token per 3 UTF-8 bytes rarely undercounts."""
    return max(1, math.ceil(len(text.encode("utf-8")) / 3))


def pick_deployment(
    pool: UpstreamPool | None, model: str, exclude_roots: set[str] | frozenset[str] = frozenset()
) -> Deployment | None:
    """A replica of ``model`` for side calls (tokenize, summarize): an available one if any."""
    if pool is None:
        return None
    try:
        served = pool.resolve(model)
    except Exception:
        return None
    candidates = [d for d in served.deployments if d.upstream.root_url not in exclude_roots]
    for dep in candidates:
        if dep.upstream.available:
            return dep
    return candidates[0] if candidates else None


class TokenCounter:
    def __init__(self, pool: UpstreamPool | None, timeout: float) -> None:
        self._pool = pool
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._unsupported: set[str] = set()  # upstream roots answering 404/405 to /tokenize
        self._cache: OrderedDict[tuple[str, bytes], int] = OrderedDict()

    def _deployment(self, model: str) -> Deployment | None:
        return pick_deployment(self._pool, model, self._unsupported)

    async def count(self, model: str, texts: Sequence[str]) -> list[int]:
        """One count per text, in order; never raises (falls back to the estimate)."""
        out: list[int | None] = []
        missing: list[int] = []
        for i, text in enumerate(texts):
            key = (model, hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest())
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            else:
                missing.append(i)
            out.append(hit)
        if missing:
            counted = await asyncio.gather(*(self._count_one(model, texts[i]) for i in missing))
            for i, n in zip(missing, counted, strict=True):
                out[i] = n
                key = (model, hashlib.blake2b(texts[i].encode("utf-8"), digest_size=16).digest())
                self._cache[key] = n
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return [n if n is not None else 0 for n in out]

    async def _count_one(self, model: str, text: str) -> int:
        if not text:
            return 0
        dep = self._deployment(model)
        if dep is None:
            return estimate_tokens(text)
        up = dep.upstream
        body = orjson.dumps({"model": dep.upstream_model, "prompt": text, "add_special_tokens": False})
        try:
            async with up.session.post(
                up.root_url + "/tokenize", data=body, headers=up.headers("tokenize"), timeout=self._timeout
            ) as resp:
                if resp.status in (404, 405):
                    self._unsupported.add(up.root_url)
                    log.info("upstream has no /tokenize; estimating tokens", extra={"upstream": up.id})
                    return estimate_tokens(text)
                if resp.status != 200:
                    return estimate_tokens(text)
                data = orjson.loads(await resp.read())
            count = data.get("count")
            if isinstance(count, int) and count >= 0:
                return count
        except (aiohttp.ClientError, TimeoutError, OSError, orjson.JSONDecodeError, AttributeError):
            pass
        return estimate_tokens(text)
