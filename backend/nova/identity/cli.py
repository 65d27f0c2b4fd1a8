"""``nova user|key|migrate`` commands (registered by nova/cli.py). Settings come from NOVA_* env,
exactly as for the gateway, so the CLI talks to the same database and Redis; revocations and
user changes are published to running gateways."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from nova.config import Settings
from nova.errors import NovaError
from nova.identity.invalidation import InvalidationBus
from nova.identity.secrets import SecretsError, key_pepper
from nova.identity.service import IdentityService, KeySpec, KeyView, UserView
from nova.identity.tokens import JwtCodec
from nova.store import migrate
from nova.store.db import Database


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = subparsers.add_parser("migrate", help="apply database migrations (Alembic) up to head")
    m.add_argument("--revision", default="head")
    m.set_defaults(func=_migrate)

    user = subparsers.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True
    )
    c = user.add_parser("create", help="create a user (password read from a prompt or stdin)")
    c.add_argument("username")
    c.add_argument("--admin", action="store_true", help="give the admin role")
    c.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    c.add_argument("--no-password", action="store_true", help="API-key-only user (cannot log in)")
    c.add_argument("--rpm", type=int, default=None, help="requests per minute across all the user's keys")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_run(_user_create))
    ls = user.add_parser("list", help="list users")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_run(_user_list))
    d = user.add_parser("disable", help="disable a user (their keys and tokens stop working at once)")
    d.add_argument("username")
    d.add_argument("--enable", action="store_true", help="re-enable instead")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_run(_user_disable))

    key = subparsers.add_parser("key", help="manage API keys").add_subparsers(
        dest="key_command", required=True
    )
    kc = key.add_parser("create", help="create an API key for a user (printed once)")
    kc.add_argument("username")
    kc.add_argument("--name", default="")
    kc.add_argument("--models", default=None, help="comma-separated models this key may use")
    kc.add_argument("--rpm", type=int, default=None, help="requests per minute")
    kc.add_argument("--tpm", type=int, default=None, help="tokens per minute")
    kc.add_argument("--concurrency", type=int, default=None, help="concurrent requests")
    kc.add_argument("--monthly-budget", type=int, default=None, help="tokens per calendar month")
    kc.add_argument("--expires-days", type=float, default=None)
    kc.add_argument("--json", action="store_true")
    kc.set_defaults(func=_run(_key_create))
    kl = key.add_parser("list", help="list API keys (prefixes only)")
    kl.add_argument("--user", default=None, help="only this username's keys")
    kl.add_argument("--json", action="store_true")
    kl.set_defaults(func=_run(_key_list))
    kr = key.add_parser("revoke", help="revoke a key by id or prefix")
    kr.add_argument("key")
    kr.add_argument("--json", action="store_true")
    kr.set_defaults(func=_run(_key_revoke))


def _migrate(args: argparse.Namespace) -> int:
    settings = Settings()
    migrate.upgrade(settings, args.revision)
    print(f"database at {asyncio.run(migrate.current(settings))}")
    return 0


Command = Callable[[IdentityService, argparse.Namespace], Awaitable[int]]


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def runner(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(_with_service(command, args))
        except NovaError as err:
            print(f"error: {err.message}", file=sys.stderr)
            return 1
        except SecretsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2

    return runner


async def _with_service(command: Command, args: argparse.Namespace) -> int:
    settings = Settings()
    await migrate.upgrade_async(settings)
    db = Database(settings)
    bus = InvalidationBus(settings.redis_url, settings.redis_namespace, settings.redis_socket_timeout)
    try:
        service = IdentityService(db, settings, JwtCodec(settings), key_pepper(settings), bus)
        return await command(service, args)
    finally:
        await bus.stop()
        await db.dispose()


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat(timespec="seconds") if dt else None


def _user_dict(u: UserView) -> dict[str, Any]:
    return {"id": u.id, "username": u.username, "role": u.role, "disabled": u.disabled,
            "requests_per_minute": u.requests_per_minute, "created_at": _iso(u.created_at)}  # fmt: skip


def _key_dict(k: KeyView) -> dict[str, Any]:
    return {"id": k.id, "user_id": k.user_id, "name": k.name, "prefix": k.display, "active": k.active,
            "allowed_models": k.allowed_models, "requests_per_minute": k.requests_per_minute,
            "tokens_per_minute": k.tokens_per_minute, "max_concurrent": k.max_concurrent,
            "monthly_token_budget": k.monthly_token_budget, "created_at": _iso(k.created_at),
            "expires_at": _iso(k.expires_at), "revoked_at": _iso(k.revoked_at),
            "last_used_at": _iso(k.last_used_at)}  # fmt: skip


def _out(args: argparse.Namespace, rows: list[dict[str, Any]], columns: list[str]) -> None:
    if getattr(args, "json", False):
        for row in rows:
            print(json.dumps(row))
        return
    widths = {c: max([len(c)] + [len(str(r.get(c))) for r in rows]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c)).ljust(widths[c]) for c in columns))


async def _user_create(service: IdentityService, args: argparse.Namespace) -> int:
    password: str | None = None
    if not args.no_password:
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Repeat: ") != password:
                print("error: passwords differ", file=sys.stderr)
                return 1
    user = await service.create_user(args.username, password, "admin" if args.admin else "user", args.rpm)
    _out(args, [_user_dict(user)], ["id", "username", "role"])
    return 0


async def _user_list(service: IdentityService, args: argparse.Namespace) -> int:
    users, offset = [], 0
    while batch := await service.list_users(offset, 500):
        users += batch
        offset += len(batch)
    _out(args, [_user_dict(u) for u in users], ["id", "username", "role", "disabled", "requests_per_minute"])
    return 0


async def _user_disable(service: IdentityService, args: argparse.Namespace) -> int:
    user = await service.find_user(args.username)
    user = await service.update_user(user.id, disabled=not args.enable)
    _out(args, [_user_dict(user)], ["id", "username", "role", "disabled"])
    return 0


async def _key_create(service: IdentityService, args: argparse.Namespace) -> int:
    user = await service.find_user(args.username)
    spec = KeySpec(
        name=args.name,
        allowed_models=[m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        max_concurrent=args.concurrency,
        monthly_token_budget=args.monthly_budget,
        expires_at=datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None,
    )
    view, plaintext = await service.create_key(user.id, spec)
    if args.json:
        print(json.dumps({**_key_dict(view), "key": plaintext}))
    else:
        print(f"key id: {view.id}\napi key (shown once, store it now): {plaintext}")
    return 0


async def _key_list(service: IdentityService, args: argparse.Namespace) -> int:
    user_id = (await service.find_user(args.user)).id if args.user else None
    keys, offset = [], 0
    while batch := await service.list_keys(user_id, offset, 500):
        keys += batch
        offset += len(batch)
    cols = [
        "id",
        "user_id",
        "name",
        "prefix",
        "active",
        "requests_per_minute",
        "tokens_per_minute",
        "last_used_at",
    ]
    _out(args, [_key_dict(k) for k in keys], cols)
    return 0


async def _key_revoke(service: IdentityService, args: argparse.Namespace) -> int:
    ident: str = args.key
    if ident.startswith("nova-"):
        ident = ident.split("-")[1]
    key_id = ident if len(ident) == 32 else (await service.key_by_prefix(ident)).id
    view = await service.revoke_key(key_id)
    _out(args, [_key_dict(view)], ["id", "prefix", "active", "revoked_at"])
    return 0
