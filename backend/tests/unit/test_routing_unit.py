"""Rendezvous affinity: stable, spread out, and only the keys of a removed replica move."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from nova.llm.models_file import RoutingSpec
from nova.llm.routing import Deployment, by_affinity, least_outstanding


def dep(name: str, weight: float = 1.0, outstanding: int = 0, cap: int = 100) -> Deployment:
    up: Any = SimpleNamespace(id=name, outstanding=outstanding, available=True)
    return Deployment(up, "m", weight, cap)


def test_affinity_is_stable_and_minimal_on_removal() -> None:
    deps = [dep(f"http://r{i}") for i in range(4)]
    spec = RoutingSpec(policy="session")
    keys = [f"conv-{i}".encode() for i in range(400)]
    first = {k: by_affinity(deps, k, (), spec) for k in keys}
    assert first == {k: by_affinity(deps, k, (), spec) for k in keys}
    counts = {d.upstream.id: sum(1 for v in first.values() if v is d) for d in deps}
    assert all(60 < c < 140 for c in counts.values()), counts
    removed = deps[1]
    after = {k: by_affinity(deps, k, (removed,), spec) for k in keys}
    moved = [k for k in keys if first[k] is not after[k]]
    assert all(first[k] is removed for k in moved)


def test_affinity_yields_to_load_bound_and_cap() -> None:
    spec = RoutingSpec(policy="session", max_load_factor=1.5)
    a, b = dep("http://a"), dep("http://b")
    key = next(f"k{i}".encode() for i in range(100) if by_affinity([a, b], f"k{i}".encode(), (), spec) is a)
    a.upstream.outstanding = 10  # far above 1.5 x mean + 1
    assert by_affinity([a, b], key, (), spec) is b
    a.upstream.outstanding, a.max_concurrency = 3, 3
    assert by_affinity([a, b], key, (), spec) is b


def test_least_outstanding_weighted() -> None:
    a, b = dep("http://a", weight=2, outstanding=4), dep("http://b", weight=1, outstanding=1)
    assert least_outstanding([a, b], (), 0) is b  # (4+1)/2 = 2.5 > (1+1)/1 = 2
    b.upstream.outstanding = 2
    assert least_outstanding([a, b], (), 0) is a
    a.upstream.available = False
    assert least_outstanding([a, b], (), 0) is b


def test_panic_mode_uses_ejected_but_healthy_replicas() -> None:
    a, b = dep("http://a"), dep("http://b")
    for d in (a, b):
        d.upstream.available = False  # both passively ejected...
        d.upstream.healthy = True  # ...but their health checks pass
    assert least_outstanding([a, b], (), 0) is None
    assert least_outstanding([a, b], (), 0, panic=True) is a
    spec = RoutingSpec(policy="session")
    assert by_affinity([a, b], b"k", (), spec) is None
    assert by_affinity([a, b], b"k", (), spec, panic=True) in (a, b)
    b.upstream.healthy = False
    assert by_affinity([a, b], b"k", (), spec, panic=True) is a
