"""Option types with a meaning beyond their Python type: hosts, ports, URLs, endpoints, local paths, charsets.

Each is an ``Annotated`` type: pydantic checks the value, and the JSON schema says what the option is
(``"format": "hostname"``, ``"port"``, ``"uri"`` with its ``"x-schemes"``, ``"endpoint"``, ``"path"``,
``"charset"``), so the catalog can list, document and check a family's options from its model alone. Errors carry
a type of their own (``host``, ``port``, ``url``, ``url_scheme``, ``url_password``, ``endpoint``, ``charset``) and a
message that names the value, never a secret.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
#: The charsets a source's text may be declared in.
CHARSETS = ("utf8mb4", "utf8", "gbk", "gb18030")


def valid_host(value: str) -> bool:
    """Tell whether ``value`` is a DNS name or an IP address (no scheme, no port, no brackets)."""
    if not value or len(value) > 253:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    return all(_HOST_LABEL.match(label) for label in value.rstrip(".").split("."))


def _host(value: Any) -> Any:
    if not isinstance(value, str) or not valid_host(value):
        raise PydanticCustomError(
            "host", "host {value} is not a DNS name or IP address (no scheme, no port)", {"value": repr(value)}
        )
    return value


def _port(value: Any) -> int:
    # Digits as text are a port too (a value from a command line or an environment variable).
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise PydanticCustomError("port", "port {value} is not an integer from 1 to 65535", {"value": repr(value)})
    if not 1 <= int(value) <= 65535:
        raise PydanticCustomError("port", "port {value} is not an integer from 1 to 65535", {"value": repr(value)})
    return int(value)


def check_url(name: str, value: Any, schemes: tuple[str, ...]) -> str:
    """Check a URL: scheme, host and a valid port, no password in it, one of ``schemes`` (any when empty).

    Raises:
        PydanticCustomError: ``url``, ``url_password`` or ``url_scheme``.

    """
    parts = urlsplit(value) if isinstance(value, str) else None
    try:
        port_ok = parts is not None and (parts.port is None or 1 <= parts.port <= 65535)
    except ValueError:
        port_ok = False
    if parts is None or not parts.scheme or not parts.hostname or not port_ok:
        message = "{name} {value} is not a valid URL (scheme://host[:port][/path])"
        raise PydanticCustomError("url", message, {"name": name, "value": repr(value)})
    if parts.password:
        raise PydanticCustomError(
            "url_password", "{name} carries a password: give it as a secret instead", {"name": name}
        )
    if schemes and parts.scheme.lower() not in schemes:
        raise PydanticCustomError(
            "url_scheme",
            "{name} must use one of the schemes {schemes}, got {scheme}",
            {"name": name, "schemes": ", ".join(schemes), "scheme": repr(parts.scheme)},
        )
    return value


def Url(*schemes: str) -> Any:  # noqa: N802 - a type factory, used like a type
    """A URL option using one of ``schemes``."""

    def check(value: Any, info: ValidationInfo) -> str:
        return check_url(info.field_name or "url", value, schemes)

    schema = {"type": "string", "format": "uri", **({"x-schemes": list(schemes)} if schemes else {})}
    return Annotated[str, BeforeValidator(check), WithJsonSchema(schema)]


def _endpoint(value: Any, info: ValidationInfo) -> str:
    name = info.field_name or "endpoint"
    if isinstance(value, str) and "://" in value:
        return check_url(name, value, ("http", "https"))
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if not host or not valid_host(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise PydanticCustomError(
            "endpoint", "{name} {value} is neither host:port nor an http(s) URL", {"name": name, "value": repr(value)}
        )
    return value


def _charset(value: Any) -> str:
    normal = value.lower().replace("-", "") if isinstance(value, str) else None
    if normal not in CHARSETS:
        raise PydanticCustomError(
            "charset",
            "charset {value} is not supported; use one of {charsets}",
            {"value": repr(value), "charsets": ", ".join(CHARSETS)},
        )
    return normal


#: A DNS name or an IP address.
Host = Annotated[str, BeforeValidator(_host), WithJsonSchema({"type": "string", "format": "hostname"})]
#: A TCP port, 1 to 65535 (digits as text are accepted).
Port = Annotated[
    int, BeforeValidator(_port), WithJsonSchema({"type": "integer", "format": "port", "minimum": 1, "maximum": 65535})
]
#: ``host:port`` or an http(s) URL (an S3-compatible endpoint).
Endpoint = Annotated[str, BeforeValidator(_endpoint), WithJsonSchema({"type": "string", "format": "endpoint"})]
#: A file or directory on the gateway's machine (the catalog checks that it is absolute and exists).
LocalPath = Annotated[str, WithJsonSchema({"type": "string", "format": "path"})]
#: The charset a source's text is in, normalized (``UTF-8`` is ``utf8``).
Charset = Annotated[
    str, BeforeValidator(_charset), WithJsonSchema({"type": "string", "format": "charset", "enum": list(CHARSETS)})
]

# Bounds shared by many families (defaults are each family's own).
#: Connections a source's pool holds.
PoolSize = Annotated[int, Field(ge=1, le=100)]
#: How long a pooled connection may wait, live or idle, in seconds.
PoolSeconds = Annotated[float, Field(gt=0, le=86_400)]
#: How long a statement may run on the source's side, in seconds.
StatementSeconds = Annotated[float, Field(gt=0, le=86_400)]
#: How long connecting may take, in seconds.
ConnectSeconds = Annotated[int, Field(ge=1, le=300)]
