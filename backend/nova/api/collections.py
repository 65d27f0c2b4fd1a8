"""Public ``/v1/collections``: a caller's document collections, upload, and search.

The tenant is always the authenticated user (``principal.user_id``); a collection of another user
is indistinguishable from one that does not exist (404). The work happens in the RAG backend
(in-process ``RagService`` or the rag service over HTTP), taken from ``app.state.rag``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from nova.api.deps import PrincipalDep
from nova.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, ServiceUnavailable
from nova.rag.backend import RagBackend
from nova.rag.schemas import (
    COLLECTION_ID_PATTERN,
    Collection,
    CollectionIn,
    Document,
    FusionKind,
    MetadataValue,
    Mode,
    SearchRequest,
    SearchResponse,
)

router = APIRouter(prefix="/v1", tags=["collections"])
_MULTIPART_SLACK = 64 * 1024


async def get_rag(request: Request) -> RagBackend:
    rag: RagBackend | None = getattr(request.app.state, "rag", None)
    if rag is None:
        raise ServiceUnavailable("Retrieval (RAG) is not enabled on this server.", code="rag_disabled")
    return rag


RagDep = Annotated[RagBackend, Depends(get_rag)]


class CollectionCreate(CollectionIn):
    id: str = Field(pattern=COLLECTION_ID_PATTERN)


class CollectionSearch(BaseModel):
    query: str = Field(min_length=1, max_length=8192)
    top_k: int | None = Field(default=None, ge=1, le=100)
    mode: Mode = "hybrid"
    fusion: FusionKind | None = None
    rerank: bool | None = None
    min_score: float | None = None
    document_ids: list[str] | None = None
    metadata: dict[str, MetadataValue] | None = None


def _collection(c: Collection) -> dict[str, Any]:
    return {"object": "collection", **c.model_dump()}


def _document(d: Document) -> dict[str, Any]:
    return {"object": "collection.document", **d.model_dump()}


@router.post("/collections", status_code=201)
async def create_collection(body: CollectionCreate, principal: PrincipalDep, rag: RagDep) -> dict[str, Any]:
    try:
        await rag.get_collection(principal.user_id, body.id)
    except NotFound:
        created = await rag.put_collection(
            principal.user_id, body.id, CollectionIn(description=body.description, metadata=body.metadata)
        )
        return _collection(created)
    raise Conflict(f"collection {body.id!r} already exists", param="id")


@router.get("/collections")
async def list_collections(principal: PrincipalDep, rag: RagDep) -> dict[str, Any]:
    return {"object": "list", "data": [_collection(c) for c in await rag.list_collections(principal.user_id)]}


@router.get("/collections/{collection_id}")
async def get_collection(collection_id: str, principal: PrincipalDep, rag: RagDep) -> dict[str, Any]:
    return _collection(await rag.get_collection(principal.user_id, collection_id))


@router.delete("/collections/{collection_id}")
async def delete_collection(collection_id: str, principal: PrincipalDep, rag: RagDep) -> dict[str, Any]:
    await rag.delete_collection(principal.user_id, collection_id)
    return {"id": collection_id, "object": "collection.deleted", "deleted": True}


@router.post("/collections/{collection_id}/documents", status_code=202)
async def upload_document(
    collection_id: str,
    request: Request,
    principal: PrincipalDep,
    rag: RagDep,
    file: Annotated[UploadFile, File()],
    metadata: Annotated[str | None, Form()] = None,
    wait: Annotated[bool, Query()] = False,
) -> JSONResponse:
    """Multipart upload (``file``; optional ``metadata`` JSON object). 202 while queued,
    201 when ``wait=true`` finished it, 200 when the same content was already there."""
    limit: int = request.app.state.settings.rag_max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + _MULTIPART_SLACK:
        raise PayloadTooLarge(f"upload exceeds the limit of {limit} bytes", param="file")
    data = await file.read(limit + 1)
    meta: Any = {}
    if metadata:
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be a JSON object", param="metadata")
    doc = await rag.add_document(
        principal.user_id,
        collection_id,
        file.filename or "upload",
        data,
        content_type=file.content_type,
        metadata=meta,
        wait=wait,
    )
    status = 200 if doc.deduplicated else 201 if doc.status in ("ready", "failed") else 202
    return JSONResponse(_document(doc), status_code=status)


@router.get("/collections/{collection_id}/documents")
async def list_documents(collection_id: str, principal: PrincipalDep, rag: RagDep) -> dict[str, Any]:
    docs = await rag.list_documents(principal.user_id, collection_id)
    return {"object": "list", "data": [_document(d) for d in docs]}


@router.get("/collections/{collection_id}/documents/{document_id}")
async def get_document(
    collection_id: str, document_id: str, principal: PrincipalDep, rag: RagDep
) -> dict[str, Any]:
    return _document(await rag.get_document(principal.user_id, collection_id, document_id))


@router.delete("/collections/{collection_id}/documents/{document_id}")
async def delete_document(
    collection_id: str, document_id: str, principal: PrincipalDep, rag: RagDep
) -> dict[str, Any]:
    await rag.delete_document(principal.user_id, collection_id, document_id)
    return {"id": document_id, "object": "collection.document.deleted", "deleted": True}


@router.post("/collections/{collection_id}/search")
async def search(
    collection_id: str, body: CollectionSearch, principal: PrincipalDep, rag: RagDep
) -> dict[str, Any]:
    result: SearchResponse = await rag.search(
        principal.user_id, SearchRequest(collections=[collection_id], **body.model_dump())
    )
    return {
        "object": "list",
        "mode": result.mode,
        "reranked": result.reranked,
        "data": result.model_dump()["hits"],
    }
