"""Fixtures for the RAG tests: the bundled MiniLM (offline), a tiny cross-encoder built locally,
and every vector store implementation behind one parametrized fixture."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from nova.rag.edge_store import EdgeStore
from nova.rag.qdrant_store import QdrantStore
from nova.rag.vectorstore import VectorStore

STORE_KINDS = ["edge", "qdrant-local"] + (["qdrant-server"] if os.environ.get("NOVA_TEST_QDRANT_URL") else [])


def make_store(kind: str, path: Path) -> VectorStore:
    if kind == "edge":
        return EdgeStore(path / "edge")
    if kind == "qdrant-local":
        return QdrantStore(collection="test_chunks", path=path / "qdrant")
    return QdrantStore(collection=f"test_{path.name}", url=os.environ["NOVA_TEST_QDRANT_URL"])


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(store_kind: str, tmp_path: Path) -> Iterator[VectorStore]:
    s = make_store(store_kind, tmp_path)
    s.ensure(8)
    yield s
    s.close()


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    from nova.rag.embedder import Embedder

    return Embedder("sentence-transformers/all-MiniLM-L6-v2", device="cpu", batch_size=32)


@pytest.fixture(scope="session")
def tiny_cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT cross-encoder with MiniLM's vocabulary, saved like a hub checkpoint."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from nova.rag.embedder import resolve_model_path

    out = tmp_path_factory.mktemp("tiny-cross-encoder")
    tokenizer = BertTokenizerFast.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def rag_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    from nova.config import Settings

    return Settings(
        data_dir=tmp_path, rag_chunk_tokens=128, rag_chunk_overlap=16, rag_max_upload_bytes=200_000
    )


@pytest.fixture
async def service(rag_settings, embedder):  # type: ignore[no-untyped-def]
    from nova.rag.service import RagService

    svc = RagService(rag_settings, embedder=embedder)
    await svc.start()
    yield svc
    await svc.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything here needs the rag extra: tag it so ``-m 'not rag'`` can skip the lot."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.rag)
