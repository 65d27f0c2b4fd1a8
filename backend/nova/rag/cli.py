"""RAG commands for the ``nova`` CLI: ``ingest``, ``eval retrieval``, ``serve-rag``.

``nova.cli`` calls ``register(subparsers)``; each command returns its exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nova.config import Settings
from nova.errors import NovaError

if TYPE_CHECKING:
    from nova.rag.backend import RagBackend
    from nova.rag.schemas import Document

INGEST_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ingest = sub.add_parser("ingest", help="index files into a RAG collection (txt, md, html, pdf)")
    ingest.add_argument("paths", nargs="+", type=Path, help="files or directories (searched recursively)")
    ingest.add_argument("--collection", required=True, help="collection id (created when missing)")
    ingest.add_argument(
        "--tenant", default="default", help="owner of the collection (a user id); default: default"
    )
    ingest.add_argument("--description", default="", help="description for a newly created collection")
    ingest.set_defaults(func=ingest_command)

    ev = sub.add_parser("eval", help="evaluation commands")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True)
    retrieval = ev_sub.add_parser("retrieval", help="nDCG@10 / Recall@100 / MRR@10 on a BEIR-layout dataset")
    retrieval.add_argument(
        "dataset", type=Path, help="directory with corpus.jsonl, queries.jsonl, qrels/test.tsv"
    )
    retrieval.add_argument("--split", default="test")
    retrieval.add_argument("--rerank-model", default=None, help="cross-encoder for the hybrid+rerank row")
    retrieval.add_argument("--json", action="store_true", help="print JSON instead of a table")
    retrieval.set_defaults(func=eval_retrieval_command)

    serve = sub.add_parser("serve-rag", help="run the rag service (NOVA_RAG_HOST:NOVA_RAG_PORT)")
    serve.set_defaults(func=serve_rag_command)


def collect_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in INGEST_SUFFIXES)
            )
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(p)
    return files


def ingest_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    return asyncio.run(_ingest(args, settings or Settings()))


async def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from nova.rag.factory import open_rag_backend
    from nova.rag.schemas import CollectionIn

    try:
        files = collect_files(args.paths)
    except FileNotFoundError as exc:
        print(f"nova ingest: no such file or directory: {exc}", file=sys.stderr)
        return 2
    if not files:
        print("nova ingest: no supported files (txt, md, html, pdf) found", file=sys.stderr)
        return 2
    # The CLI is one process and always ingests: into the rag service when NOVA_RAG_URL is set,
    # else into the embedded store, whatever the gateway's worker count or RAG switch say.
    backend = await open_rag_backend(settings.model_copy(update={"rag_enabled": True, "workers": 1}))
    assert backend is not None
    failed = 0
    chunks = 0
    try:
        try:
            await backend.get_collection(args.tenant, args.collection)
        except NovaError:
            await backend.put_collection(
                args.tenant, args.collection, CollectionIn(description=args.description)
            )
        bar = tqdm(files, unit="file", desc=f"ingest {args.collection}", file=sys.stderr)
        for path in bar:
            try:
                doc = await _ingest_one(backend, args.tenant, args.collection, path)
            except NovaError as exc:
                failed += 1
                tqdm.write(f"  {path}: {exc.message}", file=sys.stderr)
                continue
            if doc.status == "failed":
                failed += 1
                tqdm.write(f"  {path}: {doc.error}", file=sys.stderr)
            chunks += doc.chunks_total if not doc.deduplicated else 0
            bar.set_postfix(chunks=chunks, failed=failed)
        bar.close()
    finally:
        await backend.close()
    print(
        f"{len(files) - failed} of {len(files)} files indexed into {args.collection!r} ({chunks} new chunks)"
    )
    return 1 if failed else 0


async def _ingest_one(backend: RagBackend, tenant: str, collection: str, path: Path) -> Document:
    """Upload, then follow the background job with a per-chunk progress bar until it settles.

    Polling (instead of ``wait=true``) keeps long documents within HTTP timeouts when the
    backend is the rag service, and shows real progress either way.
    """
    from tqdm import tqdm

    data = await asyncio.to_thread(path.read_bytes)
    doc = await backend.add_document(tenant, collection, path.name, data)
    if doc.deduplicated or doc.status in ("ready", "failed"):
        return doc
    with tqdm(desc=f"  {path.name}", unit="chunk", leave=False, file=sys.stderr) as bar:
        while doc.status in ("queued", "processing"):
            await asyncio.sleep(0.2)
            doc = await backend.get_document(tenant, collection, doc.id)
            if doc.chunks_total and bar.total != doc.chunks_total:
                bar.total = doc.chunks_total
                bar.refresh()
            bar.update(doc.chunks_done - bar.n)
    return doc


def eval_retrieval_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    from tqdm import tqdm

    from nova.rag.evaluation import evaluate, format_table, index_corpus, load_beir
    from nova.rag.service import RagService

    base = settings or Settings()
    try:
        data = load_beir(args.dataset, args.split)
    except (OSError, ValueError, KeyError) as exc:
        print(f"nova eval retrieval: cannot read dataset: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="nova-eval-") as tmp:
        update: dict[str, Any] = {"data_dir": Path(tmp), "rag_vector_store": "edge", "rag_qdrant_url": None}
        if args.rerank_model:
            update["rag_rerank_model"] = args.rerank_model
        service = RagService(base.model_copy(update=update))
        service.start_sync()
        try:
            with tqdm(unit="chunk", desc="index", file=sys.stderr) as bar:
                n_chunks = index_corpus(service, data, progress=bar.update)
            rows = evaluate(service, data)
        finally:
            service.close_sync()
    if args.json:
        print(
            json.dumps(
                {r.name: {"ndcg@10": r.ndcg10, "recall@100": r.recall100, "mrr@10": r.mrr10} for r in rows}
            )
        )
    else:
        print(
            f"{args.dataset}: {len(data.corpus)} documents ({n_chunks} chunks), {len(data.queries)} queries"
        )
        print(format_table(rows, len(data.queries)))
    return 0


def serve_rag_command(args: argparse.Namespace) -> int:
    import uvicorn

    from nova.rag.service_app import create_rag_app

    settings = Settings()
    try:
        from nova.observability.logging import configure_logging

        configure_logging(settings.log_level, settings.log_json)
    except ImportError:
        pass
    uvicorn.run(
        create_rag_app(settings),
        host=settings.rag_host,
        port=settings.rag_port,
        access_log=False,
        log_config=None,
    )
    return 0
