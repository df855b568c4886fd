"""Validating a source's configuration against its type: the DS-0xx rules and CV-005/CV-006.

Validation runs on create and on every update, in two parts:

- what is the catalog's own is checked here: the name (DS-001) and type (DS-003); the auth type and the secrets
  it needs (CV-005, DS-004); which keys are options and which are secrets (DS-005, DS-008); what the type
  requires beyond its family (DS-004); that local paths exist on this machine (DS-013); each table's location
  against the type's schemes (DS-009, DS-013, DS-015), and the table options the type implies; credential
  expiry (CV-006);
- everything about a value is the family's options model's (``backends/options/``), the same model its backend
  opens the source with: types, ranges, choices, hosts, ports, URLs, charsets, tables. The model validates
  strictly (``"10"`` is not a pool size), and its errors become the DS rules in the catalog's words (below).

A source the catalog accepts is therefore one its backend can open, and the options stored are the model's
reading of them (``port = "5433"`` is stored as 5433, ``charset = "UTF-8"`` as ``utf8``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr, ValidationError

from nexus_flight.backends.profile import GATEWAY_OPTION_NAMES, GatewayOptions, backend_options
from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.source_types import AUTH_TYPES, SOURCE_TYPES, FieldSpec, SourceType, suggest
from nexus_flight.core.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
#: Option names that are secrets whatever the type says (DS-008).
_SECRET_LIKE = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|private_key|keytab|credential|api_key|sas|account_key|service_account)",
    re.IGNORECASE,
)
#: Names the gateway itself uses as catalogs.
RESERVED_NAMES = frozenset({"system"})


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
    _check_keys(st, options, plain)
    _check_required(st, options, plain, auth)
    for key, value in plain.items():
        if not isinstance(value, str) or not value:
            raise rule_error("DS-004", f"secret {key!r} must be a non-empty string", field=key)
    _check_paths(st, options)
    if isinstance(options.get("tables"), list):
        options["tables"] = _check_tables(st, options["tables"])
    if token_expires_at is not None:
        expiry = token_expires_at if token_expires_at.tzinfo else token_expires_at.replace(tzinfo=UTC)
        if expiry <= (now or datetime.now(UTC)):
            raise rule_error(
                "CV-006",
                f"the {auth} credential expired at {expiry.isoformat()}; renew it",
                field="token_expires_at",
            )
        token_expires_at = expiry
    options = _check_values(st, options, plain)
    return SourceConfig(
        name, st.name, options, {k: SecretStr(v) for k, v in plain.items()}, auth, token_expires_at
    )


def _check_keys(st: SourceType, options: dict, secrets: dict) -> None:
    for key in options:
        if key in st.secrets or (key not in st.options and _SECRET_LIKE.search(key)):
            raise rule_error(
                "DS-008",
                f"{key!r} is a secret: give it as a secret (stored encrypted), not as an option",
                field=key,
            )
        if key not in st.options:
            hint = suggest(key, st.options)
            raise rule_error("DS-005", f"unknown option {key!r} for type {st.name}{hint}", field=key)
    for key in secrets:
        if key not in st.secrets:
            known = ", ".join(st.secrets) or "none"
            raise rule_error(
                "DS-005", f"unknown secret {key!r} for type {st.name} (secrets: {known})", field=key
            )


def _check_required(st: SourceType, options: dict, secrets: dict, auth: str) -> None:
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


def _check_paths(st: SourceType, options: dict) -> None:
    """Local paths are absolute and exist on the machine the catalog runs on (DS-013)."""
    for spec in st.options.values():
        value = options.get(spec.name)
        if spec.kind != "path" or value is None or value in spec.choices:
            continue
        if not isinstance(value, str) or not value:
            raise rule_error("DS-013", f"{spec.name} must be a path string", field=spec.name)
        if not (PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute()):
            raise rule_error("DS-013", f"{spec.name} must be an absolute path", field=spec.name)
        if not os.path.exists(value):
            # The path itself is the user's own input, so naming it is fine; it is not one of ours.
            raise rule_error("DS-013", f"{spec.name} does not exist: {value}", field=spec.name)


def _check_tables(st: SourceType, tables: list) -> list:
    """Check each table's location against the type, and fill in the options the type implies."""
    for index, table in enumerate(tables):
        if isinstance(table, dict) and "location" in table:
            _check_location(st, f"tables[{index}].location", table["location"])
    names = [t.get("name") for t in tables if isinstance(t, dict) and isinstance(t.get("name"), str)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:  # the models refuse them too; this keeps the catalog's wording
        raise rule_error("DS-012", f"tables: duplicate table names {', '.join(duplicates)}", field="tables")
    return [{**st.implied_table_options, **t} if isinstance(t, dict) else t for t in tables]


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


def _check_values(st: SourceType, options: dict, secrets: dict) -> dict:
    """Validate the values with the family's model (and the gateway's own options); return them as read."""
    read: dict[str, Any] = {}
    family = backend_options(options)
    model = st.model
    if model is None:  # a third-party family that is not installed: nothing can check its values here
        read.update(family)
    else:
        read.update(_read(st, model, family, secrets))
    gateway = {k: v for k, v in options.items() if k in GATEWAY_OPTION_NAMES}
    if gateway:
        read.update(_read(st, GatewayOptions, gateway, {}))
    return {k: read[k] for k in options}


def _read(st: SourceType, model: type[BaseModel], options: dict, secrets: dict) -> dict:
    """The options as ``model`` reads them, strictly (JSON semantics: no text for numbers, no 1 for true)."""
    data = {**options, **secrets}
    try:
        text = json.dumps(data, default=_as_json)
    except (TypeError, ValueError):
        key = next(k for k, v in options.items() if not _serializable(v))
        raise rule_error("DS-012", f"{key} holds a value no option takes", field=key) from None
    try:
        validated = model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise _rule_error(st, exc, data) from None
    dumped = validated.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return {k: dumped.get(k, options[k]) for k in options}


def _as_json(value: Any) -> str:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _serializable(value: Any) -> bool:
    try:
        json.dumps(value, default=_as_json)
    except (TypeError, ValueError):
        return False
    return True


#: Error types of ``backends/options/types.py``, by the rule they break.
_TYPE_RULES = {
    "port": "DS-006",
    "host": "DS-007",
    "url": "DS-009",
    "url_scheme": "DS-009",
    "endpoint": "DS-009",
    "url_password": "DS-008",
    "charset": "DS-014",
}
#: DS-012 in the catalog's words, by pydantic error type (``{got}``: the type of the value, never the value).
_INVALID = {
    "int_type": "{key} must be an integer",
    "int_parsing": "{key} must be an integer",
    "int_from_float": "{key} must be an integer",
    "float_type": "{key} must be a number",
    "float_parsing": "{key} must be a number",
    "bool_type": "{key} must be true or false, got {got}",
    "bool_parsing": "{key} must be true or false, got {got}",
    "string_type": "{key} must be a string, got {got}",
    "list_type": "{key} must be a list",
    "tuple_type": "{key} must be a list",
    "dict_type": "{key} must be a table of keys and values",
    "model_type": "{key} must be a table of keys and values",
    "model_attributes_type": "{key} must be a table of keys and values",
}
_RANGE = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _rule_error(st: SourceType, exc: ValidationError, data: dict) -> ConfigError:
    """The DS rule a model's first error breaks, in the catalog's words; secret values are never named."""
    error = exc.errors(include_input=False, include_url=False)[0]
    loc = tuple(str(p) for p in error["loc"])
    key = _where(loc) or "config"
    kind = error["type"]
    spec = st.options.get(loc[0]) or st.secrets.get(loc[0]) if loc else None
    if kind in _TYPE_RULES:
        return rule_error(_TYPE_RULES[kind], error["msg"], field=key)
    if kind == "missing":
        what = f"option {key!r} is required for type {st.name}" if len(loc) == 1 else f"{key} is required"
        return rule_error("DS-004", what, field=key)
    if kind == "extra_forbidden":
        parent = _where(loc[:-1])
        where = f"{parent}: unknown table option {loc[-1]!r}" if parent else f"unknown option {key!r}"
        return rule_error("DS-005", where, field=key)
    if spec is not None and spec.kind == "tables":
        if kind == "too_short" or (len(loc) == 1 and kind in _INVALID) or (len(loc) == 2 and kind in _INVALID):
            message = f"{loc[0]} must be a non-empty list of tables like {{name, location}}"
            return rule_error("DS-004", message, field=loc[0])
        if len(loc) == 3 and loc[2] == "name" and kind == "string_too_short":
            return rule_error("DS-004", f"{key} is required", field=key)
    if "location" in loc:  # the family cannot read a location with this scheme
        return rule_error("DS-015", f"{key}: {error['msg']} (backend family {st.family})", field=key)
    if spec is not None and spec.kind == "list" and kind in _INVALID:
        return rule_error("DS-012", f"{loc[0]} must be a list of strings", field=loc[0])
    if kind in _INVALID:
        got = type(_at(data, loc)).__name__
        return rule_error("DS-012", _INVALID[kind].format(key=key, got=got), field=key)
    if kind == "literal_error" and spec is not None and spec.choices:
        return rule_error("DS-012", f"{key} must be one of {', '.join(spec.choices)}", field=key)
    if kind in _RANGE and spec is not None and len(loc) == 1 and not spec.secret:
        return rule_error("DS-012", f"{key}={_at(data, loc)} {_bounds(spec)}", field=key)
    return rule_error("DS-012", f"{key}: {error['msg']} (backend family {st.family})", field=key)


def _where(loc: tuple[str, ...]) -> str:
    """``tables[0].name`` for the location ``("tables", "0", "name")``."""
    return "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc).lstrip(".")


def _at(data: Any, loc: tuple[str, ...]) -> Any:
    """The value at an error's location (None where the location names a union branch, not a key)."""
    try:
        for part in loc:
            data = data[int(part)] if isinstance(data, list) else data[part]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return data


def _bounds(spec: FieldSpec) -> str:
    """``is out of range [1, 100]`` (``(0, 86400]`` where a bound is excluded), or ``is below 0``."""
    low = "(" if spec.exclusive_minimum else "["
    high = ")" if spec.exclusive_maximum else "]"
    if spec.maximum is None and spec.minimum is not None:
        return f"is below {spec.minimum:g}" if not spec.exclusive_minimum else f"is not above {spec.minimum:g}"
    minimum = f"{spec.minimum:g}" if spec.minimum is not None else "-inf"
    maximum = f"{spec.maximum:g}" if spec.maximum is not None else "inf"
    return f"is out of range {low}{minimum}, {maximum}{high}"
