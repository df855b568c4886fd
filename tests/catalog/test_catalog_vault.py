"""The credential vault: AES-256-GCM records, key ids, tamper detection, rotation and key sources."""

from __future__ import annotations

import base64

import keyring
import pytest
from keyring.backend import KeyringBackend
from sqlalchemy import select, update

from nexus_flight.catalog.models import CredentialRecord
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.vault import (
    ENV_KEY,
    ENV_KEY_ID,
    ENV_OLD_KEYS,
    KEYRING_KEY,
    KEYRING_OLD_KEYS,
    KEYRING_SERVICE,
    KeyRing,
    SealedRecord,
    Vault,
    derive_key_id,
    parse_key,
)
from nexus_flight.core.errors import ConfigError
from tests.catalog.conftest import new_key_text

PASSWORD = "s3cret-Pa55word-for-vault"


def pg_options():
    return {"host": "127.0.0.1", "port": 5432, "database": "test", "username": "postgres"}


def test_seal_and_open_round_trip_with_fresh_nonces(keys):
    vault = Vault(keys)
    first = vault.seal("source-1", {"password": PASSWORD})
    second = vault.seal("source-1", {"password": PASSWORD})
    assert len(first.nonce) == 12 and first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext
    assert PASSWORD.encode() not in first.ciphertext
    assert vault.open("source-1", first)["password"].get_secret_value() == PASSWORD
    assert first.key_id == keys.current.key_id == derive_key_id(keys.current.key)


def test_source_id_is_associated_data(keys):
    vault = Vault(keys)
    record = vault.seal("source-1", {"password": PASSWORD})
    with pytest.raises(ConfigError, match="^CV-003: "):
        vault.open("source-2", record)


def test_tampered_ciphertext_in_the_catalog_is_detected(store):
    store.add_source("pg", "postgresql", pg_options(), {"password": PASSWORD})
    with store.session() as session:
        record = session.scalars(select(CredentialRecord)).one()
        flipped = bytearray(record.ciphertext)
        flipped[0] ^= 0x01
        session.execute(update(CredentialRecord).values(ciphertext=bytes(flipped)))
    with pytest.raises(ConfigError, match="^CV-003: ") as excinfo:
        store.source_spec("pg")
    assert PASSWORD not in excinfo.value.message


def test_tampered_nonce_is_detected(sqlite_store):
    sqlite_store.add_source("pg", "postgresql", pg_options(), {"password": PASSWORD})
    with sqlite_store.session() as session:
        session.execute(update(CredentialRecord).values(nonce=b"\x00" * 12))
    with pytest.raises(ConfigError, match="^CV-003: "):
        sqlite_store.source_spec("pg")


def test_cv001_no_master_key(tmp_path):
    store = CatalogStore(data_dir=tmp_path, keys=KeyRing(None))
    store.add_source("nosecret", "duckdb")  # sources without secrets need no key
    with pytest.raises(ConfigError, match=f"^CV-001: .*{ENV_KEY}"):
        store.add_source("pg", "postgresql", pg_options(), {"password": PASSWORD})


@pytest.mark.parametrize("text", [base64.b64encode(b"x" * 16).decode(), "not base64!", ""])
def test_cv002_key_of_the_wrong_length(text):
    with pytest.raises(ConfigError, match="^CV-002: "):
        parse_key(text)


def test_cv004_unknown_key_id(keys):
    record = Vault(keys).seal("s", {"password": PASSWORD})
    other = KeyRing(parse_key(new_key_text()))
    with pytest.raises(ConfigError, match=f"^CV-004: .*{record.key_id}"):
        Vault(other).open("s", record)


def test_cv005_auth_type_not_allowed(sqlite_store):
    with pytest.raises(ConfigError, match="^CV-005: auth type 'sas' is not allowed for type postgresql"):
        sqlite_store.add_source("pg", "postgresql", pg_options(), {"password": PASSWORD}, "sas")


