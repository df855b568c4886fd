"""Refuse a PostgreSQL login that read-only transactions cannot hold: the second line must stand on its own.

A read-only transaction stops writes to tables, but not what a superuser (or a member of the roles that reach
the server's files) can do from a SELECT: read and write files on the database host (``pg_read_file``,
``lo_export``, ``COPY ... TO``), run programs (``COPY ... PROGRAM``), read every setting and password hash. If
anything got past the validator, such a login would turn it into damage. So a source refuses to connect with
one, naming the problem and the fix, unless its options say ``allow_privileged_login = true``.
"""

from __future__ import annotations

import logging
from typing import Any

from nexus_flight.core.errors import ConfigError

log = logging.getLogger(__name__)

#: Predefined roles whose members reach the database server's files or programs, or may write every table.
PRIVILEGED_ROLES = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_write_all_data",
)

_QUERY = (
    "SELECT current_user::text, r.rolsuper, "
    "ARRAY(SELECT g.rolname::text FROM pg_catalog.pg_roles g "
    "WHERE g.rolname = ANY($1::text[]) AND pg_catalog.pg_has_role(current_user, g.oid, 'MEMBER') "
    "ORDER BY 1) "
    "FROM pg_catalog.pg_roles r WHERE r.rolname = current_user"
)

FIX = (
    "log in as a role with only CONNECT, USAGE and SELECT grants (README, section 'Read-only, twice'), or set "
    "allow_privileged_login = true in the source's options (dangerous: the database server's files and "
    "programs are then only as safe as the validator)"
)


def refuse_privileged_login(connection: Any, source: str, allowed: bool) -> None:
    """Check the role a new connection logged in as; refuse a privileged one unless ``allowed``.

    Args:
        connection: A DB-API connection just opened to the source.
        source: The source's name (for the message).
        allowed: The source's ``allow_privileged_login`` option.

    Raises:
        ConfigError: the login is a superuser or a member of ``PRIVILEGED_ROLES`` and ``allowed`` is false.

    """
    with connection.cursor() as cursor:
        cursor.execute(_QUERY, (list(PRIVILEGED_ROLES),))
        rows = cursor.fetchall()
    if not rows:
        return
    user, superuser, memberships = rows[0]
    found = (["a superuser"] if superuser else []) + [f"a member of {role}" for role in memberships or ()]
    if not found:
        return
    problem = f"source {source!r} logs in to PostgreSQL as {user!r}, which is {' and '.join(found)}"
    if allowed:
        log.warning("%s; allowed by allow_privileged_login = true", problem)
        return
    raise ConfigError(f"{problem}: refused, since read-only transactions do not bind such a login; {FIX}",
                      source=source)
