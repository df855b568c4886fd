"""A flood of failed sign-ins cannot fill the catalog: past a budget a minute, one row counts the rest.

The budget's arithmetic on a test clock, then a real gateway (SQLite catalog) flooded with wrong passwords through
pyarrow.flight, its audit trail read back from the catalog.
"""

from __future__ import annotations

import json

import pyarrow.flight as flight
import pytest

from nexus_flight.catalog.audit import AuditRecord, search_audit
from nexus_flight.core.settings import AuthSettings, LockoutSettings
from nexus_flight.server.security.failure_audit import FailureAuditBudget
from tests.security.conftest import stop_secured


def test_five_a_minute_one_by_one_the_rest_in_one_row():
    written: list[AuditRecord] = []
    now = [600.0]  # minute 10
    budget = FailureAuditBudget(written.append, per_minute=5, clock=lambda: now[0])
    for i in range(12):
        budget(AuditRecord("auth_failure", actor=f"user{i % 4}", client_address=f"10.0.0.{i % 3}"))
    budget(AuditRecord("lockout", actor="user0"))  # never held back
    assert [(r.kind, r.actor) for r in written] == [("auth_failure", f"user{i % 4}") for i in range(5)] + [
        ("lockout", "user0")]
    now[0] = 661.0  # the next minute's first failure writes the last minute's summary first
    budget(AuditRecord("auth_failure", actor="late"))
    summary, late = written[-2:]
    assert summary.actor is None and summary.detail["summarized"] == 7
    assert (summary.detail["addresses"], summary.detail["users"]) == (3, 4)
    assert summary.detail["minute"].startswith("1970-01-01T00:10:00")
    assert late.actor == "late"
    budget.close()  # nothing over budget in this minute: nothing more
    assert len(written) == 8


def test_a_flooded_gateway_audits_its_budget_and_counts_the_rest(secure_gateway, store):
    lockout = LockoutSettings(user_throttle_after=1000, user_lockout_after=1000, address_throttle_after=1000,
                              address_lockout_after=1000)
    secured = secure_gateway(auth=AuthSettings(enabled=True, audit_failures_per_minute=5, failure_delay_seconds=0,
                                               lockout=lockout))
    client = secured.client()
    for i in range(30):
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token(f"nobody{i}", "wrong-password-1")
    stop_secured(secured)  # what the last minute held back is written as the gateway stops
    rows = search_audit(store, kind="auth_failure", limit=None)
    one_by_one = [r for r in rows if r["actor"] is not None]
    summaries = [r for r in rows if r["actor"] is None]
    # The flood may straddle a minute: then each minute has its own five and its own summary.
    assert len(one_by_one) in (5, 10) and len(summaries) in (1, 2)
    assert len(one_by_one) + sum(json.loads(r["detail"])["summarized"] for r in summaries) == 30
