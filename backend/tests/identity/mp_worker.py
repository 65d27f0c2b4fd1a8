"""A stand-in gateway process for the multi-process tests (run as a script, not collected).

Usage: python mp_worker.py MODE SETTINGS_JSON ARGS_JSON; prints one JSON line per event.
Modes:
  admit   - warm up, print READY, read a start time from stdin, then fire N acquires (concurrency
            C) at that moment; report admitted count/tokens.
  auth    - cache a key, print READY, then either revoke it when told (stdin "revoke") or poll
            authenticate() until the key is rejected and report when.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

from nova.config import Settings
from nova.errors import RateLimited, Unauthorized
from nova.identity.invalidation import InvalidationBus
from nova.identity.principal import KeyLimits, Principal
from nova.identity.secrets import key_pepper
from nova.identity.service import IdentityService
from nova.identity.store_authenticator import StoreAuthenticator
from nova.identity.tokens import JwtCodec
from nova.limits.redis_backend import RedisAdmission
from nova.store.db import Database


def emit(**data: Any) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def admit(settings: Settings, args: dict[str, Any]) -> None:
    adm = RedisAdmission.from_settings(settings)
    principal = Principal(
        user_id=args["user_id"], role="user", key_id=args["key_id"], limits=KeyLimits(**args["limits"])
    )
    sizes: list[int] = args.get("sizes", [0])
    admitted = tokens = refused = 0
    await adm.acquire(Principal(user_id="warmup", role="user", key_id=uuid.uuid4().hex,
                                limits=KeyLimits(requests_per_minute=10**6)), "m", 0)  # fmt: skip
    emit(event="ready")
    start_at = float(await asyncio.to_thread(sys.stdin.readline))  # both processes fire together
    await asyncio.sleep(max(0.0, start_at - time.time()))

    async def one(i: int) -> None:
        nonlocal admitted, tokens, refused
        size = sizes[i % len(sizes)]
        try:
            lease = await adm.acquire(principal, "m", size)
        except RateLimited:
            refused += 1
            return
        admitted += 1
        tokens += size
        await lease.settle(size)

    sem = asyncio.Semaphore(args["concurrency"])

    async def bounded(i: int) -> None:
        async with sem:
            await one(i)

    await asyncio.gather(*(bounded(i) for i in range(args["requests"])))
    emit(admitted=admitted, tokens=tokens, refused=refused)
    await adm.aclose()


async def auth(settings: Settings, args: dict[str, Any]) -> None:
    db = Database(settings)
    bus = InvalidationBus(settings.redis_url, settings.redis_namespace)
    jwt = JwtCodec(settings)
    pepper = key_pepper(settings)
    authn = StoreAuthenticator(db, settings, jwt, pepper, bus)
    service = IdentityService(db, settings, jwt, pepper, bus)
    await bus.start()
    await asyncio.wait_for(bus.subscribed.wait(), timeout=10)
    await authn.authenticate(args["key"])  # now cached
    emit(event="ready")
    if args["role"] == "revoker":
        line = await asyncio.to_thread(sys.stdin.readline)
        assert line.strip() == "revoke"
        await service.revoke_key(args["key_id"])
        emit(event="revoked", at=time.time())
        try:
            await authn.authenticate(args["key"])
            emit(event="still-accepted-locally")
        except Unauthorized:
            emit(event="rejected-locally")
    else:
        hits = 0
        deadline = time.time() + args.get("timeout", 15)
        while time.time() < deadline:
            try:
                await authn.authenticate(args["key"])
                hits += 1
            except Unauthorized:
                emit(event="rejected", at=time.time(), cached_hits=hits, db_lookups=authn.db_lookups)
                break
            await asyncio.sleep(0.002)
        else:
            emit(event="timeout", cached_hits=hits)
    await bus.stop()
    await db.dispose()


def main() -> None:
    mode, settings_json, args_json = sys.argv[1:4]
    settings = Settings(**json.loads(settings_json))
    args = json.loads(args_json)
    asyncio.run(admit(settings, args) if mode == "admit" else auth(settings, args))


if __name__ == "__main__":
    main()
