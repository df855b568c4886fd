"""The catalog's validation rules: DS-0xx for data sources, CV-0xx for the vault, AU-0xx for users and access.

This module holds the one table of rule ids; every refusal the catalog makes names one of them, as
``DS-0xx: message`` or ``CV-0xx: message``, inside a :class:`~nexus_flight.core.errors.ConfigError`.
``catalog/README.md`` documents each rule with an example.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexus_flight.core.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """One validation rule: its stable id, a short title and what it checks."""

    id: str
    title: str
    checks: str


#: Every rule the catalog enforces, by id.
RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "DS-001", "invalid source name", "1-255 characters: a letter or _, then letters, digits, _ or -"
        ),
        Rule("DS-002", "duplicate source name", "source names are unique in the catalog (case-insensitive)"),
        Rule(
            "DS-003",
            "unknown source type",
            "the type must be one of the registry's; the nearest is suggested",
        ),
        Rule("DS-004", "missing required field", "every required option and secret of the type is given"),
        Rule("DS-005", "unknown configuration key", "options and secrets hold only the type's declared keys"),
        Rule("DS-006", "invalid port", "a port is an integer from 1 to 65535"),
        Rule(
            "DS-007", "invalid host", "a host is a DNS name, an IPv4 address or a bracket-less IPv6 address"
        ),
        Rule(
            "DS-008",
            "secret in configuration",
            "passwords, tokens and keys go to the vault, never to options",
        ),
        Rule("DS-009", "invalid URL", "URL and URI options parse and use an allowed scheme"),
        Rule(
            "DS-010",
            "backend family not implemented",
            "a type whose family has no backend may be registered but not queried",
        ),
        Rule(
            "DS-011", "invalid status transition", "status moves only along draft/active/error/inactive edges"
        ),
        Rule(
            "DS-012",
            "invalid value",
            "numbers (pool sizes, timeouts), booleans, choices and lists have the right type and range",
        ),
        Rule("DS-013", "invalid local path", "local file paths are absolute and exist"),
        Rule("DS-014", "unsupported charset", "a charset is one of utf8mb4, utf8, gbk, gb18030"),
        Rule("DS-015", "location scheme mismatch", "an object-store location uses the scheme of its type"),
        Rule(
            "CV-001", "master key missing", "a master key is configured (environment variable or OS keyring)"
        ),
        Rule(
            "CV-002", "master key of the wrong length", "a master key is 32 bytes (AES-256), base64-encoded"
        ),
        Rule("CV-003", "decryption failed", "a vault record decrypts and authenticates (not tampered with)"),
        Rule("CV-004", "unknown key id", "the key a record was encrypted with is among the configured keys"),
        Rule("CV-005", "auth type not allowed", "the auth type is one the source type accepts"),
        Rule("CV-006", "token expired", "a credential with an expiry is used before it expires"),
        Rule(
            "CV-007",
            "plaintext secret refused",
            "secrets in files and on command lines are ${env:NAME} references, never literal values",
        ),
        Rule(
            "AU-001",
            "invalid user name",
            "1-255 printable characters without ':' or spaces (Basic credentials split at the first ':')",
        ),
        Rule("AU-002", "duplicate name", "user, role, API key and policy names are unique (case-insensitive)"),
        Rule("AU-003", "weak password", "a password has at least 10 characters and is not the user name"),
        Rule("AU-004", "invalid role name", "1-64 characters: a letter or _, then letters, digits, _, . or -"),
        Rule("AU-005", "unknown user or role", "grants, keys and memberships name an existing user or role"),
        Rule(
            "AU-006",
            "invalid grant",
            "select or unmask on catalog[.schema[.table]], columns only on a table; admin is a role, not a grant",
        ),
        Rule(
            "AU-007",
            "invalid policy",
            "a row filter is one SQL predicate, a mask one SQL expression, placeholders {user.name} or "
            "{user.<attribute>}, on catalog.schema.table",
        ),
        Rule("AU-008", "invalid expiry", "an expiry lies in the future"),
        Rule(
            "AU-009",
            "invalid limit",
            "limits are known names with positive values (queries_per_minute, max_concurrent_queries, ...)",
        ),
        Rule(
            "AU-010",
            "invalid authentication settings",
            "known sign-in methods; OIDC issuers have keys; mTLS identities need a client CA",
        ),
        Rule("AU-011", "built-in role", "the admin role cannot be removed or redefined"),
    )
}


def rule_error(rule_id: str, message: str, **details: object) -> ConfigError:
    """Build the ``ConfigError`` for a broken rule, its message prefixed with the rule id.

    Args:
        rule_id: A key of :data:`RULES`.
        message: What is wrong and how to fix it; never a secret value.
        **details: Extra structured context (field, source).

    """
    if rule_id not in RULES:
        raise KeyError(rule_id)
    return ConfigError(f"{rule_id}: {message}", rule=rule_id, **details)
