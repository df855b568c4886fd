"""Password hashing with argon2id (argon2-cffi): the only form in which a user's password is ever stored.

The parameters are OWASP's recommended minimum for argon2id (19 MiB, two passes, one lane): about 30 ms per check on
a small server. Each hash carries its own parameters, so stronger settings later apply to new hashes and to old
ones as their users next sign in (``needs_rehash``). An unknown user is checked against a hash of a random
password, so a wrong user name costs the same time as a wrong password.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
#: Checked when the user does not exist or has no password, so every failure costs one argon2 verification.
_DECOY = _HASHER.hash(secrets.token_urlsafe(24))


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (with a fresh random salt)."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; with no hash, the same work is done and False returned."""
    try:
        return _HASHER.verify(stored_hash or _DECOY, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether a hash was made with weaker parameters than today's."""
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True
