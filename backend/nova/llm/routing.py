"""Choosing a replica: weighted least-outstanding, or affinity by a stable key.

Affinity uses weighted rendezvous hashing (stable across gateway replicas and restarts, and only
the keys of a removed replica move). It yields to the next-ranked replica when the preferred
one is unavailable, at its concurrency cap, or loaded beyond ``max_load_factor`` times the mean
(bounded-load consistent hashing), so a hot key cannot pile onto one server.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from nova.llm.models_file import RoutingSpec
from nova.llm.upstream import Upstream


@dataclass(slots=True)
class Deployment:
    upstream: Upstream
    upstream_model: str
    weight: float
    max_concurrency: int

    def has_room(self) -> bool:
        return self.upstream.outstanding < self.max_concurrency


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _rendezvous_score(key: bytes, dep: Deployment) -> float:
    # Weighted HRW: -w / ln(u), u uniform in (0, 1) from the hash of (key, replica).
    u = (_hash64(key + b"|" + dep.upstream.id.encode()) + 1) / (2**64 + 1)
    return -dep.weight / math.log(u)


def _usable(dep: Deployment, panic: bool) -> bool:
    # In panic mode (no replica available) an ejected replica that passes active health checks
    # is used anyway: passive ejection may divert traffic, never turn a blip into an outage.
    up = dep.upstream
    return (up.healthy if panic else up.available) and dep.has_room()


def least_outstanding(
    candidates: Sequence[Deployment], exclude: Collection[Deployment], tiebreak: int, panic: bool = False
) -> Deployment | None:
    best: Deployment | None = None
    best_load = math.inf
    n = len(candidates)
    for i in range(n):
        dep = candidates[(i + tiebreak) % n]
        if dep in exclude or not _usable(dep, panic):
            continue
        load = (dep.upstream.outstanding + 1) / dep.weight
        if load < best_load:
            best, best_load = dep, load
    return best


def by_affinity(
    candidates: Sequence[Deployment],
    key: bytes,
    exclude: Collection[Deployment],
    spec: RoutingSpec,
    panic: bool = False,
) -> Deployment | None:
    usable = [d for d in candidates if d not in exclude and _usable(d, panic)]
    if not usable:
        return None
    if len(usable) == 1:
        return usable[0]
    mean = sum(d.upstream.outstanding for d in usable) / len(usable)
    bound = spec.max_load_factor * mean + 1
    ranked = sorted(usable, key=lambda d: _rendezvous_score(key, d), reverse=True)
    for dep in ranked:
        if dep.upstream.outstanding <= bound:
            return dep
    return ranked[0]


def prefix_key(messages: object, count: int) -> bytes | None:
    """Stable key of the leading messages (system prompt + first turns) a prefix cache holds."""
    if isinstance(messages, list) and messages:
        h = hashlib.blake2b(digest_size=16)
        for m in messages[:count]:
            if isinstance(m, dict):
                h.update(str(m.get("role", "")).encode())
                h.update(b"\x00")
                h.update(str(m.get("content", "")).encode())
                h.update(b"\x01")
        return h.digest()
    if isinstance(messages, str) and messages:
        return messages[:1024].encode()
    return None
