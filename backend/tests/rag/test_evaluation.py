"""Retrieval quality on the shipped evaluation set, and the CLI commands around it."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import pytest

from nova.rag.cli import eval_retrieval_command, ingest_command, register
from nova.rag.evaluation import Row, evaluate, index_corpus, load_beir, mrr_at, ndcg_at, recall_at, score_run
from nova.rag.service import RagService

from .pdfgen import make_pdf

DATASET = Path(__file__).resolve().parents[3] / "data-pipeline" / "eval" / "appliance_kb"


def test_metric_definitions() -> None:
    rels = {"a": 1, "b": 2}
    assert ndcg_at(["b", "a", "x"], rels) == pytest.approx(1.0)
    expected = (1 / math.log2(3) + 3 / math.log2(4)) / (3 + 1 / math.log2(3))
    assert ndcg_at(["x", "a", "b"], rels) == pytest.approx(expected)
    assert recall_at(["a", "x"], rels) == 0.5 and mrr_at(["x", "x2", "b"], rels) == pytest.approx(1 / 3)
    assert mrr_at(["x"] * 10 + ["a"], rels) == 0.0
    row = score_run("r", {"q1": ["a"], "q2": ["z"]}, {"q1": {"a": 1}, "q2": {"y": 1}})
    assert row.ndcg10 == 0.5 and row.mrr10 == 0.5 and row.recall100 == 0.5


def test_shipped_dataset_shape() -> None:
    data = load_beir(DATASET)
    assert len(data.corpus) >= 200 and len(data.queries) >= 50
    assert all(doc_id in data.corpus for rels in data.qrels.values() for doc_id in rels)


@pytest.fixture(scope="module")
async def eval_rows(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> list[Row]:
    from nova.config import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("eval"))
    service = RagService(settings, embedder=embedder)
    service.start_sync()
    try:
        data = load_beir(DATASET)
        assert index_corpus(service, data) >= len(data.corpus)
        return evaluate(service, data)
    finally:
        service.close_sync()


def test_hybrid_beats_each_single_retriever(eval_rows: list[Row]) -> None:
    rows = {r.name: r for r in eval_rows}
    assert list(rows) == ["dense", "sparse", "hybrid"]
    dense, sparse, hybrid = rows["dense"], rows["sparse"], rows["hybrid"]
    print({r.name: (round(r.ndcg10, 4), round(r.recall100, 4), round(r.mrr10, 4)) for r in eval_rows})
    assert hybrid.ndcg10 > max(dense.ndcg10, sparse.ndcg10) + 0.02
    assert hybrid.mrr10 > max(dense.mrr10, sparse.mrr10) + 0.02
    assert hybrid.recall100 >= max(dense.recall100, sparse.recall100) - 1e-9
    # the set is built so each retriever has its own strength
    lex = {name: sum(v for q, v in r.per_query.items() if q.startswith("lex")) for name, r in rows.items()}
    sem = {name: sum(v for q, v in r.per_query.items() if q.startswith("sem")) for name, r in rows.items()}
    assert lex["sparse"] > lex["dense"] and sem["dense"] > sem["sparse"]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nova")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_eval_retrieval_prints_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_cross_encoder_dir: Path
) -> None:
    # a 30-document slice keeps this fast; the full set is covered above
    small = tmp_path / "small"
    (small / "qrels").mkdir(parents=True)
    data = load_beir(DATASET)
    qids = [q for q in data.queries if q.startswith("lex")][:5]
    keep = {d for q in qids for d in data.qrels[q]} | set(list(data.corpus)[:25])
    (small / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, **data.corpus[d]}) + "\n" for d in sorted(keep)), encoding="utf-8"
    )
    (small / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": data.queries[q]}) + "\n" for q in qids)
    )
    (small / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q in qids for d in data.qrels[q])
    )
    from nova.config import Settings

    settings = Settings(data_dir=tmp_path / "unused")
    args = parse(["eval", "retrieval", str(small), "--json"])
    assert args.func is eval_retrieval_command
    assert eval_retrieval_command(args, settings) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) == {"dense", "sparse", "hybrid"}
    assert out["sparse"]["mrr@10"] == pytest.approx(1.0)
    # with a reranker the table gains the hybrid+rerank row (a random tiny model: plumbing only)
    args = parse(["eval", "retrieval", str(small), "--rerank-model", str(tiny_cross_encoder_dir)])
    assert eval_retrieval_command(args, settings) == 0
    table = capsys.readouterr().out
    assert "hybrid+rerank" in table and "nDCG@10" in table and "Recall@100" in table and "MRR@10" in table
    assert eval_retrieval_command(parse(["eval", "retrieval", str(tmp_path / "missing")])) == 2


def test_cli_ingest_files_and_directories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nova.config import Settings

    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("# Alpha\n\nThe alpha valve regulates flow.")
    (docs / "sub" / "b.html").write_text("<h1>Beta</h1><p>Beta pumps move coolant.</p>")
    (docs / "sub" / "c.pdf").write_bytes(make_pdf([["Gamma sensors read pressure."]]))
    (docs / "ignored.bin").write_bytes(b"\x00\x01")
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4 nope")
    settings = Settings(data_dir=tmp_path / "data")
    args = parse(["ingest", str(docs), str(bad), "--collection", "manuals", "--tenant", "alice"])
    assert ingest_command(args, settings) == 1  # the corrupt pdf fails, the rest is indexed
    out = capsys.readouterr()
    assert "3 of 4 files indexed into 'manuals'" in out.out and "bad.pdf" in out.err

    async def check() -> None:
        svc = RagService(settings)
        await svc.start()
        try:
            docs_ = await svc.list_documents("alice", "manuals")
            assert sorted(d.filename for d in docs_) == ["a.md", "b.html", "c.pdf"]
            assert all(d.status == "ready" for d in docs_)
        finally:
            await svc.close()

    import asyncio

    asyncio.run(check())
    assert ingest_command(parse(["ingest", str(tmp_path / "nope"), "--collection", "x"]), settings) == 2
