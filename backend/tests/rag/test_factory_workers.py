"""Several gateway workers cannot share the embedded vector store's files: RAG turns itself off
(logged) unless a rag service is configured, like conversations do without Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from nova.config import Settings
from nova.rag.factory import open_rag_backend


async def test_several_workers_without_rag_service_disable_rag(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = Settings(env="test", data_dir=tmp_path, workers=2, rag_enabled=True)
    assert await open_rag_backend(s) is None
    assert "NOVA_RAG_URL" in caplog.text
    assert await open_rag_backend(Settings(env="test", data_dir=tmp_path, rag_enabled=False)) is None
    remote = await open_rag_backend(
        Settings(env="test", data_dir=tmp_path, workers=2, rag_url="http://127.0.0.1:9")
    )
    assert remote is not None
    await remote.close()
