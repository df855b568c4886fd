"""Private PostgreSQL and MariaDB servers that the tests start themselves.

Each test run (and each benchmark) gets its own clusters: a fresh data directory under the system's temporary
directory, a free loopback port, a Unix socket inside that directory, and nothing shared with a server the machine
may happen to run, so parallel runs never collide. PostgreSQL refuses to run as root, so when the tests run as root
the server tools run as the ``postgres`` OS user (``mysql`` for MariaDB), which Debian's packages create.
``tests/install-servers.sh`` installs the binaries; a machine that already has them reuses them.

Every directory holds an ``owner.pid`` file naming the process that started it: a run that was killed before it
could stop its servers leaves them behind, and the next run stops them (``reap_abandoned``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import free_port, missing, port_open

_PREFIX = "nexus-test-server-"


class ServerUnavailable(RuntimeError):
    """A server's binaries are missing or it would not start; the message says which and why."""


def _find(name: str, patterns: tuple[str, ...] = ()) -> str | None:
    """An executable on PATH, else the newest match of ``patterns`` (versioned install directories)."""
    found = shutil.which(name)
    if found:
        return found
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if matches:
            return matches[-1]
    return None


def _run_as(user: str | None) -> list[str]:
    """The command prefix that runs a server tool as ``user`` when we are root (no prefix otherwise)."""
    if os.geteuid() != 0 or user is None:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ServerUnavailable("runuser is missing (needed to start database servers as a non-root user)")
    return [runuser, "-u", user, "--"]


def _os_user(*candidates: str) -> str | None:
    """The first of ``candidates`` that exists as an OS user (used only when running as root)."""
    if os.geteuid() != 0:
        return None
    for name in candidates:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ServerUnavailable(f"none of the OS users {', '.join(candidates)} exists to run the server as")


