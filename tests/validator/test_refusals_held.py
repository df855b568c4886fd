"""Refused statements the validator remembers keep nothing of the calls that sent them.

The validator's caches keep each refusal (``server/query/sql/cache.py``), bounded by entries and by the length of
the statements' text. A raised exception keeps its traceback, and the traceback every frame of the call that
raised it, each frame its locals: the request, the caller's session, the gRPC call. Kept as raised, each refused
statement held its whole call (about 10 KB, up to 4096 per cache, none of it counted), and a parse failure raised
again from the parse cache added the new call's frames to the old ones each time.
"""

from __future__ import annotations

import gc

import pytest

from nexus_flight.server.query.service import QueryRequest
from nexus_flight.server.query.sql import readonly, routing
from nexus_flight.server.query.sql.refusal import Refusal

pytestmark = pytest.mark.timeout(60)

#: New texts each round: refused by a rule (a write), by the parser, and by the parser again on a second text.
REFUSED = ("INSERT INTO nation VALUES ({n}, 'x', 0, 'y')", "SELEC {n} FROM nation", "SELECT {n} FROM WHERE")


def _alive(cls: type) -> int:
    gc.collect()
    return sum(isinstance(o, cls) for o in gc.get_objects())


def _refuse_each(adbc, round_: int) -> None:
    for n in range(40):
        for text in REFUSED:
            with adbc.cursor() as cur, pytest.raises(Exception, match=r"QV-00\d"):
                cur.execute(text.format(n=round_ * 1000 + n))


def _cached_refusals() -> list[Refusal]:
    """Every refusal the validator's and the router's caches hold, those inside parse results too."""
    found = []
    for cache in (readonly._CACHE, readonly._PARSE_CACHE, routing._PLANS):
        for value, _ in list(cache._data.values()):
            failure = getattr(value, "failure", value)
            if isinstance(failure, Refusal):
                found.append(failure)
    return found


def test_refused_statements_leave_no_call_behind(adbc):
    _refuse_each(adbc, 0)  # warm: the session's own objects, the caches' first entries
    requests = _alive(QueryRequest)
    _refuse_each(adbc, 1)
    _refuse_each(adbc, 1)  # the same texts again: answered from the caches
    assert _alive(QueryRequest) - requests < 10, "refused statements' requests outlived their calls"
    refusals = _cached_refusals()
    assert len(refusals) >= 2 * 40
    assert [r for r in refusals if r.__traceback__ is not None or r.__context__ is not None] == []
