"""Pick the RAG backend for the gateway: the rag service over HTTP when ``NOVA_RAG_URL`` is set,
else the in-process ``RagService`` (embedded default)."""

from __future__ import annotations

import logging

from nova.config import Settings
from nova.rag.backend import RagBackend

log = logging.getLogger("nova.rag")


async def open_rag_backend(settings: Settings) -> RagBackend | None:
    """Ready to use; call ``close()`` on shutdown. In-process start loads the models (seconds).

    ``None`` (RAG disabled, logged) with several workers and no rag service: the embedded store
    is one process's files, which a second worker cannot open. Conversations do the same."""
    if not settings.rag_url and not settings.rag_enabled:
        return None
    if not settings.rag_url and settings.workers > 1:
        log.warning(
            "RAG disabled: %d workers need a rag service (NOVA_RAG_URL, `nova serve-rag`)", settings.workers
        )
        return None
    if settings.rag_url:
        from nova.rag.client import RagHttpClient

        token = settings.rag_service_token.get_secret_value() if settings.rag_service_token else None
        return RagHttpClient(
            settings.rag_url,
            token=token,
            timeout=settings.rag_request_timeout,
            context_max_chars=settings.rag_context_max_chars,
        )
    from nova.rag.service import RagService

    service = RagService(settings)
    await service.start()
    return service
