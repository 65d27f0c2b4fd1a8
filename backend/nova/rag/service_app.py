"""The rag service: ``RagService`` over HTTP for the gateway (internal; DESIGN §3).

Tenancy comes from the gateway in the ``X-Nova-Tenant`` header, which the gateway sets from the
authenticated principal; the service itself is reachable only on the internal network and, when
``NOVA_RAG_SERVICE_TOKEN`` is set, only with that bearer token.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from nova.config import Settings
from nova.errors import BadRequest, NovaError, PayloadTooLarge, Unauthorized
from nova.observability.metrics import render
from nova.observability.telemetry import telemetry_config
from nova.rag.schemas import (
    Collection,
    CollectionIn,
    Document,
    EmbedRequest,
    EmbedResponse,
    RerankRequest,
    RerankResponse,
    SearchRequest,
    SearchResponse,
)
from nova.rag.service import RagService

TENANT_HEADER = "X-Nova-Tenant"
_MULTIPART_SLACK = 64 * 1024


def _service(request: Request) -> RagService:
    service: RagService = request.app.state.rag
    return service


def _tenant(x_nova_tenant: Annotated[str | None, Header()] = None) -> str:
    if not x_nova_tenant:
        raise BadRequest(f"missing {TENANT_HEADER} header", param=TENANT_HEADER)
    return x_nova_tenant


Svc = Annotated[RagService, Depends(_service)]
Tenant = Annotated[str, Depends(_tenant)]


def _router() -> APIRouter:
    r = APIRouter()

    @r.post("/embed")
    async def embed(body: EmbedRequest, svc: Svc) -> EmbedResponse:
        return await svc.embed(body.input, body.kind)

    @r.post("/rerank")
    async def rerank(body: RerankRequest, svc: Svc) -> RerankResponse:
        return await svc.rerank(body.query, body.documents, body.top_n)

    @r.post("/search")
    async def search(body: SearchRequest, svc: Svc, tenant: Tenant) -> SearchResponse:
        return await svc.search(tenant, body)

    @r.get("/collections")
    async def list_collections(svc: Svc, tenant: Tenant) -> list[Collection]:
        return await svc.list_collections(tenant)

    @r.put("/collections/{collection_id}")
    async def put_collection(collection_id: str, body: CollectionIn, svc: Svc, tenant: Tenant) -> Collection:
        return await svc.put_collection(tenant, collection_id, body)

    @r.get("/collections/{collection_id}")
    async def get_collection(collection_id: str, svc: Svc, tenant: Tenant) -> Collection:
        return await svc.get_collection(tenant, collection_id)

    @r.delete("/collections/{collection_id}", status_code=204)
    async def delete_collection(collection_id: str, svc: Svc, tenant: Tenant) -> Response:
        await svc.delete_collection(tenant, collection_id)
        return Response(status_code=204)

    @r.post("/collections/{collection_id}/documents", status_code=202)
    async def add_document(
        collection_id: str,
        request: Request,
        response: Response,
        svc: Svc,
        tenant: Tenant,
        file: Annotated[UploadFile, File()],
        metadata: Annotated[str | None, Form()] = None,
        wait: Annotated[bool, Query()] = False,
    ) -> Document:
        limit = svc.settings.rag_max_upload_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + _MULTIPART_SLACK:
            raise PayloadTooLarge(f"upload exceeds the limit of {limit} bytes", param="file")
        data = await file.read(limit + 1)
        meta: dict[str, Any] = {}
        if metadata:
            try:
                meta = json.loads(metadata)
            except json.JSONDecodeError as exc:
                raise BadRequest("metadata must be a JSON object", param="metadata") from exc
            if not isinstance(meta, dict):
                raise BadRequest("metadata must be a JSON object", param="metadata")
        doc = await svc.add_document(
            tenant,
            collection_id,
            file.filename or "upload",
            data,
            content_type=file.content_type,
            metadata=meta,
            wait=wait,
        )
        response.status_code = 200 if doc.deduplicated else 201 if doc.status in ("ready", "failed") else 202
        return doc

    @r.get("/collections/{collection_id}/documents")
    async def list_documents(collection_id: str, svc: Svc, tenant: Tenant) -> list[Document]:
        return await svc.list_documents(tenant, collection_id)

    @r.get("/collections/{collection_id}/documents/{document_id}")
    async def get_document(collection_id: str, document_id: str, svc: Svc, tenant: Tenant) -> Document:
        return await svc.get_document(tenant, collection_id, document_id)

    @r.delete("/collections/{collection_id}/documents/{document_id}", status_code=204)
    async def delete_document(collection_id: str, document_id: str, svc: Svc, tenant: Tenant) -> Response:
        await svc.delete_document(tenant, collection_id, document_id)
        return Response(status_code=204)

    return r


def create_rag_app(settings: Settings, service: RagService | None = None) -> FastAPI:
    """The rag service app; pass ``service`` to reuse one already started (tests, embedding)."""
    owned = service is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            svc = RagService(settings)
            await svc.start()
            app.state.rag = svc
        try:
            yield
        finally:
            if owned:
                await app.state.rag.close()

    app = FastAPI(
        title="Nova RAG service",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=telemetry_config(settings),
    )
    if service is not None:
        app.state.rag = service
    token = settings.rag_service_token.get_secret_value() if settings.rag_service_token else None

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Any:
        if token and request.url.path not in ("/healthz", "/metrics"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                err = Unauthorized("invalid rag service token")
                return JSONResponse(err.body(), status_code=err.status)
        return await call_next(request)

    @app.exception_handler(NovaError)
    async def nova_error(_: Request, exc: NovaError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        err = BadRequest(
            f"invalid request: {'.'.join(loc) or 'body'}: {first.get('msg')}", param=".".join(loc) or None
        )
        return JSONResponse(err.body(), status_code=err.status)

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        svc: RagService = request.app.state.rag
        return {
            "status": "ok",
            "store": svc.store.name,
            "embed_model": svc.embedder.model_name,
            "rerank_model": svc.reranker.model_name if svc.reranker else None,
        }

    @app.get("/metrics")
    async def metrics() -> Response:
        body, ctype = render()
        return Response(body, media_type=ctype)

    app.include_router(_router())
    return app
