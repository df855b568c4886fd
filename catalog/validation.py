"""Validating a source's configuration against its type: the DS-0xx rules and CV-005/CV-006.

Validation runs on create and on every update. It checks the catalog's own declaration of the type
(:mod:`catalog.source_types`) and, when the type's backend family is importable and declares a
``config_model``,
the family's model too, so that a source the catalog accepts is one its backend can open.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr, ValidationError

from nexus_flight.backends.base import Backend
from nexus_flight.backends.registry import backend_class
from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.source_types import AUTH_TYPES, SOURCE_TYPES, FieldSpec, SourceType, backend_options, suggest
from nexus_flight.core.errors import NotFoundError, NotInstalledError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
#: Option names that are secrets whatever the type says (DS-008).
_SECRET_LIKE = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|private_key|keytab|credential|api_key|sas|account_key|service_account)",
    re.IGNORECASE,
)
#: Names the gateway itself uses as catalogs.
RESERVED_NAMES = frozenset({"system"})
CHARSETS = ("utf8mb4", "utf8", "gbk", "gb18030")


@dataclass(frozen=True)
class SourceConfig:
    """A validated source configuration; secrets only ever as ``SecretStr``."""

    name: str
    type: str
    options: dict[str, Any]
    secrets: dict[str, SecretStr] = field(default_factory=dict, repr=False)
    auth_type: str = "none"
    token_expires_at: datetime | None = None

    @property
    def source_type(self) -> SourceType:
        """The registry entry of this source's type."""
        return SOURCE_TYPES[self.type]


def validate_name(name: object) -> str:
    """Check a source name (DS-001) and return it.

    Raises:
        ConfigError: DS-001.

    """
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise rule_error("DS-001", "a source name is 1 to 255 characters", field="name")
    if not _NAME.match(name):
        raise rule_error(
            "DS-001",
            f"source name {name!r} must start with a letter or _ and hold only letters, digits, _ and -",
            field="name",
        )
    if name.lower() in RESERVED_NAMES:
        raise rule_error("DS-001", f"source name {name!r} is reserved by the gateway", field="name")
    return name


def source_type(type_name: object) -> SourceType:
    """Return the registry entry of a type name (DS-003).

    Raises:
        ConfigError: DS-003, with the nearest known type suggested.

    """
    if not isinstance(type_name, str) or type_name not in SOURCE_TYPES:
        hint = suggest(str(type_name), SOURCE_TYPES)
        raise rule_error("DS-003", f"unknown source type {type_name!r}{hint}", field="type")
    return SOURCE_TYPES[type_name]


def family_backend(family: str) -> type[Backend] | None:
    """Return the backend class of a family, or None when it has no adapter or its driver is missing."""
    try:
        return backend_class(family)
    except (NotFoundError, NotInstalledError):
        return None


def validate_source(
    name: str,
    type_name: str,
    options: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str | SecretStr] | None = None,
    auth_type: str | None = None,
    token_expires_at: datetime | None = None,
    *,
    now: datetime | None = None,
) -> SourceConfig:
    """Validate a whole source configuration and return it normalized.

    Raises:
        ConfigError: the first broken DS-0xx or CV-005/CV-006 rule, naming the field and the reason.

    """
    validate_name(name)
    st = source_type(type_name)
    options = dict(options or {})
    plain = {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in (secrets or {}).items()}
    auth = auth_type or st.default_auth
    if auth not in st.auth:
        known = (
            f"; {st.name} accepts: {', '.join(st.auth)}" if auth in AUTH_TYPES else suggest(auth, AUTH_TYPES)
        )
        raise rule_error(
            "CV-005", f"auth type {auth!r} is not allowed for type {st.name}{known}", field="auth_type"
        )
    model = _config_model(st.family)
    _check_keys(st, options, plain, model)
    _check_required(st, options, plain, auth, model)
    for key, value in options.items():
        spec = st.options.get(key)
        if spec is not None:
            options[key] = _check_value(st, spec, value)
    for key, value in plain.items():
        if not isinstance(value, str) or not value:
            raise rule_error("DS-004", f"secret {key!r} must be a non-empty string", field=key)
    if token_expires_at is not None:
        expiry = token_expires_at if token_expires_at.tzinfo else token_expires_at.replace(tzinfo=UTC)
        if expiry <= (now or datetime.now(UTC)):
            raise rule_error(
                "CV-006",
                f"the {auth} credential expired at {expiry.isoformat()}; renew it",
                field="token_expires_at",
            )
        token_expires_at = expiry
    if model is not None:
        _check_model(st, model, options, plain)
    return SourceConfig(
        name, st.name, options, {k: SecretStr(v) for k, v in plain.items()}, auth, token_expires_at
    )


def _config_model(family: str) -> type[BaseModel] | None:
    cls = family_backend(family)
    return getattr(cls, "config_model", None) if cls is not None else None


