"""Self-contained result tickets and prepared-statement handles, signed so that any replica redeems them.

A signed handle is ``b"NF" | kind | len(kid) | kid | zlib(JSON claims) | HMAC-SHA256``: the claims say what to run
(the SQL as the client wrote it, the session's catalog and dialect, the announced schemas, bound parameters as an
Arrow IPC stream), for whom (the user: at redemption the caller must be that user, and its grants are checked
again) and until when (``exp``). The MAC covers everything before it, under a key named by ``kid``: keys live in
the catalog sealed by the vault (``catalog/key_handover.py``'s ``HANDLE_KEYS``), so every replica sharing the
catalog holds them; a gateway without a catalog signs with a random key of its own. The HMAC is the standard
library's, the encryption of sealed claims (an upstream server's tickets) AES-GCM from ``cryptography``; nothing
here is a hand-made primitive.

A handle that does not verify (altered, cut, made up, signed by a key this catalog never had) or has expired is
refused with INVALID_ARGUMENT naming what is wrong (``server/flight/status.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from nexus_flight.core.errors import InvalidQueryError
from nexus_flight.core.identity_memo import IdentityMemo

MAGIC = b"NF"
TICKET = b"t"
PREPARED = b"p"
_MAC_BYTES = 32
#: An unknown kid reloads the keys (another replica rotated), at most this often (made-up kids cost little).
_RELOAD_ON_UNKNOWN_SECONDS = 0.25
#: How often the signing key is looked up again (a rotation's new key signs everywhere within this).
RELOAD_SECONDS = 30.0
#: Clock skew tolerated between replicas on ``exp``.
LEEWAY_SECONDS = 2.0
_KIND_NAMES = {TICKET: "ticket", PREPARED: "prepared statement handle"}


class HandleSigner:
    """Signs and verifies handles with the newest key of ``keys`` (each with ``kid``, ``secret``, ``retired_at``).

    Args:
        keys: Returns the keys, the signing one first; None: one random key of this process.

    """

    def __init__(self, keys: Callable[[], Sequence[Any]] | None = None) -> None:
        self._load = keys
        self._keys: dict[str, bytes] = {}
        self._current: str = ""
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()
        #: Clock skew tolerated between replicas on ``exp`` (tests set 0).
        self.leeway_seconds = LEEWAY_SECONDS
        if keys is None:
            self._current = "local-" + secrets.token_hex(4)
            self._keys = {self._current: secrets.token_bytes(32)}
            self._loaded_at = float("inf")
        else:
            self.reload()

    def reload(self) -> None:
        """Read the keys again."""
        assert self._load is not None
        keys = list(self._load())
        with self._lock:
            self._keys = {k.kid: k.secret for k in keys}
            self._current = keys[0].kid if keys else ""
            self._loaded_at = time.monotonic()

    def _signing_key(self) -> tuple[str, bytes]:
        """The kid and secret new handles are signed with (looked up again every ``RELOAD_SECONDS``)."""
        if time.monotonic() - self._loaded_at > RELOAD_SECONDS:
            self.reload()
        with self._lock:
            kid, secret = self._current, self._keys.get(self._current)
        if secret is None:
            raise InvalidQueryError("the gateway has no handle signing key")
        return kid, secret

    def sign(self, kind: bytes, claims: dict[str, Any]) -> bytes:
        """A handle of ``kind`` carrying ``claims`` (JSON-ready; bytes values go in as base64 text)."""
        kid, secret = self._signing_key()
        encoded_kid = kid.encode()
        body = zlib.compress(json.dumps(claims, separators=(",", ":")).encode(), 1)
        signed = MAGIC + kind + bytes([len(encoded_kid)]) + encoded_kid + body
        return signed + hmac.new(secret, signed, hashlib.sha256).digest()

    def open(self, kind: bytes, handle: bytes) -> dict[str, Any]:
        """The claims of a handle of ``kind`` that verifies and has not expired.

        Raises:
            InvalidQueryError: the handle is malformed, altered, signed by an unknown key, or expired.

        """
        what = _KIND_NAMES[kind]
        if len(handle) < 4 + _MAC_BYTES or handle[:2] != MAGIC or handle[2:3] != kind:
            raise InvalidQueryError(f"not a valid {what}: it was not issued by this gateway")
        kid_end = 4 + handle[3]
        kid = handle[4:kid_end].decode(errors="replace")
        signed, mac = handle[:-_MAC_BYTES], handle[-_MAC_BYTES:]
        secret = self._key(kid)
        if secret is None:
            raise InvalidQueryError(f"not a valid {what}: it was signed by a key this gateway does not know "
                                    "(another catalog's, or one retired long ago)")
        if not hmac.compare_digest(mac, hmac.new(secret, signed, hashlib.sha256).digest()):
            raise InvalidQueryError(f"not a valid {what}: its signature does not match (it was altered)")
        try:
            claims = json.loads(zlib.decompress(handle[kid_end:-_MAC_BYTES]))
        except (zlib.error, ValueError):
            raise InvalidQueryError(f"not a valid {what}: its content does not decode") from None
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int | float):
            raise InvalidQueryError(f"not a valid {what}: it carries no expiry")
        if self.expired(claims["exp"]):
            raise expired(kind)
        return claims

    def seal(self, data: bytes) -> str:
        """``data`` encrypted (AES-GCM under a key derived from the signing key) for a claim only replicas read."""
        kid, secret = self._signing_key()
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(_sealing_key(secret)).encrypt(nonce, data, kid.encode())
        return f"{kid}:{base64.b64encode(nonce + sealed).decode()}"

    def unseal(self, text: object) -> bytes:
        """The data ``seal`` encrypted.

        Raises:
            InvalidQueryError: it is not sealed by a key of this gateway.

        """
        kid, _, body = str(text).partition(":")
        secret = self._key(kid)
        try:
            raw = base64.b64decode(body, validate=True)
            if secret is None:
                raise ValueError(kid)
            return AESGCM(_sealing_key(secret)).decrypt(raw[:12], raw[12:], kid.encode())
        except (ValueError, InvalidTag):
            raise InvalidQueryError("not a valid ticket: its sealed part does not open") from None

    def expired(self, expires_at: float) -> bool:
        """Whether a handle expiring at ``expires_at`` (``time.time()``) is past it, the leeway included."""
        return time.time() > expires_at + self.leeway_seconds

    def _key(self, kid: str) -> bytes | None:
        with self._lock:
            secret, age = self._keys.get(kid), time.monotonic() - self._loaded_at
        if secret is None and self._load is not None and age >= _RELOAD_ON_UNKNOWN_SECONDS:
            self.reload()  # a key another replica made since
            with self._lock:
                secret = self._keys.get(kid)
        return secret


def _sealing_key(secret: bytes) -> bytes:
    """The encryption key of a signing key (a signing key never encrypts itself)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"nexus-flight sealed claims").derive(secret)


def expired(kind: bytes) -> InvalidQueryError:
    """The refusal of an expired handle of ``kind``."""
    return InvalidQueryError(f"the {_KIND_NAMES[kind]} has expired: ask for a new one (run or prepare the query "
                             "again)")


#: A plan's schema is the same object for every ticket and handle made from it: encoded once.
_SCHEMA_TEXTS: IdentityMemo[str] = IdentityMemo()


def ipc_bytes(value: pa.Schema | pa.Table | None) -> str | None:
    """A schema or a table as base64 text of its Arrow IPC form (None stays None)."""
    if value is None:
        return None
    if isinstance(value, pa.Schema):
        schema = value
        return _SCHEMA_TEXTS.get(schema, lambda: base64.b64encode(schema.serialize().to_pybytes()).decode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, value.schema) as writer:
        writer.write_table(value)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode()


def schema_of(text: str) -> pa.Schema:
    """A schema from ``ipc_bytes``."""
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def table_of(text: str | None) -> pa.Table | None:
    """A table from ``ipc_bytes`` (None stays None)."""
    if text is None:
        return None
    return pa.ipc.open_stream(pa.py_buffer(base64.b64decode(text))).read_all()
