"""Validator overhead per query: p50/p95 of validate() and route() on TPC-H queries, cold and cached.

With the engine's own reading on top of sqlglot's (DuckDB's parser and lexer for the demo, PostgreSQL's parser
through pglast for PostgreSQL sources), and sqlglot's reading alone in the same run for comparison. Routing a
plain DuckDB or PostgreSQL query decides it on its engine's reading alone (``server/query/sql/duckdb_alone.py``,
``postgres_alone.py``): "route Q1 on ..." is the validator's cost per query as the gateway pays it, "route Q1 ...,
sqlglot's tree too" adds what a query pays when something later reads its tree (grants, policies, file groups).
Targets: p50 at most 0.3 ms for TPC-H Q1 on a cache miss with the engine parser, at most 0.01 ms on a hit.

Run from the repository root::

    python benchmarks/validator_bench.py [--rounds 500]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus_flight.core.source import SourceProfile  # noqa: E402
from nexus_flight.server.query.sql import readonly  # noqa: E402
from nexus_flight.server.query.sql.readonly import validate  # noqa: E402
from nexus_flight.server.query.sql.routing import clear_plans, route  # noqa: E402
from tests.validator.tpch import TPCH_QUERIES  # noqa: E402

SOURCES = {"demo": SourceProfile("duckdb", engine="duckdb")}
PG_SOURCES = {"pg": SourceProfile("postgres", engine="postgres")}


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples) * 1e3, samples[int(len(samples) * 0.95)] * 1e3


def measure(label: str, call, rounds: int, cold: bool) -> tuple[float, float]:
    samples = []
    for i in range(rounds):
        if cold:
            readonly.clear_cache()
            clear_plans()
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    p50, p95 = _percentiles(samples)
    print(f"{label:<48} p50 {p50:7.3f} ms   p95 {p95:7.3f} ms")
    return p50, p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    import sqlglot.parser

    if sqlglot.parser.__file__.endswith((".so", ".pyd")):
        compiled = f"sqlglot {sqlglot.__version__} compiled (sqlglotc)"
    else:
        compiled = (
            f"sqlglot {sqlglot.__version__} pure Python (pip install 'sqlglot[c]' for the compiled parser)"
        )
    print(f"python {sys.version.split()[0]}; {compiled}; {args.rounds} rounds")
    q1 = TPCH_QUERIES[1]
    pg_q1 = q1.replace("interval '90' day (3)", "interval '90 day'")
    cases = [
        ("validate Q1, sqlglot alone", lambda i: validate(q1, "duckdb"), (True,)),
        ("validate Q1 + DuckDB reading", lambda i: validate(q1, "duckdb", engine="duckdb"), (True, False)),
        ("validate Q1 + PostgreSQL reading", lambda i: validate(pg_q1, "postgres", engine="postgres"), (True, False)),
        (
            "route Q1 on the demo",
            lambda i: route(q1, sources=SOURCES, session_catalog=None, default_source="demo"),
            (True, False),
        ),
        (
            "route Q1 on the demo, sqlglot's tree too",
            lambda i: route(q1, sources=SOURCES, session_catalog=None, default_source="demo").tree,
            (True,),
        ),
        (
            "route Q1 on a PostgreSQL source",
            lambda i: route(pg_q1, sources=PG_SOURCES, session_catalog=None, default_source="pg"),
            (True, False),
        ),
    ]
    results = {}
    for label, call, modes in cases:
        for cold in modes:
            name = f"{label}, cache {'miss' if cold else 'hit'}"
            results[name] = measure(name, call, args.rounds, cold=cold)
    queries = list(TPCH_QUERIES.values())
    measure(
        "validate TPC-H 1-22 + DuckDB reading, round robin, cache miss",
        lambda i: validate(queries[i % len(queries)], "duckdb", engine="duckdb"),
        args.rounds,
        cold=True,
    )
    alone = results["validate Q1, sqlglot alone, cache miss"][0]
    for engine in ("DuckDB", "PostgreSQL"):
        cold = results[f"validate Q1 + {engine} reading, cache miss"][0]
        hit = results[f"validate Q1 + {engine} reading, cache hit"][0]
        print(f"validate() with the {engine} reading: {cold / alone:.2f}x sqlglot alone")
    for where, engine in (("the demo", "DuckDB"), ("a PostgreSQL source", "PostgreSQL")):
        cold, hit = (results[f"route Q1 on {where}, cache {c}"][0] for c in ("miss", "hit"))
        verdict = "met" if cold <= 0.3 and hit <= 0.01 else "NOT met"
        print(f"routing Q1 on {where} ({engine}'s reading alone): {cold:.3f} ms cold, {hit:.4f} ms cached, "
              f"{cold / alone:.2f}x sqlglot alone; targets (p50 <= 0.3 ms cold, <= 0.01 ms cached): {verdict}")


if __name__ == "__main__":
    main()
