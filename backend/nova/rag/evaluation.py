"""Retrieval evaluation on a BEIR-layout dataset (``corpus.jsonl``, ``queries.jsonl``,
``qrels/test.tsv``): nDCG@10, Recall@100 and MRR@10 for dense, sparse, hybrid and (when a
reranker is configured) hybrid+rerank.

The corpus goes through the production path (chunker, embedder, sparse encoder, vector store,
``RagService.search_sync``) in a throwaway tenant, so the numbers describe what users get.
Chunk hits are collapsed to documents at their best rank.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nova.rag.schemas import SearchRequest
from nova.rag.vectorstore import ChunkPoint

EVAL_TENANT = "__eval__"
EVAL_COLLECTION = "beir"


@dataclass(slots=True)
class Dataset:
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass(slots=True)
class Row:
    name: str
    ndcg10: float
    recall100: float
    mrr10: float
    per_query: dict[str, float] = field(default_factory=dict)  # nDCG@10 per query
    seconds: float = 0.0


def load_beir(root: Path, split: str = "test") -> Dataset:
    corpus: dict[str, dict[str, str]] = {}
    with open(root / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                corpus[str(d["_id"])] = {"title": d.get("title") or "", "text": d.get("text") or ""}
    queries: dict[str, str] = {}
    with open(root / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                queries[str(q["_id"])] = str(q["text"])
    qrels: dict[str, dict[str, int]] = {}
    with open(root / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or (i == 0 and not parts[2].lstrip("-").isdigit()):
                continue
            if int(parts[2]) > 0:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries = {qid: text for qid, text in queries.items() if qid in qrels}
    if not corpus or not queries:
        raise ValueError(f"{root}: empty corpus or no judged queries")
    return Dataset(corpus, queries, qrels)


def ndcg_at(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    dcg = sum((2 ** rels.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rels.values(), reverse=True)[:k]
    idcg = sum((2**r - 1) / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], rels: dict[str, int], k: int = 100) -> float:
    return len(set(ranked[:k]) & set(rels)) / len(rels) if rels else 0.0


def mrr_at(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def score_run(name: str, run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> Row:
    per = {qid: ndcg_at(run.get(qid, []), rels) for qid, rels in qrels.items() if qid in run}
    n = len(per) or 1
    return Row(
        name=name,
        ndcg10=sum(per.values()) / n,
        recall100=sum(recall_at(run[q], qrels[q]) for q in per) / n,
        mrr10=sum(mrr_at(run[q], qrels[q]) for q in per) / n,
        per_query=per,
    )


def index_corpus(service: Any, data: Dataset, progress: Callable[[int], None] | None = None) -> int:
    """Chunk, embed (in large batches) and upsert the corpus; returns the number of chunks."""
    store = service.store
    store.delete(EVAL_TENANT, EVAL_COLLECTION)
    items: list[tuple[str, Any]] = []
    for doc_id, doc in data.corpus.items():
        text = (f"# {doc['title']}\n\n" if doc["title"] else "") + doc["text"]
        items.extend((doc_id, c) for c in service.chunker.chunk(text))
    batch = 256
    for start in range(0, len(items), batch):
        part = items[start : start + batch]
        vectors = service.embedder.embed_documents([c.text for _, c in part])
        store.upsert(
            [
                ChunkPoint(
                    tenant=EVAL_TENANT,
                    collection=EVAL_COLLECTION,
                    document_id=doc_id,
                    chunk_index=c.index,
                    text=c.text,
                    dense=vec.tolist(),
                    sparse=service.sparse.encode_document(c.text),
                    heading=c.heading,
                )
                for (doc_id, c), vec in zip(part, vectors, strict=True)
            ]
        )
        if progress:
            progress(len(part))
    store.optimize()
    return len(items)


def run_mode(service: Any, data: Dataset, mode: str, rerank: bool) -> dict[str, list[str]]:
    run: dict[str, list[str]] = {}
    for qid, text in data.queries.items():
        res = service.search_sync(
            EVAL_TENANT,
            SearchRequest(query=text, collections=[EVAL_COLLECTION], top_k=100, mode=mode, rerank=rerank),  # type: ignore[arg-type]
        )
        ranked: list[str] = []
        for hit in res.hits:
            if hit.document_id not in ranked:
                ranked.append(hit.document_id)
        run[qid] = ranked
    return run


def evaluate(service: Any, data: Dataset, *, include_rerank: bool | None = None) -> list[Row]:
    """Rows for dense, sparse, hybrid and hybrid+rerank (the last only with a reranker)."""
    modes: list[tuple[str, str, bool]] = [
        ("dense", "dense", False),
        ("sparse", "sparse", False),
        ("hybrid", "hybrid", False),
    ]
    if include_rerank is None:
        include_rerank = service.reranker is not None
    if include_rerank:
        modes.append(("hybrid+rerank", "hybrid", True))
    rows = []
    for name, mode, rerank in modes:
        started = time.perf_counter()
        row = score_run(name, run_mode(service, data, mode, rerank), data.qrels)
        row.seconds = time.perf_counter() - started
        rows.append(row)
    return rows


def format_table(rows: Iterable[Row], n_queries: int) -> str:
    lines = [
        f"{'retriever':<15} {'nDCG@10':>8} {'Recall@100':>11} {'MRR@10':>8} {'ms/query':>9}",
        "-" * 55,
    ]
    for r in rows:
        lines.append(
            f"{r.name:<15} {r.ndcg10:>8.4f} {r.recall100:>11.4f} {r.mrr10:>8.4f} "
            f"{1000 * r.seconds / max(1, n_queries):>9.1f}"
        )
    return "\n".join(lines)
