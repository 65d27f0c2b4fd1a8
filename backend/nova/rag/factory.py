"""Pick the RAG backend for the gateway: the rag service over HTTP when ``NOVA_RAG_URL`` is set,
else the in-process ``RagService`` (embedded default)."""

from __future__ import annotations

from nova.config import Settings
from nova.rag.backend import RagBackend


async def open_rag_backend(settings: Settings) -> RagBackend:
    """Ready to use; call ``close()`` on shutdown. In-process start loads the models (seconds)."""
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
