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

A running gateway follows a rotation without a restart: ``vault rotate`` leaves the new key in the catalog sealed
under each older key (a hand-over, ``catalog/key_handover.py``); a ring that meets a key id it does not hold, or
that is about to seal, looks there, opens the new key with the one it holds and from then seals with the new key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets as _random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from nexus_flight.catalog.redaction import SCRUBBER
from nexus_flight.catalog.rules import rule_error

log = logging.getLogger(__name__)

ENV_KEY = "NEXUS_FLIGHT_MASTER_KEY"
ENV_KEY_ID = "NEXUS_FLIGHT_MASTER_KEY_ID"
ENV_OLD_KEYS = "NEXUS_FLIGHT_OLD_MASTER_KEYS"
#: What to do about a record sealed under a key this process lacks. After a rotation elsewhere that key is the
#: new one, and re-sealing the records under an older current key would undo the rotation.
MISSING_KEY_FIX = (f"if a `nexus-flight vault rotate` made it, it is the new master key: set {ENV_KEY} to it; if it "
                   f"is an older key, add it to {ENV_OLD_KEYS}")
KEYRING_SERVICE = "nexus-flight"
KEYRING_KEY = "master-key"
KEYRING_OLD_KEYS = "old-master-keys"
NONCE_BYTES = 12
#: Associated data of a master key sealed under another (a hand-over), followed by the sealed key's id.
HANDOVER_PURPOSE = "master-key-handover:"
#: How long a chain of hand-overs a ring follows (rotations not yet finished).
_MAX_HANDOVERS = 8


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


def seal_handover(new: MasterKey, under: MasterKey) -> SealedRecord:
    """Seal master key ``new`` under the older key ``under`` (its id as associated data)."""
    nonce = _random.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(under.key).encrypt(nonce, new.key, (HANDOVER_PURPOSE + new.key_id).encode())
    return SealedRecord(ciphertext, nonce, under.key_id)


def open_handover(key_id: str, record: SealedRecord, under: MasterKey) -> MasterKey | None:
    """The master key ``key_id`` from its hand-over record; None when the record does not authenticate."""
    try:
        raw = AESGCM(under.key).decrypt(record.nonce, record.ciphertext, (HANDOVER_PURPOSE + key_id).encode())
    except (InvalidTag, ValueError):
        log.warning("the hand-over of master key %s under key %s does not open", key_id, under.key_id)
        return None
    return MasterKey(key_id, raw)


class Handovers(Protocol):
    """Where a ring finds master keys sealed under older ones (the catalog)."""

    def sealed_copies(self, key_id: str) -> list[SealedRecord]:
        """Master key ``key_id`` sealed under other keys (each record's ``key_id`` names the sealing key)."""
        ...

    def successors(self, key_id: str) -> list[tuple[str, SealedRecord]]:
        """Newer master keys sealed under ``key_id``: (new key's id, record)."""
        ...