def _check_keys(st: SourceType, options: dict, secrets: dict, model: type[BaseModel] | None) -> None:
    model_fields = set(model.model_fields) if model is not None else set()
    for key in options:
        if key in st.secrets or (
            key not in st.options and key not in model_fields and _SECRET_LIKE.search(key)
        ):
            raise rule_error(
                "DS-008",
                f"{key!r} is a secret: give it as a secret (stored encrypted), not as an option",
                field=key,
            )
        if key not in st.options and key not in model_fields:
            hint = suggest(key, list(st.options) + list(model_fields))
            raise rule_error("DS-005", f"unknown option {key!r} for type {st.name}{hint}", field=key)
    for key in secrets:
        if key not in st.secrets:
            known = ", ".join(st.secrets) or "none"
            raise rule_error(
                "DS-005", f"unknown secret {key!r} for type {st.name} (secrets: {known})", field=key
            )


def _check_required(st: SourceType, options: dict, secrets: dict, auth: str, model) -> None:
    for spec in st.options.values():
        if spec.required and options.get(spec.name) in (None, ""):
            raise rule_error(
                "DS-004", f"option {spec.name!r} is required for type {st.name}", field=spec.name
            )
    for key in st.auth[auth]:
        if not secrets.get(key):
            raise rule_error(
                "DS-004", f"secret {key!r} is required for auth type {auth} of {st.name}", field=key
            )


def _check_value(st: SourceType, spec: FieldSpec, value: Any) -> Any:
    """Check one option value by its kind and return it normalized."""
    key = spec.name
    kind = spec.kind
    if kind == "port":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | str)
            or not str(value).isdigit()
            or not 1 <= int(value) <= 65535
        ):
            raise rule_error("DS-006", f"port {value!r} is not an integer from 1 to 65535", field=key)
        return int(value)
    if kind == "host":
        if not isinstance(value, str) or not _valid_host(value):
            raise rule_error(
                "DS-007", f"host {value!r} is not a DNS name or IP address (no scheme, no port)", field=key
            )
        return value
    if kind == "url":
        _check_url(key, value, spec.choices)
        return value
    if kind == "endpoint":
        _check_endpoint(key, value)
        return value
    if kind == "tables":
        return _check_tables(st, key, value)
    if kind == "dict":
        if not isinstance(value, dict):
            raise rule_error("DS-012", f"{key} must be a table of keys and values", field=key)
        return value
    if kind == "path":
        return _check_path(st, key, value)
    if kind == "charset":
        if not isinstance(value, str) or value.lower().replace("-", "") not in CHARSETS:
            raise rule_error(
                "DS-014", f"charset {value!r} is not supported; use one of {', '.join(CHARSETS)}", field=key
            )
        return value.lower().replace("-", "")
    if kind in ("int", "float"):
        return _check_number(key, value, spec)
    if kind == "bool":
        if not isinstance(value, bool):
            raise rule_error("DS-012", f"{key} must be true or false, got {type(value).__name__}", field=key)
        return value
    if kind == "choice":
        if value not in spec.choices:
            raise rule_error("DS-012", f"{key} must be one of {', '.join(spec.choices)}", field=key)
        return value
    if kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise rule_error("DS-012", f"{key} must be a list of strings", field=key)
        return value
    if not isinstance(value, str):
        raise rule_error("DS-012", f"{key} must be a string, got {type(value).__name__}", field=key)
    return value


def _valid_host(value: str) -> bool:
    if not value or len(value) > 253:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    return all(_HOST_LABEL.match(label) for label in value.rstrip(".").split("."))


