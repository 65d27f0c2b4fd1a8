"""The one RAG interface the gateway programs against: ``RagService`` (in-process) and
``RagHttpClient`` (rag service over HTTP) both implement it."""

from __future__ import annotations

from typing import Any, Protocol

from nova.rag.schemas import (
    Citation,
    Collection,
    CollectionIn,
    Document,
    EmbedResponse,
    RagOptions,
    RerankResponse,
    SearchRequest,
    SearchResponse,
)


class RagBackend(Protocol):
    async def embed(self, texts: list[str], kind: str = "document") -> EmbedResponse: ...

    async def rerank(self, query: str, documents: list[str], top_n: int | None = None) -> RerankResponse: ...

    async def search(self, tenant: str, request: SearchRequest) -> SearchResponse: ...

    async def put_collection(self, tenant: str, collection_id: str, body: CollectionIn) -> Collection: ...

    async def get_collection(self, tenant: str, collection_id: str) -> Collection: ...

    async def list_collections(self, tenant: str) -> list[Collection]: ...

    async def delete_collection(self, tenant: str, collection_id: str) -> None: ...

    async def add_document(
        self,
        tenant: str,
        collection_id: str,
        filename: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        wait: bool = False,
    ) -> Document: ...

    async def list_documents(self, tenant: str, collection_id: str) -> list[Document]: ...

    async def get_document(self, tenant: str, collection_id: str, document_id: str) -> Document: ...

    async def delete_document(self, tenant: str, collection_id: str, document_id: str) -> None: ...

    async def augment_chat(
        self, messages: list[dict[str, Any]], options: RagOptions | dict[str, Any], tenant: str
    ) -> tuple[list[dict[str, Any]], list[Citation]]: ...

    async def close(self) -> None: ...
