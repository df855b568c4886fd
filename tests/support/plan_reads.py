"""Record, while a gateway serves, which plans were decided on the engine's reading alone and which read their tree."""

from __future__ import annotations

from dataclasses import dataclass, field

from nexus_flight.core.plan import QueryPlan
from nexus_flight.server.query.sql import routing


@dataclass
class PlanReads:
    """``decided``: per routed statement, whether its engine's reading alone decided it; ``reads``: the SQL of
    every plan whose sqlglot tree was read later."""

    decided: list[bool] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)


def record_plan_reads(monkeypatch) -> PlanReads:
    """Start recording (undone with ``monkeypatch``)."""
    record = PlanReads()
    alone, read_now = routing._decided_alone, QueryPlan._read_now

    def recorded_alone(sql, *args):
        plan = alone(sql, *args)
        record.decided.append(plan is not None)
        return plan

    def recorded_read(plan, read):
        record.reads.append(plan.sql)
        read_now(plan, read)

    monkeypatch.setattr(routing, "_decided_alone", recorded_alone)
    monkeypatch.setattr(QueryPlan, "_read_now", recorded_read)
    return record