def _check_url(key: str, value: Any, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(value) if isinstance(value, str) else None
    try:
        port_ok = parts is not None and (parts.port is None or 1 <= parts.port <= 65535)
    except ValueError:
        port_ok = False
    if parts is None or not parts.scheme or not parts.hostname or not port_ok:
        raise rule_error(
            "DS-009", f"{key} {value!r} is not a valid URL (scheme://host[:port][/path])", field=key
        )
    if parts.password:
        raise rule_error("DS-008", f"{key} carries a password: give it as a secret instead", field=key)
    if schemes and parts.scheme.lower() not in schemes:
        raise rule_error(
            "DS-009",
            f"{key} must use one of the schemes {', '.join(schemes)}, got {parts.scheme!r}",
            field=key,
        )


def _check_endpoint(key: str, value: Any) -> None:
    """Check an endpoint: ``host:port`` or an http(s) URL."""
    if isinstance(value, str) and "://" in value:
        _check_url(key, value, ("http", "https"))
        return
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if not host or not _valid_host(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise rule_error("DS-009", f"{key} {value!r} is neither host:port nor an http(s) URL", field=key)


#: Table keys the catalog knows when the family's own model is not installed to say.
_TABLE_KEYS = frozenset(
    {
        "name",
        "location",
        "identifier",
        "format",
        "hive_partitioning",
        "delimiter",
        "header",
        "columns",
        "version",
        "as_of",
        "read_optimized",
    }
)


def _check_tables(st: SourceType, key: str, value: Any) -> list[dict[str, Any]]:
    """Check a ``tables`` list and fill in the options its type implies (the format of ``s3_csv``)."""
    if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
        raise rule_error(
            "DS-004", f"{key} must be a non-empty list of tables like {{name, location}}", field=key
        )
    names = [t.get("name") for t in value]
    for index, table in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(table.get("name"), str) or not table["name"]:
            raise rule_error("DS-004", f"{where}.name is required", field=f"{where}.name")
        if family_backend(st.family) is None:
            unknown = set(table) - _TABLE_KEYS
            if unknown:
                raise rule_error(
                    "DS-005", f"{where}: unknown table option {sorted(unknown)[0]!r}", field=where
                )
        if "location" in table:
            _check_location(st, f"{where}.location", table["location"])
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise rule_error("DS-012", f"{key}: duplicate table names {', '.join(duplicates)}", field=key)
    return [{**st.implied_table_options, **table} for table in value]


def _check_location(st: SourceType, key: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise rule_error("DS-009", f"{key} must be a path or a URI like s3://bucket/prefix", field=key)
    parts = urlsplit(value)
    if st.location_schemes == ("file",):
        path = parts.path if parts.scheme == "file" else value
        if parts.scheme not in ("", "file") or not PurePosixPath(path).is_absolute():
            raise rule_error("DS-013", f"{key} must be an absolute local path", field=key)
        if not any(c in path for c in "*?[") and not os.path.exists(path):
            raise rule_error("DS-013", f"{key} does not exist: {path}", field=key)
        return
    if not parts.scheme or (parts.scheme != "file" and not parts.netloc):
        raise rule_error("DS-009", f"{key} {value!r} is not a URI like s3://bucket/prefix", field=key)
    if parts.password:
        raise rule_error("DS-008", f"{key} carries a password: give it as a secret instead", field=key)
    if st.location_schemes and parts.scheme.lower() not in st.location_schemes:
        raise rule_error(
            "DS-015",
            f"{key} scheme {parts.scheme!r} does not match type {st.name} "
            f"(expected {', '.join(st.location_schemes)})",
            field=key,
        )


def _check_path(st: SourceType, key: str, value: Any) -> str:
    if st.name == "duckdb" and value == ":memory:":
        return value
    if not isinstance(value, str) or not value:
        raise rule_error("DS-013", f"{key} must be a path string", field=key)
    if not (PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute()):
        raise rule_error("DS-013", f"{key} must be an absolute path", field=key)
    if not os.path.exists(value):
        # The path itself is the user's own input, so naming it is fine; it is not one of ours.
        raise rule_error("DS-013", f"{key} does not exist: {value}", field=key)
    return value


def _check_number(key: str, value: Any, spec: FieldSpec) -> int | float:
    wants_int = spec.kind == "int"
    ok_types = (int,) if wants_int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        raise rule_error("DS-012", f"{key} must be {'an integer' if wants_int else 'a number'}", field=key)
    if (spec.minimum is not None and value < spec.minimum) or (
        spec.maximum is not None and value > spec.maximum
    ):
        raise rule_error(
            "DS-012",
            f"{key}={value} is out of range [{spec.minimum:g}, {spec.maximum:g}]"
            if spec.maximum is not None
            else f"{key}={value} is below {spec.minimum:g}",
            field=key,
        )
    return value


_KIND_RULES = {
    "port": "DS-006",
    "host": "DS-007",
    "url": "DS-009",
    "path": "DS-013",
    "charset": "DS-014",
    "endpoint": "DS-009",
}


def _check_model(st: SourceType, model: type[BaseModel], options: dict, secrets: dict) -> None:
    """Validate with the backend family's own model; map its errors to DS rules (never echoing values)."""
    data = {**backend_options(options), **secrets}
    if "kind" in model.model_fields and "kind" not in data:
        data["kind"] = st.family
    try:
        model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_input=False, include_url=False)[0]
        key = ".".join(str(p) for p in error["loc"]) or "config"
        if error["type"] == "missing":
            rule = "DS-004"
        elif error["type"] == "extra_forbidden":
            rule = "DS-005"
        else:
            spec = st.options.get(str(error["loc"][0])) if error["loc"] else None
            rule = _KIND_RULES.get(spec.kind, "DS-012") if spec else "DS-012"
            if "location" in error["loc"]:
                rule = "DS-015"  # the family cannot read a location with this scheme
        raise rule_error(rule, f"{key}: {error['msg']} (backend family {st.family})", field=key) from None
