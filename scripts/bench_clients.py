"""Upstream HTTP client choice, by measurement: the same relay work (POST a chat request, read
the JSON answer) through aiohttp and httpx against the mock vLLM upstream, concurrency 64,
reporting requests/s and client CPU per request. Used to pick the client of nova.llm.upstream.

    python scripts/bench_clients.py --url http://127.0.0.1:18001/v1/chat/completions
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

import aiohttp
import httpx
import uvloop

BODY = b'{"model":"mock-model","messages":[{"role":"user","content":"hello"}],"max_tokens":64}'
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer EMPTY"}


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_aiohttp(url: str, n: int, conc: int) -> int:
    connector = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(connector=connector) as s:
        done = 0

        async def worker() -> None:
            nonlocal done
            while done < n:
                done += 1
                async with s.post(url, data=BODY, headers=HEADERS) as r:
                    await r.read()

        await asyncio.gather(*(worker() for _ in range(conc)))
        return done


async def run_httpx(url: str, n: int, conc: int) -> int:
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(limits=limits, timeout=30) as c:
        done = 0

        async def worker() -> None:
            nonlocal done
            while done < n:
                done += 1
                r = await c.post(url, content=BODY, headers=HEADERS)
                r.read()

        await asyncio.gather(*(worker() for _ in range(conc)))
        return done


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:18001/v1/chat/completions")
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"aiohttp": [], "httpx": []}
    for _ in range(args.rounds):
        for name, fn in (("aiohttp", run_aiohttp), ("httpx", run_httpx)):
            uvloop.run(fn(args.url, 300, args.concurrency))  # warm-up
            c0, t0 = cpu(), time.perf_counter()
            n = uvloop.run(fn(args.url, args.requests, args.concurrency))
            c1, t1 = cpu(), time.perf_counter()
            results[name].append((n / (t1 - t0), (c1 - c0) / n * 1e6))
    print("| client | req/s (median) | client CPU per request (µs, median) |")
    print("|---|---:|---:|")
    for name, rows in results.items():
        rps = sorted(r[0] for r in rows)[len(rows) // 2]
        us = sorted(r[1] for r in rows)[len(rows) // 2]
        print(f"| {name} | {rps:,.0f} | {us:.0f} |")


if __name__ == "__main__":
    main()
