"""``nova serve-rag`` as a real process: the gateway's HTTP client talks to it over TCP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from nova.rag.client import RagHttpClient
from nova.rag.schemas import CollectionIn, SearchRequest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_rag_process(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "NOVA_DATA_DIR": str(tmp_path),
        "NOVA_RAG_HOST": "127.0.0.1",
        "NOVA_RAG_PORT": str(port),
        "NOVA_RAG_SERVICE_TOKEN": "internal-secret",
        "NOVA_LOG_JSON": "false",
        "HF_HUB_OFFLINE": "1",
    }
    log = tmp_path / "serve-rag.log"
    out = log.open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nova.cli", "serve-rag", env=env, stdout=out, stderr=subprocess.STDOUT
    )
    client = RagHttpClient(f"http://127.0.0.1:{port}", token="internal-secret", timeout=60)
    try:
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient() as probe:
            while True:
                assert proc.returncode is None, log.read_bytes().decode()
                try:
                    if (await probe.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "rag service did not become ready"
                await asyncio.sleep(0.5)
        await client.put_collection("acme", "kb", CollectionIn())
        doc = await client.add_document(
            "acme", "kb", "a.md", b"# Boiler\n\nFault H3 means scalding water.", wait=True
        )
        assert doc.status == "ready"
        res = await client.search("acme", SearchRequest(query="H3 scalding", collections=["kb"]))
        assert res.hits[0].document_id == doc.id
    finally:
        await client.close()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        out.close()
