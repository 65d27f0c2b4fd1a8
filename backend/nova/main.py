"""Application factory: the lifespan builds every component into ``app.state`` and closes them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from nova import __version__
from nova.api import (
    admin,
    auth,
    collections,
    completions,
    conversations,
    embeddings,
    health,
    keys,
    metrics,
    models,
    usage,
    ws_chat,
)
from nova.api.errors import install_error_handlers
from nova.api.static import SpaStaticFiles
from nova.config import Settings
from nova.identity.components import build_identity
from nova.llm.models_file import ModelsFileError, load_models_file
from nova.llm.pool import UpstreamPool
from nova.llm.relay import Relay
from nova.llm.serving import CompletionService
from nova.memory.components import open_memory
from nova.observability.context import RequestContextMiddleware
from nova.observability.telemetry import telemetry_config
from nova.rag.factory import open_rag_backend
from nova.readiness import store_probes

log = logging.getLogger("nova.main")

ReadinessProbe = Callable[[], Awaitable[bool]]


class ConfigurationError(RuntimeError):
    """Nova cannot start with this configuration; the message says what to set."""


def _install_reload_signal(pool: UpstreamPool, settings: Settings) -> bool:
    path = settings.models_file
    if path is None:
        return False

    def _reload() -> None:
        try:
            pool.reload(path)
        except ModelsFileError as err:
            log.error("models file reload failed; keeping the previous table", extra={"error": str(err)})

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _reload)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread (tests)
        return False
    return True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.models_file is None:
        raise ConfigurationError("NOVA_MODELS_FILE is required: the YAML file listing models and upstreams.")
    spec = load_models_file(settings.models_file)
    # Identity first: it migrates the database, creates the first admin in the embedded default and
    # fails fast on missing secrets (SecretsError) before any upstream work starts.
    identity = build_identity(settings)
    await identity.start()
    app.state.identity = identity
    app.state.authenticator = identity.authenticator
    pool = UpstreamPool(settings)
    pool.load(spec)
    await pool.start()
    relay = Relay(pool, settings)
    app.state.pool = pool
    rag = await open_rag_backend(settings)
    app.state.rag = rag
    app.state.completions = CompletionService(
        pool, relay, identity.admission, identity.usage, settings, rag=rag
    )
    app.state.readiness, close_probes = store_probes(settings, identity.db)
    # Conversations + session memory (issue 4): shares identity's database (already migrated);
    # None when NOVA_MEMORY_ENABLED=false or several workers run without Redis.
    memory = await open_memory(settings, pool, identity.db)
    app.state.memory = memory
    if memory is not None:
        app.state.completions.memory = memory.memory
    sighup = _install_reload_signal(pool, settings)
    log.info("nova gateway started", extra={"version": __version__, "port": settings.port})
    try:
        yield
    finally:
        if sighup:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await app.state.completions.drain()  # settles leases, records the last usage events
        if memory is not None:  # stores answers in flight, drains the write queue (before the DB closes)
            await memory.stop()
        await close_probes()
        await identity.stop()  # drains the usage writer (spools if the DB is down), flushes last_used_at
        await pool.close()
        if rag is not None:
            await rag.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="Nova", version=__version__, lifespan=lifespan, telemetry=telemetry_config(settings))
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(models.router)
    app.include_router(embeddings.router)
    app.include_router(collections.router)
    app.include_router(models.admin_router)
    app.include_router(health.router)
    for identity_router in (auth.router, keys.router, usage.router, admin.router):
        app.include_router(identity_router)
    app.include_router(conversations.router)
    app.router.routes.extend(ws_chat.routes)
    if settings.metrics_enabled:
        app.include_router(metrics.router)
    # Middleware added first sits innermost: request id → CORS → relay hot path → FastAPI routing.
    app.add_middleware(completions.RelayEndpoints)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["authorization", "content-type", "x-request-id", "x-session-id"],
            expose_headers=["x-request-id"],
        )
    app.add_middleware(RequestContextMiddleware)
    if settings.static_dir is not None and settings.static_dir.is_dir():
        app.mount("/", SpaStaticFiles(settings.static_dir), name="ui")
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker builds its own app from the environment)."""
    return create_app()
