"""The privileges of a MySQL-family login, read from ``SHOW GRANTS``: a read-only gateway wants SELECT only.

A read-only transaction does not stop a login with FILE from reading and writing server files
(``LOAD_FILE``, ``SELECT … INTO OUTFILE``), PROCESS from reading everyone's statements, SUPER from changing the
server, EXECUTE from calling stored routines that write, or any write privilege from writing once a statement
leaves the transaction. So the backend refuses a login that holds any privilege beyond those below, unless the
source's options say ``allow_privileged_login = true``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

#: What a read-only login may hold.
READ_PRIVILEGES = frozenset({"SELECT", "SHOW VIEW", "USAGE", "SHOW DATABASES"})

_GRANT_ON = re.compile(r"^GRANT\s+(?P<privileges>.+?)\s+ON\s+(?P<target>.+?)\s+TO\s+", re.IGNORECASE | re.DOTALL)
_ROLE = re.compile(r"^GRANT\s+(?P<roles>.+?)\s+TO\s+", re.IGNORECASE | re.DOTALL)
_COLUMNS = re.compile(r"\([^)]*\)")


def _privileges(grant: str) -> tuple[list[str], list[str]]:
    """The privileges and the roles one ``SHOW GRANTS`` line gives."""
    found = _GRANT_ON.match(grant)
    if found:
        privileges = _COLUMNS.sub("", found.group("privileges"))  # SELECT (a, b) ON t: column lists
        names = [" ".join(p.split()).upper() for p in privileges.split(",") if p.strip()]
        if re.search(r"\bWITH\b.*\bGRANT\s+OPTION\b", grant, re.IGNORECASE):
            names.append("GRANT OPTION")
        return names, []
    role = _ROLE.match(grant)
    if role:
        return [], [r.strip() for r in role.group("roles").split(",") if r.strip()]
    return [], []  # SET DEFAULT ROLE … and the like


def excess_privileges(grants: Iterable[str], grants_of_role: Callable[[str], Iterable[str] | None]) -> list[str]:
    """Return the privileges beyond ``READ_PRIVILEGES`` that ``grants`` (and the roles they give) hold, sorted.

    Args:
        grants: The lines of ``SHOW GRANTS``.
        grants_of_role: Returns the lines of ``SHOW GRANTS FOR <role>`` (roles may be nested), or None when the
            login may not read them: such a role may hold anything, so it counts as a privilege itself.

    """
    excess: set[str] = set()
    seen: set[str] = set()
    pending = list(grants)
    if not any(line.upper().startswith("GRANT ") for line in pending):
        # Engines that answer SHOW GRANTS in another form (Doris, StarRocks …): nothing here says "read only".
        return ["privileges that SHOW GRANTS does not list as GRANT statements"]
    while pending:
        names, roles = _privileges(pending.pop())
        excess.update(n for n in names if n not in READ_PRIVILEGES)
        for role in roles:
            if role not in seen:
                seen.add(role)
                lines = grants_of_role(role)
                if lines is None:
                    excess.add(f"role {role} (its grants cannot be read)")
                else:
                    pending.extend(lines)
    return sorted(excess)


def refusal(login: str, database: str, excess: list[str]) -> str:
    """The message of a refused login: what it holds, what to create instead, and how to override."""
    return (
        f"[mysql] the source logs in as {login}, which holds {', '.join(excess)}: a read-only gateway needs a login "
        f"that can only read. Create one: CREATE USER 'nexus_reader'@'%' IDENTIFIED BY '…'; GRANT SELECT, SHOW VIEW "
        f"ON `{database}`.* TO 'nexus_reader'@'%'; and use it as the source's username, or set "
        "allow_privileged_login = true in the source's options (dangerous: the gateway's read-only rules are then "
        "the only line between clients and those privileges)"
    )
