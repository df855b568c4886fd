"""A refusal of the read-only validator, shared by the rule checks and the engine readings.

A check raises ``Refusal`` with its rule id, what it found and where; the validator turns it into the rule's
``GatewayError`` once (and caches it), so every module that judges a statement reports in the same form:
``QV-011: lo_import() is not allowed: ... (line 1, column 8)``.
"""

from __future__ import annotations

from nexus_flight.core.errors import GatewayError
from nexus_flight.server.query.sql.rules import RULES


class Refusal(Exception):
    """A rule refused the statement; ``to_error`` builds the client's error."""

    def __init__(self, rule: str, message: str, position: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.position = position

    def detached(self) -> Refusal:
        """The same refusal, never raised: no traceback, no chained exception.

        A raised exception keeps its traceback, whose frames keep every local of the calls that led to it (the
        request, the caller's session, the gRPC call) and their callers': a cache holding the raised one would
        hold each refused statement's whole stack, about 20 KB, where it counts only the statement's text.
        """
        return Refusal(self.rule, self.message, self.position)

    def to_error(self) -> GatewayError:
        """The rule's error class with the message, the rule id and the position."""
        text = f"{self.rule}: {self.message}"
        line = column = None
        if self.position:
            line, column = self.position
            text += f" (line {line}, column {column})"
        return RULES[self.rule].error(text, rule=self.rule, line=line, column=column)


def refuse(rule: str, construct: str, position: tuple[int, int] | None = None, reason: str | None = None) -> Refusal:
    """A refusal saying ``<construct> is not allowed: <reason>`` (the rule's own reason by default)."""
    return Refusal(rule, f"{construct} is not allowed: {reason or RULES[rule].reason}", position)


def line_col(text: str, offset: int | None) -> tuple[int, int] | None:
    """1-based line and column of a character offset (None stays None)."""
    if offset is None:
        return None
    line = text.count("\n", 0, offset) + 1
    return line, offset - text.rfind("\n", 0, offset)
