"""Cross-encoder reranking (sentence-transformers ``CrossEncoder``).

A cross-encoder reads query and passage together, which fixes the ordering mistakes a bi-encoder
plus BM25 make on near-duplicates; it is too slow for the whole corpus, so it only reorders the
fused candidates. Scores go through a sigmoid so ``min_score`` means the same for any model.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from nova.errors import ServiceUnavailable
from nova.observability.metrics import RAG_RERANK_DURATION
from nova.rag.embedder import select_device


class Reranker:
    def __init__(
        self, model: str, *, device: str = "auto", batch_size: int = 16, max_length: int = 512
    ) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        self.model_name = model
        self.device = select_device(device)
        self.batch_size = batch_size
        try:
            self._model = CrossEncoder(
                model, device=self.device, max_length=max_length, activation_fn=torch.nn.Sigmoid()
            )
        except OSError as exc:
            raise ServiceUnavailable(f"cannot load reranker model {model!r}: {exc}") from exc
        self._lock = threading.Lock()

    def score(self, query: str, passages: list[str]) -> list[float]:
        """Relevance in [0, 1] for each passage, in input order."""
        if not passages:
            return []
        started = time.perf_counter()
        with self._lock:  # fast tokenizers are not safe across threads
            scores = self._model.predict(
                [(query, p) for p in passages],
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        RAG_RERANK_DURATION.observe(time.perf_counter() - started)
        return [float(s) for s in np.asarray(scores, dtype=np.float32).reshape(-1)]
