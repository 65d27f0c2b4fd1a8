"""The web UI image's nginx.conf, served by a real nginx with the image's command line."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import DOCKER, INSTALL_HINT, Dockerfile, run

SITE_CONF = DOCKER / "frontend" / "nginx.conf"


def nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
    if not found:
        pytest.fail(f"nginx not found: {INSTALL_HINT}")
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("nginx")
    html = tmp / "html"
    (html / "assets").mkdir(parents=True)
    (html / "index.html").write_text(
        "<!doctype html><div id=root></div><script src=/assets/app-1a2b.js></script>"
    )
    (html / "assets" / "app-1a2b.js").write_text("console.log('nova')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    site_conf = SITE_CONF.read_text()
    assert "listen 8080;" in site_conf and "root /usr/share/nginx/html;" in site_conf
    site_conf = (
        site_conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        .replace("listen [::]:8080;", "")
        .replace("root /usr/share/nginx/html;", f"root {html};")
    )
    (tmp / "default.conf").write_text(site_conf)
    # The image's main nginx.conf (nginx-unprivileged) includes conf.d/*.conf inside http {}; this is
    # the same frame with paths under tmp.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = " ".join(f"{k}_temp_path {tmp}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n"
        f"events {{}}\nhttp {{\n include /etc/nginx/mime.types;\n access_log off;\n {temp}\n"
        f" include {tmp}/default.conf;\n}}\n"
    )
    cmd = Dockerfile.parse(DOCKER / "frontend" / "Dockerfile").exec_form("CMD")
    assert cmd and cmd[0] == "nginx"
    check = run([nginx(), "-t", "-p", str(tmp), "-c", str(tmp / "nginx.conf")])
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [nginx(), "-p", str(tmp), "-c", str(tmp / "nginx.conf"), *cmd[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_health_endpoint(site: str) -> None:
    r = httpx.get(f"{site}/healthz")
    assert r.status_code == 200 and r.text == "ok\n"


@pytest.mark.parametrize("path", ["/", "/chat/3f2a", "/settings/keys"])
def test_spa_routes_serve_index_uncached(site: str, path: str) -> None:
    r = httpx.get(site + path)
    assert r.status_code == 200 and "id=root" in r.text
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"


def test_fingerprinted_assets_are_immutable_and_missing_ones_404(site: str) -> None:
    r = httpx.get(f"{site}/assets/app-1a2b.js")
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    assert r.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert r.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{site}/assets/missing.js").status_code == 404
