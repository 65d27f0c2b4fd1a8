"""First start of the embedded default: create an admin and hand back its API key exactly once."""

from __future__ import annotations

import logging

from nova.errors import Conflict
from nova.identity.service import IdentityService, KeySpec

log = logging.getLogger("nova.identity.bootstrap")


async def ensure_admin(service: IdentityService) -> str | None:
    """Create the bootstrap admin (and a key) when no admin exists; return the key, else ``None``.

    Safe with several processes starting at once: the username is unique, so only one wins and
    the others see ``Conflict`` and return ``None``."""
    if await service.count_users(role="admin") > 0:
        return None
    settings = service.settings
    secret = settings.bootstrap_admin_password
    password = secret.get_secret_value() if secret else None
    try:
        user = await service.create_user(settings.bootstrap_admin_username, password, role="admin")
    except Conflict:
        return None
    _, key = await service.create_key(user.id, KeySpec(name="bootstrap"))
    log.info("created bootstrap admin", extra={"username": user.username})
    return key


def banner(key: str, username: str) -> str:
    return (
        f"\n  Nova created the admin account '{username}'. Its API key (shown only this once):\n\n"
        f"      {key}\n\n"
        "  Use it as 'Authorization: Bearer <key>'; create more with `nova key create`.\n"
    )
