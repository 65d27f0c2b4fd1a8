"""The gateway may run without the rag extra: its RAG-facing imports must stay light."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "torch",
    "sentence_transformers",
    "transformers",
    "snowballstemmer",
    "qdrant_client",
    "qdrant_edge",
    "bs4",
    "pypdf",
)


def test_gateway_side_imports_do_not_load_the_rag_stack() -> None:
    code = (
        "import sys, nova.cli, nova.api.collections, nova.api.embeddings, nova.rag.client, nova.rag.factory;"
        "nova.cli.build_parser();"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""