def test_cv006_expired_credential_is_refused_at_use(sqlite_store):
    from datetime import UTC, datetime, timedelta

    sqlite_store.add_source(
        "dbx",
        "databricks",
        {"host": "h.example", "http_path": "/p"},
        {"token": "tok-123456"},
        "pat",
        datetime.now(UTC) + timedelta(hours=1),
    )
    with sqlite_store.session() as session:
        session.execute(update(CredentialRecord).values(token_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    with pytest.raises(ConfigError, match="^CV-006: "):
        sqlite_store.source_spec("dbx")


def test_environment_keys_with_explicit_id_and_old_keys():
    current, old = new_key_text(), new_key_text()
    ring = KeyRing.from_environment(
        {ENV_KEY: current, ENV_KEY_ID: "2026-11", ENV_OLD_KEYS: f"2026-10:{old}"}, use_keyring=False
    )
    assert ring.current.key_id == "2026-11"
    assert ring.key_ids == ["2026-10", "2026-11"]
    assert "key=" not in repr(ring) and current not in repr(ring)


def test_rotation_reencrypts_every_record_without_downtime(store):
    old_ring = store.vault.keys
    for i in range(3):
        store.add_source(f"pg{i}", "postgresql", pg_options(), {"password": f"{PASSWORD}-{i}"})
    new_ring = KeyRing(parse_key(new_key_text()), (old_ring.current,))
    store.vault.keys = new_ring
    # Mid-rotation: records under either key open by their key id.
    store.add_source("pg_new", "postgresql", pg_options(), {"password": "fresh-password"})
    assert store.vault_key_ids() == {old_ring.current.key_id: 3, new_ring.current.key_id: 1}
    assert store.source_spec("pg0").secrets["password"] == f"{PASSWORD}-0"
    assert store.rotate_keys() == 3
    assert store.vault_key_ids() == {new_ring.current.key_id: 4}
    # The old key can go now.
    store.vault.keys = KeyRing(new_ring.current)
    for i in range(3):
        assert store.source_spec(f"pg{i}").secrets["password"] == f"{PASSWORD}-{i}"
    rotated_ids = {store.get_source(f"pg{i}").id for i in range(3)}
    with store.session() as session:
        stamped = {r.source_id for r in session.scalars(select(CredentialRecord)) if r.last_rotated_at}
    assert stamped == rotated_ids
    assert store.rotate_keys() == 0


def test_rotation_needs_the_old_key(sqlite_store):
    sqlite_store.add_source("pg", "postgresql", pg_options(), {"password": PASSWORD})
    sqlite_store.vault.keys = KeyRing(parse_key(new_key_text()))
    with pytest.raises(ConfigError, match="^CV-004: "):
        sqlite_store.rotate_keys()


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring backend: no OS keyring service runs in this container, so the test plugs the
    keyring library's own backend interface with a dict (the lookup path through ``keyring`` is the real
    one)."""

    priority = 1

    def __init__(self):
        super().__init__()
        self.values = {}

    def get_password(self, service, username):
        return self.values.get((service, username))

    def set_password(self, service, username, password):
        self.values[(service, username)] = password

    def delete_password(self, service, username):
        self.values.pop((service, username), None)


def test_master_key_from_the_os_keyring():
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        current, old = new_key_text(), new_key_text()
        keyring.set_password(KEYRING_SERVICE, KEYRING_KEY, f"kr-1:{current}")
        keyring.set_password(KEYRING_SERVICE, KEYRING_OLD_KEYS, old)
        ring = KeyRing.from_environment({})
        assert ring.current.key_id == "kr-1"
        assert ring.current.key == base64.b64decode(current)
        assert derive_key_id(base64.b64decode(old)) in ring.key_ids
        # The environment wins over the keyring.
        env_key = new_key_text()
        assert KeyRing.from_environment({ENV_KEY: env_key}).current.key == base64.b64decode(env_key)
    finally:
        keyring.set_keyring(previous)


def test_sealed_record_repr_hides_ciphertext(keys):
    record = Vault(keys).seal("s", {"password": PASSWORD})
    assert "ciphertext" not in repr(record)
    assert isinstance(record, SealedRecord)


def test_master_key_from_a_file_keyring(tmp_path):
    """keyrings.alt's file backend: a real keyring backend that works offline, storing in a file we choose."""
    try:
        from keyrings.alt.file import PlaintextKeyring
    except ImportError:
        from tests.support.services import missing

        missing("the keyrings.alt package (a file keyring backend)")
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        current = new_key_text()
        keyring.set_password(KEYRING_SERVICE, KEYRING_KEY, current)
        ring = KeyRing.from_environment({})
        assert ring.current.key == base64.b64decode(current)
        assert (tmp_path / "keyring.cfg").exists()
        store = CatalogStore(data_dir=tmp_path / "data", keys=ring)
        store.add_source("pg", "postgresql", pg_options(), {"password": PASSWORD})
        assert store.source_spec("pg").secrets["password"] == PASSWORD
        store.close()
    finally:
        keyring.set_keyring(previous)
