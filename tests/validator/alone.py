"""What the tests of the engines' "decided alone" paths share: the whole validator's verdict, compared."""

from __future__ import annotations

import pytest

from nexus_flight.core.errors import GatewayError
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import SourceProfile
from nexus_flight.server.query.sql import readonly
from nexus_flight.server.query.sql.readonly import analyze
from nexus_flight.server.query.sql.routing import clear_plans, route


def verdict(sql: str, profile: SourceProfile) -> str:
    """The first word the whole validator reads, or its refusal's message."""
    try:
        return analyze(sql, profile.dialect, profile.limits, profile.allowed_paths, engine=profile.engine).keyword
    except GatewayError as refusal:
        return str(refusal)


def assert_routing_refuses_as_the_validator(sql: str, profile: SourceProfile) -> None:
    """Routing ``sql`` to a source of ``profile`` refuses it with the whole validator's own error."""
    with pytest.raises(GatewayError) as by_validator:
        analyze(sql, profile.dialect, profile.limits, profile.allowed_paths, engine=profile.engine)
    clear_plans()
    with pytest.raises(GatewayError) as by_route:
        route(sql, sources={"home": profile}, session_catalog=None, default_source="home")
    assert str(by_route.value) == str(by_validator.value)


def assert_plan_reads_its_tree_on_first_use(sql: str, profile: SourceProfile) -> QueryPlan:
    """Routed cold, ``sql`` is decided alone; its tree, read later, is the whole validator's. Returns the plan."""
    readonly.clear_cache()
    clear_plans()
    plan = route(sql, sources={"home": profile}, session_catalog=None, default_source="home")
    assert plan.parsed_tree is None and plan.validated and plan.parameter_count == 0
    whole = analyze(sql, profile.dialect, profile.limits, profile.allowed_paths, engine=profile.engine)
    assert plan.keyword == whole.keyword
    assert plan.tree == whole.tree and plan.query == whole.query
    assert plan.parsed_tree is not None  # kept for later uses
    return plan
