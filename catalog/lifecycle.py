"""Source lifecycle: the statuses a source moves through and the edges allowed between them (DS-011).

::

    draft ──test ok──▶ active ◀──recovers──┐
      │                  │                 │
      └──test fails──▶ error ──────────────┘
    any ──disable──▶ inactive ──enable──▶ draft (then tested)

A changed configuration sends an active or failed source back to ``draft``.
"""

from __future__ import annotations

from nexus_flight.catalog.rules import rule_error

STATUSES = ("draft", "active", "error", "inactive")

#: status -> statuses it may move to (staying put is always allowed).
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"active", "error", "inactive"}),
    "active": frozenset({"error", "inactive", "draft"}),
    "error": frozenset({"active", "inactive", "draft"}),
    "inactive": frozenset({"draft"}),
}


def check_transition(old: str, new: str, source: str) -> None:
    """Allow ``old`` -> ``new`` or raise.

    Raises:
        ConfigError: DS-011 for an unknown status or an edge the lifecycle does not have.

    """
    if new not in STATUSES:
        raise rule_error("DS-011", f"unknown status {new!r}; statuses: {', '.join(STATUSES)}", source=source)
    if new != old and new not in TRANSITIONS.get(old, frozenset()):
        hint = "; enable it first" if old == "inactive" else ""
        raise rule_error("DS-011", f"source {source!r} cannot go from {old} to {new}{hint}", source=source)
