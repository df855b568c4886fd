"""Mutated SQL for differential tests: edits where two readers of the same text can disagree.

Each mutation inserts a character, cuts a few, inserts a fragment (escapes, quotes, comment markers, dollar
quotes, semicolons, non-ASCII letters, calls that must stay refused) or a piece of another statement of the pool.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

FRAGMENTS = [
    'U&"\\0070g_sleep"(1)', 'U&"\\0067etenv"(\'HOME\')', "U&'\\0041'", "u&", "UESCAPE '!'", "E'\\''", "e'\\\\'",
    "$$", "$a$", "/*", "*/", "--", "\n", "'", '"', "\\", ";", "é", "日本", "pg_sleep(1)",
    "read_text('/etc/passwd')", "getenv('HOME')", "t.pg_read_file", "OPERATOR(public.+)", "::text", " AS x(a)",
    "WITH q(a) AS (SELECT 1) ", "current_setting('temp_directory')", "lo_import('/etc/passwd')",
]
ALPHABET = list("()[]{};'\"`$-/*+.,:?=<>|&!@#\\ \n\tabcSELECTFROMDELETE0123eEuU")


def mutations(pool: list[str], seed: int, count: int, fragments: list[str] = FRAGMENTS) -> Iterator[str]:
    """``count`` statements of ``pool``, each edited one to four times (reproducible for a ``seed``)."""
    rng = random.Random(seed)
    for _ in range(count):
        sql = rng.choice(pool)
        for _ in range(rng.randint(1, 4)):
            k = rng.randint(0, len(sql))
            roll = rng.random()
            if roll < 0.3:
                sql = sql[:k] + rng.choice(ALPHABET) + sql[k:]
            elif roll < 0.5:
                sql = sql[:k] + sql[k + rng.randint(1, 5) :]
            elif roll < 0.8:
                sql = sql[:k] + rng.choice(fragments) + sql[k:]
            else:
                sql = sql[:k] + rng.choice(pool)[: rng.randint(0, 40)] + sql[k:]
        yield sql
