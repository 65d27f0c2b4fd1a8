"""``RagHttpClient``: the ``RagBackend`` interface over the rag service's HTTP API.

The gateway uses it when ``NOVA_RAG_URL`` is set. Errors come back as the same ``NovaError``
subclasses the in-process service raises; an unreachable or slow rag service becomes a 503/504
instead of hanging the request.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from nova.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    NovaError,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    UpstreamError,
    UpstreamTimeout,
)
from nova.rag.grounding import inject, parse_options, search_request
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

T = TypeVar("T", bound=BaseModel)
_BY_STATUS: dict[int, type[NovaError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
    429: RateLimited,
    503: ServiceUnavailable,
    504: UpstreamTimeout,
}
_COLLECTIONS = TypeAdapter(list[Collection])
_DOCUMENTS = TypeAdapter(list[Document])


class RagHttpClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 120.0,
        context_max_chars: int = 6000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.context_max_chars = context_max_chars
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, tenant: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"x-nova-tenant": tenant} if tenant is not None else {}
        try:
            resp = await self._http.request(method, path, headers=headers, **kw)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("rag service timed out", code="rag_timeout") from exc
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"rag service unreachable: {exc}", code="rag_unavailable") from exc
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                message, code, param = str(err["message"]), err.get("code"), err.get("param")
            except (ValueError, KeyError, TypeError):
                message, code, param = f"rag service answered {resp.status_code}", None, None
            cls = _BY_STATUS.get(resp.status_code, UpstreamError)
            raise cls(message, code=code, param=param)
        return resp

    @staticmethod
    def _model(resp: httpx.Response, model: type[T]) -> T:
        return model.model_validate_json(resp.content)

    async def embed(self, texts: list[str], kind: str = "document") -> EmbedResponse:
        resp = await self._call("POST", "/embed", json={"input": texts, "kind": kind})
        return self._model(resp, EmbedResponse)

    async def rerank(self, query: str, documents: list[str], top_n: int | None = None) -> RerankResponse:
        resp = await self._call(
            "POST", "/rerank", json={"query": query, "documents": documents, "top_n": top_n}
        )
        return self._model(resp, RerankResponse)

    async def search(self, tenant: str, request: SearchRequest) -> SearchResponse:
        resp = await self._call("POST", "/search", tenant, json=request.model_dump(exclude_none=True))
        return self._model(resp, SearchResponse)

    async def put_collection(self, tenant: str, collection_id: str, body: CollectionIn) -> Collection:
        resp = await self._call("PUT", f"/collections/{collection_id}", tenant, json=body.model_dump())
        return self._model(resp, Collection)

    async def get_collection(self, tenant: str, collection_id: str) -> Collection:
        return self._model(await self._call("GET", f"/collections/{collection_id}", tenant), Collection)

    async def list_collections(self, tenant: str) -> list[Collection]:
        return _COLLECTIONS.validate_json((await self._call("GET", "/collections", tenant)).content)

    async def delete_collection(self, tenant: str, collection_id: str) -> None:
        await self._call("DELETE", f"/collections/{collection_id}", tenant)

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
    ) -> Document:
        files = {"file": (filename, data, content_type or "application/octet-stream")}
        form = {"metadata": json.dumps(metadata)} if metadata else None
        resp = await self._call(
            "POST",
            f"/collections/{collection_id}/documents",
            tenant,
            files=files,
            data=form,
            params={"wait": "true"} if wait else None,
        )
        return self._model(resp, Document)

    async def list_documents(self, tenant: str, collection_id: str) -> list[Document]:
        resp = await self._call("GET", f"/collections/{collection_id}/documents", tenant)
        return _DOCUMENTS.validate_json(resp.content)

    async def get_document(self, tenant: str, collection_id: str, document_id: str) -> Document:
        resp = await self._call("GET", f"/collections/{collection_id}/documents/{document_id}", tenant)
        return self._model(resp, Document)

    async def delete_document(self, tenant: str, collection_id: str, document_id: str) -> None:
        await self._call("DELETE", f"/collections/{collection_id}/documents/{document_id}", tenant)

    async def augment_chat(
        self, messages: list[dict[str, Any]], options: RagOptions | dict[str, Any], tenant: str
    ) -> tuple[list[dict[str, Any]], list[Citation]]:
        request = search_request(messages, parse_options(options))
        if request is None:
            return messages, []
        result = await self.search(tenant, request)
        return inject(messages, result.hits, max_chars=self.context_max_chars)
