"""Password hashing (argon2id via passlib) and the minimum rules a password must meet.

Hashing is CPU-bound (~40 ms), so async callers use ``hash_async``/``verify_async`` which run
on a worker thread and leave the event loop free.
"""

from __future__ import annotations

import asyncio

from passlib.context import CryptContext

from nova.errors import Unprocessable

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): strong and cheap enough for 2 cores.
_context = CryptContext(
    schemes=["argon2"],
    argon2__type="ID",
    argon2__memory_cost=19456,
    argon2__time_cost=2,
    argon2__parallelism=1,
)
MAX_LENGTH = 1024
# Verified against when the user does not exist, so unknown usernames cost the same time.
_DUMMY_HASH = _context.hash("nova-dummy-password-for-timing")


def check_rules(password: str, username: str, min_length: int) -> None:
    """Raise ``Unprocessable`` naming the first rule the password breaks."""
    if len(password) < min_length:
        raise Unprocessable(f"Password must be at least {min_length} characters.", param="password")
    if len(password) > MAX_LENGTH:
        raise Unprocessable(f"Password must be at most {MAX_LENGTH} characters.", param="password")
    if not password.strip():
        raise Unprocessable("Password must not be blank.", param="password")
    if len(set(password)) < 4:
        raise Unprocessable("Password must use at least 4 different characters.", param="password")
    if username and username.lower() in password.lower():
        raise Unprocessable("Password must not contain the username.", param="password")
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 2:
        raise Unprocessable(
            "Password must mix at least two of: lowercase, uppercase, digits, symbols.", param="password"
        )


def hash_password(password: str) -> str:
    return _context.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    if not hashed:
        _context.verify(password, _DUMMY_HASH)
        return False
    try:
        return bool(_context.verify(password, hashed))
    except (ValueError, TypeError):
        return False


async def hash_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_async(password: str, hashed: str | None) -> bool:
    return await asyncio.to_thread(verify_password, password, hashed)