def _private_dir(kind: str, owner: str | None) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{kind}-"))
    root.chmod(0o755)
    if owner is not None:
        shutil.chown(root, owner)
    (root / "owner.pid").write_text(str(os.getpid()))
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_abandoned() -> None:
    """Stop servers (and remove directories) left by test runs that were killed before they could clean up."""
    for root in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        try:
            owner = int((root / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        for pid_file in [*root.glob("*.pid"), root / "data" / "postmaster.pid"]:
            if pid_file.name == "owner.pid" or not pid_file.exists():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def _check(argv: list[str], what: str, timeout: float = 120) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise ServerUnavailable(f"{what} failed ({result.returncode}): {(result.stderr or result.stdout)[-2000:]}")


#: The least-privilege role PostgreSQL sources log in as (README, "Read-only, twice"): CONNECT, USAGE and SELECT.
READER = "nexus_reader"
READER_PASSWORD = "reader-only-password"


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of our own: ``initdb`` in a private directory, served on a free loopback port.

    The superuser is ``postgres`` with trust authentication over TCP on 127.0.0.1; database ``test`` exists.
    Sources log in as ``nexus_reader`` (``options()``), a role set up the way the README tells users to: it may
    connect and read every table the superuser creates, nothing more (``reader_grants``). Setup code uses
    ``dsn()``/``uri()``, which log in as the superuser. ``stop()`` and ``start()`` may be called again.
    """

    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    user: str = "postgres"
    database: str = "test"
    reader: str = READER
    root: Path = field(init=False)

    def __post_init__(self) -> None:
        patterns = ("/usr/lib/postgresql/*/bin/{}",)
        self._initdb = _find("initdb", tuple(p.format("initdb") for p in patterns))
        self._pg_ctl = _find("pg_ctl", tuple(p.format("pg_ctl") for p in patterns))
        if self._initdb is None or self._pg_ctl is None:
            raise ServerUnavailable("PostgreSQL's initdb/pg_ctl are not installed (run tests/install-servers.sh)")
        self._os_user = _os_user("postgres", "nobody")
        self._as = _run_as(self._os_user)
        self.root = _private_dir("pg", self._os_user)
        self._data = self.root / "data"
        _check(
            [*self._as, self._initdb, "-D", str(self._data), "-A", "trust", "-U", self.user, "-E", "UTF8",
             "--locale=C", "--no-sync", "--no-instructions"],
            "initdb",
        )
        self._created = False

    def start(self) -> PrivatePostgres:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={self.host} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB"
        )
        log = self.root / "server.log"
        _check([*self._as, self._pg_ctl, "-D", str(self._data), "-l", str(log), "-o", options, "-w", "-t", "60",
                "start"], f"PostgreSQL start (log: {log})")
        if not self._created:
            self._create_reader()
            self.reader_grants("postgres")
            self.create_database(self.database)
            self._created = True
        return self

    def stop(self, mode: str = "fast") -> None:
        subprocess.run([*self._as, self._pg_ctl, "-D", str(self._data), "-m", mode, "-w", "stop"],
                       capture_output=True, timeout=60)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> None:
        """Create a database the reader role can read."""
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.reader_grants(name)

    def _create_reader(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {self.reader} LOGIN PASSWORD '{READER_PASSWORD}'")

    def reader_grants(self, database: str) -> None:
        """The README's least-privilege set-up, in one database: read what the superuser creates there.

        The gateway's pooled connections share one role, and PostgreSQL lets a role signal its own sessions:
        revoking pg_cancel_backend/pg_terminate_backend from PUBLIC keeps one client from stopping another's.
        """
        import psycopg

        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            for statement in (
                f'GRANT CONNECT ON DATABASE "{database}" TO {self.reader}',
                f"GRANT USAGE ON SCHEMA public TO {self.reader}",
                f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {self.reader}",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {self.user} GRANT SELECT ON TABLES TO {self.reader}",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {self.user} GRANT USAGE ON SCHEMAS TO {self.reader}",
                "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_cancel_backend(integer) FROM PUBLIC",
                "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_terminate_backend(integer, bigint) FROM PUBLIC",
            ):
                conn.execute(statement)

    def dsn(self, database: str | None = None, user: str | None = None) -> str:
        """A libpq keyword DSN (psycopg)."""
        return f"host={self.host} port={self.port} dbname={database or self.database} user={user or self.user}"

    def uri(self, database: str | None = None, user: str | None = None, password: str | None = None) -> str:
        """A ``postgresql://`` URI (ADBC)."""
        login = user or self.user
        if password:
            login += f":{password}"
        return f"postgresql://{login}@{self.host}:{self.port}/{database or self.database}"

    def options(self, database: str | None = None, **extra) -> dict:
        """The options of a ``postgresql`` source pointing here, logging in as the least-privilege reader."""
        return {"host": self.host, "port": self.port, "database": database or self.database,
                "username": self.reader, **extra}

    def superuser_options(self, database: str | None = None, **extra) -> dict:
        """Options of a source that logs in as the superuser: only tests of that refusal, or that say why."""
        return self.options(database, username=self.user, allow_privileged_login=True, **extra)


@dataclass
class PrivateMariaDB:
    """A MariaDB server of our own: ``mariadb-install-db`` in a private directory, served on a free loopback port.

    ``root`` has no password over TCP on 127.0.0.1; database ``test`` exists.
    """

    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    user: str = "root"
    database: str = "test"
    root: Path = field(init=False)

    def __post_init__(self) -> None:
        self._server = _find("mariadbd", ("/usr/sbin/mariadbd", "/usr/sbin/mysqld")) or _find("mysqld")
        self._install = _find("mariadb-install-db") or _find("mysql_install_db")
        if self._server is None or self._install is None:
            raise ServerUnavailable("MariaDB's mariadbd/mariadb-install-db are not installed "
                                    "(run tests/install-servers.sh)")
        self._os_user = _os_user("mysql", "nobody")
        self.root = _private_dir("mariadb", self._os_user)
        self._data = self.root / "data"
        user = [f"--user={self._os_user}"] if self._os_user else []
        _check(
            [self._install, "--no-defaults", *user, f"--datadir={self._data}",
             "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"],
            "mariadb-install-db",
        )
        self._process: subprocess.Popen | None = None

    def start(self) -> PrivateMariaDB:
        user = [f"--user={self._os_user}"] if self._os_user else []
        log = self.root / "server.log"
        # Temporary tables in a directory of its own: in the shared /tmp another process's clean-up removed one
        # under a running query ("Error on delete of '/tmp/#sql-temptable…'").
        scratch = self.root / "tmp"
        scratch.mkdir(exist_ok=True)
        if self._os_user:
            shutil.chown(scratch, self._os_user)
        self._process = subprocess.Popen(
            [self._server, "--no-defaults", *user, f"--datadir={self._data}", f"--bind-address={self.host}",
             f"--port={self.port}", f"--socket={self.root / 'mysqld.sock'}", f"--pid-file={self.root / 'mariadb.pid'}",
             f"--log-error={log}", f"--tmpdir={scratch}", "--skip-name-resolve", "--innodb-buffer-pool-size=256M",
             "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--skip-log-bin",
             "--max-connections=300", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
             "--max-allowed-packet=256M",
             # The fixtures' literal TIMESTAMPs are UTC wall times, whatever zone the machine running the tests is in.
             "--default-time-zone=+00:00"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._process.kill()
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise ServerUnavailable(f"MariaDB did not start (log: {log}): {tail}")
            time.sleep(0.1)
        with self.connect() as con, con.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {self.database} CHARACTER SET utf8mb4")
        return self

    def _answers(self) -> bool:
        if not port_open(self.host, self.port, timeout=0.2):
            return False
        try:
            self.connect().close()
        except Exception:  # noqa: BLE001 - still starting: any error means "not yet"
            return False
        return True

    def connect(self, database: str | None = None, user: str | None = None, password: str = ""):
        """A pymysql connection (autocommit) as root, or as ``user``."""
        import pymysql

        return pymysql.connect(host=self.host, port=self.port, user=user or self.user, password=password,
                               database=database, autocommit=True, connect_timeout=5)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        self._process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def options(self, database: str | None = None, **extra) -> dict:
        """The options of a ``mysql``/``mariadb`` source pointing here."""
        return {"host": self.host, "port": self.port, "database": database or self.database,
                "username": self.user, **extra}


@contextlib.contextmanager
def private_server(kind: type[PrivatePostgres] | type[PrivateMariaDB]) -> Iterator:
    """Start a private server for the block, then stop it and remove its directory.

    A server that cannot be installed or started fails the test under CI and skips it elsewhere.
    """
    try:
        server = kind()
    except ServerUnavailable as e:
        missing(str(e))
    try:
        server.start()
    except ServerUnavailable as e:
        server.destroy()
        missing(str(e))
    try:
        yield server
    finally:
        server.destroy()


@contextlib.contextmanager
def private_pgbouncer(postgres: PrivatePostgres, *, pool_mode: str = "transaction",
                      ignore_startup_options: bool = False) -> Iterator[int]:
    """Debian's PgBouncer in front of ``postgres`` for the block, on a free loopback port (yielded).

    Every database and user passes through (``auth_type = trust`` on loopback). By default PgBouncer refuses a
    connection carrying startup options; ``ignore_startup_options`` drops them instead, as many deployments do.
    """
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        missing("pgbouncer is missing: tests/install-servers.sh installs Debian's pgbouncer")
    owner = _os_user("postgres", "nobody")
    root = _private_dir("pgbouncer", owner)
    port = free_port()
    (root / "users.txt").write_text(f'"{postgres.reader}" ""\n"{postgres.user}" ""\n')
    (root / "pgbouncer.ini").write_text(
        f"[databases]\n* = host={postgres.host} port={postgres.port}\n\n[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\npool_mode = {pool_mode}\n"
        f"auth_type = trust\nauth_file = {root / 'users.txt'}\nlogfile = {root / 'pgbouncer.log'}\n"
        f"pidfile = {root / 'pgbouncer.pid'}\n"
        + ("ignore_startup_parameters = options\n" if ignore_startup_options else "")
    )
    if owner is not None:
        for path in root.iterdir():
            shutil.chown(path, owner)
    process = subprocess.Popen([*_run_as(owner), binary, str(root / "pgbouncer.ini")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                log = root / "pgbouncer.log"
                missing(f"pgbouncer did not start: {log.read_text()[-500:] if log.exists() else process.returncode}")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()
        shutil.rmtree(root, ignore_errors=True)
