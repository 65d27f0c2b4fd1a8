"""The upstream pool: which deployments serve which model, their health, and reloads.

A reload swaps the model table atomically; upstreams present before and after keep their
client, load and health; removed ones are closed once their in-flight requests finish, so a
reload never drops a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nova.config import Settings
from nova.errors import ModelNotFound, ServiceUnavailable
from nova.llm.models_file import ModelsFile, ModelSpec, load_models_file
from nova.llm.routing import Deployment, by_affinity, least_outstanding
from nova.llm.upstream import Upstream
from nova.observability import metrics

log = logging.getLogger("nova.pool")


@dataclass(slots=True)
class ServedModel:
    name: str
    spec: ModelSpec
    deployments: list[Deployment]

    def pick(self, affinity_key: bytes | None, exclude: Sequence[Deployment], tiebreak: int) -> Deployment:
        dep: Deployment | None = None
        use_affinity = affinity_key is not None and self.spec.routing.policy != "least_outstanding"
        for panic in (False, True):
            if use_affinity:
                assert affinity_key is not None
                dep = by_affinity(self.deployments, affinity_key, exclude, self.spec.routing, panic)
            else:
                dep = least_outstanding(self.deployments, exclude, tiebreak, panic)
            if dep is not None:
                break
        if dep is None:
            raise ServiceUnavailable(
                f"No healthy upstream for model {self.name!r}; retry shortly.",
                code="no_healthy_upstream",
                headers={"Retry-After": "1"},
            )
        return dep

    def any_available(self) -> bool:
        return any(d.upstream.available for d in self.deployments)


class UpstreamPool:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._upstreams: dict[tuple[str, str | None], Upstream] = {}
        self._models: dict[str, ServedModel] = {}
        self._aliases: dict[str, str] = {}
        self._health_task: asyncio.Task[None] | None = None
        self._draining: set[asyncio.Task[None]] = set()
        self._tick = 0
        self.created = int(time.time())

    # -- configuration -------------------------------------------------------------------
    def load(self, spec: ModelsFile) -> None:
        s = self._settings
        upstreams: dict[tuple[str, str | None], Upstream] = {}
        models: dict[str, ServedModel] = {}
        for name, mspec in spec.models.items():
            deps: list[Deployment] = []
            for d in mspec.deployments:
                key = (d.base_url, d.api_key())
                up = upstreams.get(key) or self._upstreams.get(key)
                if up is None:
                    up = Upstream(
                        d.base_url,
                        key[1],
                        connect_timeout=s.upstream_connect_timeout,
                        pool_timeout=s.upstream_pool_timeout,
                        max_connections=s.upstream_max_connections,
                        keepalive_seconds=s.upstream_keepalive_seconds,
                        eject_after_failures=s.eject_after_failures,
                        eject_seconds=s.eject_seconds,
                    )
                upstreams[key] = up
                deps.append(Deployment(up, d.model or name, d.weight, d.max_concurrency))
            models[name] = ServedModel(name, mspec, deps)
        removed = [u for k, u in self._upstreams.items() if k not in upstreams]
        self._upstreams, self._models, self._aliases = upstreams, models, dict(spec.aliases)
        for up in removed:
            task = asyncio.get_running_loop().create_task(self._close_when_idle(up))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        log.info("models loaded", extra={"models": sorted(models), "upstreams": len(upstreams)})

    def reload(self, path: Path) -> list[str]:
        """Re-read the models file; on error keep serving the old table and raise."""
        self.load(load_models_file(path))
        return sorted(self._models)

    async def _close_when_idle(self, up: Upstream) -> None:
        deadline = time.monotonic() + self._settings.upstream_total_timeout
        while up.outstanding > 0 and time.monotonic() < deadline:  # noqa: ASYNC110 - polled, no waiter API
            await asyncio.sleep(0.2)
        await up.close()

    # -- lookups -------------------------------------------------------------------------
    def resolve(self, name: str) -> ServedModel:
        model = self._models.get(name) or self._models.get(self._aliases.get(name, ""))
        if model is None:
            raise ModelNotFound(f"The model `{name}` does not exist.", param="model")
        return model

    def models(self) -> Iterator[tuple[str, ServedModel]]:
        yield from self._models.items()
        for alias, target in self._aliases.items():
            yield alias, self._models[target]

    def next_tiebreak(self) -> int:
        self._tick += 1
        return self._tick

    def ready(self) -> dict[str, bool]:
        return {name: m.any_available() for name, m in self._models.items()}

    # -- health --------------------------------------------------------------------------
    async def check_all(self) -> None:
        ups = list(self._upstreams.values())
        await asyncio.gather(*(u.check_health(self._settings.health_timeout) for u in ups))
        for name, m in self._models.items():
            for d in m.deployments:
                metrics.UPSTREAM_HEALTHY.labels(name, d.upstream.id).set(1 if d.upstream.available else 0)

    async def _health_loop(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:  # the checker must outlive any single bad probe
                log.exception("health check failed")
            await asyncio.sleep(self._settings.health_interval)

    async def start(self) -> None:
        await self.check_all()
        self._health_task = asyncio.get_running_loop().create_task(self._health_loop())

    async def close(self) -> None:
        if self._health_task:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        for t in list(self._draining):
            t.cancel()
        await asyncio.gather(*(u.close() for u in self._upstreams.values()), return_exceptions=True)
