"""Bearer JWTs from external identity providers (OIDC), verified against each configured issuer's keys.

Only asymmetric algorithms (RS256…, ES256…, EdDSA, as configured) are accepted, and the key must be of the kind
the token's header names: ``alg: none``, an HMAC token "signed" with the provider's public key (the classic
algorithm confusion) and a symmetric key in the JWKS are all refused before any signature is checked. Expired and
not-yet-valid tokens and a wrong ``aud`` or ``iss`` are refused by PyJWT. Keys come from a JWKS file (re-read when
it changes) or URL (cached for ``jwks_cache_seconds``); a token naming an unknown ``kid`` makes one refresh, at
most every ``_MIN_REFRESH_SECONDS``, so a flood of made-up kids cannot flood the provider.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK

from nexus_flight.core.errors import UnauthenticatedError

log = logging.getLogger("nexus_flight.auth")

_MIN_REFRESH_SECONDS = 10.0
_FETCH_TIMEOUT_SECONDS = 5.0
#: Which JWK key types each algorithm family may use.
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@dataclass(frozen=True)
class ExternalIdentity:
    """What a verified provider token says about its bearer."""

    user: str
    roles: tuple[str, ...]
    attributes: dict[str, Any]
    expires_at: float


def claim(payload: dict[str, Any], path: str) -> Any:
    """The value of a (dotted) claim path, or None."""
    value: Any = payload
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class OidcIssuer:
    """One provider: its issuer, audiences, keys and claim mapping (``OidcIssuerSettings``)."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.issuer: str = settings.issuer
        #: kid -> (key, the algorithm the JWKS declares for it, if any)
        self._keys: dict[str, tuple[PyJWK, str | None]] = {}
        self._fetched_at = float("-inf")
        self._file_mtime: float | None = None
        self._lock = threading.Lock()

    # -- keys ------------------------------------------------------------------------------------------------

    def _read_jwks(self) -> dict[str, Any]:
        if self.settings.jwks_file is not None:
            path = Path(self.settings.jwks_file)
            self._file_mtime = path.stat().st_mtime
            return json.loads(path.read_text())
        request = urllib.request.Request(self.settings.jwks_url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 - configured
            return json.loads(response.read(1_000_000))

    def _refresh(self) -> None:
        try:
            document = self._read_jwks()
        except (OSError, ValueError) as exc:
            log.warning("OIDC issuer %s: cannot read its keys: %s", self.issuer, exc)
            return
        keys = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
                continue  # symmetric ("oct") and unknown key types are never used to verify
            if entry.get("use") not in (None, "sig"):
                continue
            try:
                keys[str(entry.get("kid", ""))] = (PyJWK(entry), entry.get("alg"))
            except jwt.PyJWTError as exc:
                log.warning("OIDC issuer %s: key %s ignored: %s", self.issuer, entry.get("kid"), exc)
        self._keys = keys

    def _key(self, kid: str) -> tuple[PyJWK, str | None] | None:
        with self._lock:
            now = time.monotonic()
            expired = now - self._fetched_at > self.settings.jwks_cache_seconds or self._file_changed()
            unknown = kid not in self._keys and now - self._fetched_at > _MIN_REFRESH_SECONDS
            if expired or unknown:
                self._refresh()
                self._fetched_at = now
            return self._keys.get(kid)

    def _file_changed(self) -> bool:
        if self.settings.jwks_file is None:
            return False
        try:
            return Path(self.settings.jwks_file).stat().st_mtime != self._file_mtime
        except OSError:
            return False

    # -- tokens ----------------------------------------------------------------------------------------------

    def verify(self, token: str, header: dict[str, Any]) -> ExternalIdentity:
        """Verify a token this issuer claims to have signed.

        Raises:
            UnauthenticatedError: anything wrong (the reason is logged, not sent).

        """
        algorithm = header.get("alg")
        if algorithm not in self.settings.algorithms:
            raise UnauthenticatedError(f"token algorithm {algorithm!r} is not accepted")
        found = self._key(str(header.get("kid", "")))
        if found is None:
            raise UnauthenticatedError("token signed with an unknown key")
        key, declared = found
        if key.key_type != _KEY_TYPES.get(str(algorithm)[:2]) or declared not in (algorithm, None):
            raise UnauthenticatedError("token algorithm does not match its key")
        audiences = self.settings.audience
        try:
            payload = jwt.decode(
                token, key.key, algorithms=[algorithm], issuer=self.issuer,
                audience=audiences if isinstance(audiences, list) else [audiences],
                leeway=self.settings.leeway_seconds, options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise UnauthenticatedError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise UnauthenticatedError("token not valid yet") from None
        except jwt.PyJWTError as exc:
            raise UnauthenticatedError(f"invalid token ({type(exc).__name__})") from None
        user = claim(payload, self.settings.user_claim)
        if not isinstance(user, str) or not user:
            raise UnauthenticatedError(f"token has no {self.settings.user_claim!r} claim naming the user")
        roles = claim(payload, self.settings.roles_claim) if self.settings.roles_claim else None
        roles = tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else ()
        attributes = {name: claim(payload, path) for name, path in self.settings.attribute_claims.items()}
        return ExternalIdentity(user, roles, {k: v for k, v in attributes.items() if v is not None},
                                float(payload["exp"]))
