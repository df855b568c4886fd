"""The credential vault's cryptography: AES-256-GCM under a master key with a key id.

Every record gets a fresh 12-byte nonce and is bound to its source by using the source id as associated data,
so a ciphertext copied onto another source does not decrypt. Records carry the id of the key that sealed them;
the key ring holds the current key and any old ones, so rotation (re-sealing every record under the current
key)
can run while the gateway serves: readers decrypt each record with the key it names.

Keys come from the environment (``NEXUS_FLIGHT_MASTER_KEY``: base64 of 32 bytes;
``NEXUS_FLIGHT_MASTER_KEY_ID``
optional; ``NEXUS_FLIGHT_OLD_MASTER_KEYS``: comma-separated ``[id:]base64`` entries) or, when the variable is
unset, from the OS keyring (service ``nexus-flight``, entries ``master-key`` and ``old-master-keys``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets as _random
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from nexus_flight.catalog.redaction import SCRUBBER
from nexus_flight.catalog.rules import rule_error

log = logging.getLogger(__name__)

ENV_KEY = "NEXUS_FLIGHT_MASTER_KEY"
ENV_KEY_ID = "NEXUS_FLIGHT_MASTER_KEY_ID"
ENV_OLD_KEYS = "NEXUS_FLIGHT_OLD_MASTER_KEYS"
KEYRING_SERVICE = "nexus-flight"
KEYRING_KEY = "master-key"
KEYRING_OLD_KEYS = "old-master-keys"
NONCE_BYTES = 12


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit key and its id; the key bytes never appear in repr."""

    key_id: str
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class SealedRecord:
    """One encrypted vault record."""

    ciphertext: bytes = field(repr=False)
    nonce: bytes
    key_id: str


def generate_key() -> str:
    """Generate a new random master key, base64-encoded, for ``NEXUS_FLIGHT_MASTER_KEY``."""
    return base64.b64encode(_random.token_bytes(32)).decode()


def derive_key_id(key: bytes) -> str:
    """Derive a stable, non-reversible id for a key: a truncated SHA-256 of a domain tag and the key."""
    return "k-" + hashlib.sha256(b"nexus-flight master key id\0" + key).hexdigest()[:16]


def parse_key(text: str, key_id: str | None = None) -> MasterKey:
    """Decode a base64 master key (CV-002) and give it its id.

    Raises:
        ConfigError: CV-002 when the text is not base64 of exactly 32 bytes.

    """
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise rule_error("CV-002", "the master key is not valid base64") from None
    if len(raw) != 32:
        raise rule_error("CV-002", f"the master key must be 32 bytes (AES-256), got {len(raw)}")
    return MasterKey(key_id or derive_key_id(raw), raw)


def _parse_entry(entry: str) -> MasterKey:
    """``id:base64`` or ``base64`` (base64 never contains ``:``)."""
    key_id, _, text = entry.strip().rpartition(":")
    return parse_key(text, key_id or None)