class KeyRing:
    """The current master key plus old ones still needed to read records not yet rotated.

    With ``handovers`` set, keys a rotation introduced are learnt from there (see the module's docstring).
    """

    def __init__(self, current: MasterKey | None, old: tuple[MasterKey, ...] = ()) -> None:
        self.current = current
        self._keys = {k.key_id: k for k in old}
        if current is not None:
            self._keys[current.key_id] = current
        self.handovers: Handovers | None = None
        #: Why the OS keyring gave no key (None: it was not asked, or it answered): said when a key is needed.
        self.keyring_problem: str | None = None
        self._lock = threading.Lock()

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
        keyring_problem = None
        if not current_text and use_keyring:
            current_text, keyring_old, keyring_problem = _from_keyring()
            old_text = old_text or keyring_old
            if current_text and ":" in current_text:
                key_id, _, current_text = current_text.rpartition(":")
        current = parse_key(current_text, key_id) if current_text else None
        old = tuple(_parse_entry(e) for e in old_text.split(",") if e.strip())
        ring = cls(current, old)
        ring.keyring_problem = keyring_problem
        return ring

    def require_current(self) -> MasterKey:
        """Return the key new records are sealed with.

        Raises:
            ConfigError: CV-001 when no master key is configured.

        """
        if self.current is not None and self.handovers is not None:
            self._follow_rotation()
        if self.current is None:
            raise rule_error(
                "CV-001",
                f"no master key: set {ENV_KEY} (base64 of 32 random bytes) or store it in the OS keyring "
                f"(service {KEYRING_SERVICE!r}, entry {KEYRING_KEY!r}){self._keyring_said()}",
            )
        return self.current

    def _keyring_said(self) -> str:
        return f"; {self.keyring_problem}" if self.keyring_problem else ""

    def get(self, key_id: str) -> MasterKey:
        """Return the key with this id.

        Raises:
            ConfigError: CV-004 when no configured key has this id.

        """
        try:
            return self._keys[key_id]
        except KeyError:
            learnt = self._learn(key_id, _MAX_HANDOVERS) if self.handovers is not None else None
            if learnt is not None:
                return learnt
            if self.current is None:
                # Nothing is configured at all: that, not an old key, is the problem to name.
                raise rule_error(
                    "CV-001",
                    f"no master key is configured, and the record was sealed with key {key_id!r}: set {ENV_KEY} "
                    f"to that key (or store it in the OS keyring, service {KEYRING_SERVICE!r}, entry "
                    f"{KEYRING_KEY!r}) where the gateway and the nexus-flight commands run{self._keyring_said()}",
                ) from None
            raise rule_error(
                "CV-004",
                f"the record was sealed with key {key_id!r}, which is not configured: {MISSING_KEY_FIX}",
            ) from None


    def _learn(self, key_id: str, depth: int) -> MasterKey | None:
        """Open master key ``key_id`` from a hand-over sealed under a key this ring holds (or can learn)."""
        if key_id in self._keys:
            return self._keys[key_id]
        if depth <= 0 or self.handovers is None:
            return None
        for record in self.handovers.sealed_copies(key_id):
            under = self._learn(record.key_id, depth - 1)
            learnt = open_handover(key_id, record, under) if under is not None else None
            if learnt is not None:
                with self._lock:
                    self._keys[key_id] = learnt
                log.info("master key %s learnt from the catalog (sealed under key %s)", key_id, under.key_id)
                return learnt
        return None

    def _follow_rotation(self) -> None:
        """Seal with the newest key a rotation handed over from the current one."""
        assert self.handovers is not None
        for _ in range(_MAX_HANDOVERS):
            current = self.current
            assert current is not None
            newer = [open_handover(new_id, record, current) for new_id, record in self.handovers.successors(
                current.key_id)]
            newer = [key for key in newer if key is not None]
            if not newer:
                return
            with self._lock:
                self.current = newer[0]
                self._keys[newer[0].key_id] = newer[0]
            log.info("master key rotated: sealing with key %s from now on", newer[0].key_id)


def _from_keyring() -> tuple[str | None, str, str | None]:
    """The keyring's current and old keys, and why it gave none (None: it answered, with keys or without)."""
    try:
        import keyring
        from keyring.errors import KeyringError, NoKeyringError
    except ImportError:  # pragma: no cover - keyring is a core dependency
        return None, "", "the keyring package is not installed"
    try:
        return keyring.get_password(KEYRING_SERVICE, KEYRING_KEY), keyring.get_password(
            KEYRING_SERVICE, KEYRING_OLD_KEYS
        ) or "", None
    except NoKeyringError:
        # The normal case on servers and in containers, where the key comes from the environment: said only when
        # a key is needed and none is configured (CV-001).
        log.debug("no OS keyring on this machine")
        return None, "", "this machine has no OS keyring"
    except KeyringError as exc:
        log.warning("OS keyring unavailable: %s", type(exc).__name__)
        return None, "", f"the OS keyring failed ({type(exc).__name__})"


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
