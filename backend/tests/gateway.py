"""Run a real Nova gateway (uvicorn, own thread and loop) for integration tests."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
import yaml

from nova.config import Settings
from nova.main import create_app

ADMIN_KEY = "sk-test-admin-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_models_file(path: Path, models: dict[str, Any], aliases: dict[str, str] | None = None) -> Path:
    path.write_text(yaml.safe_dump({"models": models, "aliases": aliases or {}}))
    return path


class GatewayServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=settings.port,
            loop="asyncio",
            http="httptools",
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def start(self) -> GatewayServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("gateway failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def gateway_settings(tmp: Path, models_file: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "env": "test",
        "port": free_port(),
        "data_dir": tmp,
        "models_file": models_file,
        "admin_api_key": ADMIN_KEY,
        "health_interval": 0.2,
        "upstream_retry_backoff": 0.01,
        "log_json": True,
        "rag_enabled": False,  # tests that need retrieval turn it on (it loads an embedding model)
    }
    base.update(overrides)
    return Settings(**base)