class KeyRing:
    """The current master key plus old ones still needed to read records not yet rotated."""

    def __init__(self, current: MasterKey | None, old: tuple[MasterKey, ...] = ()) -> None:
        self.current = current
        self._keys = {k.key_id: k for k in old}
        if current is not None:
            self._keys[current.key_id] = current

    def __repr__(self) -> str:
        current = self.current.key_id if self.current else None
        return f"KeyRing(current={current!r}, keys={sorted(self._keys)!r})"

    @property
    def key_ids(self) -> list[str]:
        """Ids of every key on the ring."""
        return sorted(self._keys)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, use_keyring: bool = True) -> KeyRing:
        """Load keys from the environment, else from the OS keyring; an empty ring when neither has one.

        Raises:
            ConfigError: CV-002 when a configured key is malformed.

        """
        env = os.environ if env is None else env
        current_text = env.get(ENV_KEY)
        old_text = env.get(ENV_OLD_KEYS, "")
        key_id = env.get(ENV_KEY_ID) or None
        if not current_text and use_keyring:
            current_text, keyring_old = _from_keyring()
            old_text = old_text or keyring_old
            if current_text and ":" in current_text:
                key_id, _, current_text = current_text.rpartition(":")
        current = parse_key(current_text, key_id) if current_text else None
        old = tuple(_parse_entry(e) for e in old_text.split(",") if e.strip())
        return cls(current, old)

    def require_current(self) -> MasterKey:
        """Return the key new records are sealed with.

        Raises:
            ConfigError: CV-001 when no master key is configured.

        """
        if self.current is None:
            raise rule_error(
                "CV-001",
                f"no master key: set {ENV_KEY} (base64 of 32 random bytes) or store it in the OS keyring "
                f"(service {KEYRING_SERVICE!r}, entry {KEYRING_KEY!r})",
            )
        return self.current

    def get(self, key_id: str) -> MasterKey:
        """Return the key with this id.

        Raises:
            ConfigError: CV-004 when no configured key has this id.

        """
        try:
            return self._keys[key_id]
        except KeyError:
            if self.current is None:
                # Nothing is configured at all: that, not an old key, is the problem to name.
                raise rule_error(
                    "CV-001",
                    f"no master key is configured, and the record was sealed with key {key_id!r}: set {ENV_KEY} "
                    f"to that key (or store it in the OS keyring, service {KEYRING_SERVICE!r}, entry "
                    f"{KEYRING_KEY!r}) where the gateway and the nexus-flight commands run",
                ) from None
            raise rule_error(
                "CV-004",
                f"the record was sealed with key {key_id!r}, which is not configured; "
                f"add it to {ENV_OLD_KEYS}",
            ) from None


def _from_keyring() -> tuple[str | None, str]:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:  # pragma: no cover - keyring is a core dependency
        return None, ""
    try:
        return keyring.get_password(KEYRING_SERVICE, KEYRING_KEY), keyring.get_password(
            KEYRING_SERVICE, KEYRING_OLD_KEYS
        ) or ""
    except KeyringError as exc:
        log.warning("OS keyring unavailable: %s", type(exc).__name__)
        return None, ""


class Vault:
    """Seals and opens the secrets of one source."""

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    def __repr__(self) -> str:
        return f"Vault({self.keys!r})"

    def seal(self, source_id: str, secrets: Mapping[str, SecretStr | str]) -> SealedRecord:
        """Encrypt a source's secrets under the current key with a fresh nonce.

        Raises:
            ConfigError: CV-001 when no master key is configured.

        """
        key = self.keys.require_current()
        plaintext = json.dumps(
            {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in secrets.items()},
            sort_keys=True,
        ).encode()
        nonce = _random.token_bytes(NONCE_BYTES)
        ciphertext = AESGCM(key.key).encrypt(nonce, plaintext, source_id.encode())
        return SealedRecord(ciphertext, nonce, key.key_id)

    def open(self, source_id: str, record: SealedRecord) -> dict[str, SecretStr]:
        """Decrypt and authenticate a record; every value is also registered with the log scrubber.

        Raises:
            ConfigError: CV-004 unknown key id; CV-003 the record does not authenticate (tampered, or moved to
                another source, or the key under that id is not the one that sealed it).

        """
        key = self.keys.get(record.key_id)
        try:
            plaintext = AESGCM(key.key).decrypt(record.nonce, record.ciphertext, source_id.encode())
        except (InvalidTag, ValueError):
            raise rule_error(
                "CV-003",
                f"the vault record of source id {source_id} does not decrypt: it was altered or the "
                f"key {record.key_id!r} is wrong",
            ) from None
        values = json.loads(plaintext)
        SCRUBBER.add(*values.values())
        return {k: SecretStr(v) for k, v in values.items()}

    def reseal(self, source_id: str, record: SealedRecord) -> SealedRecord:
        """Decrypt a record with its own key and seal it again under the current key (rotation)."""
        return self.seal(source_id, self.open(source_id, record))
