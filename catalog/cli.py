"""Command-line management of the catalog: ``sources``, ``history`` and ``vault`` subcommands.

``server/app/cli.py`` calls :func:`add_subcommands` on its subparsers; each command sets ``func`` on the parsed
namespace, a callable taking the namespace and returning the exit code. Every command prints an aligned table
or,
with ``--json``, JSON for scripts. Secrets are given as ``KEY=${env:NAME}`` or ``KEY=-`` (prompted), never as
literal values on the command line (CV-007), so they stay out of shell history and process listings.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from nexus_flight.catalog.health import check_source
from nexus_flight.catalog.history import STATUSES, search_history
from nexus_flight.catalog.key_handover import finish_rotation, pending_handovers, rotate_master_key, rotation_done
from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.schema_cache import diff_versions, refresh_schema
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.core.errors import ConfigError, GatewayError
from nexus_flight.core.settings import load_settings, parse_value

_ENV_REF_PREFIX = "${env:"


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sources``, ``history`` and ``vault`` to a parser's subcommands."""
    common = common_options()

    sources = subparsers.add_parser("sources", help="manage data sources").add_subparsers(
        dest="sources_command", required=True
    )
    add = sources.add_parser("add", parents=[common], help="register a source (status draft)")
    add.add_argument("name")
    add.add_argument("--type", required=True, help="source type, e.g. postgresql, s3_parquet")
    add.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE")
    add.add_argument("--secret", "-s", action="append", default=[], metavar="KEY=${env:NAME}|KEY=-")
    add.add_argument("--auth-type")
    add.add_argument("--token-expires-at", type=datetime.fromisoformat)
    add.add_argument("--test", action="store_true", help="test the connection right away (exit 1 if it fails)")
    add.set_defaults(func=_sources_add)

    update = sources.add_parser(
        "update", parents=[common], help="change a source's options or secrets (a new password: -s password=-)"
    )
    update.add_argument("name")
    update.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                        help="set one option, keeping the others")
    update.add_argument("--secret", "-s", action="append", default=[], metavar="KEY=${env:NAME}|KEY=-",
                        help="the source's secrets: given ones replace all stored ones (give each it needs)")
    update.add_argument("--auth-type")
    update.add_argument("--token-expires-at", type=datetime.fromisoformat)
    update.add_argument("--test", action="store_true", help="test the connection right away (exit 1 if it fails)")
    update.set_defaults(func=_sources_update)

    listing = sources.add_parser("list", parents=[common], help="list sources")
    listing.add_argument("--type")
    listing.add_argument("--status")
    listing.set_defaults(func=_sources_list)

    for name, func, text in (
        ("show", _sources_show, "show one source (secrets redacted)"),
        ("test", _sources_test, "test the connection now"),
        ("enable", _sources_enable, "enable a disabled source and test it"),
        ("disable", _sources_disable, "disable a source (status inactive)"),
        ("remove", _sources_remove, "remove a source and its secrets"),
        ("refresh-schema", _sources_refresh, "read the source's schema into the cache"),
    ):
        sub = sources.add_parser(name, parents=[common], help=text)
        sub.add_argument("name")
        sub.set_defaults(func=func)

    diff = sources.add_parser(
        "diff-schema", parents=[common], help="what changed between two schema versions"
    )
    diff.add_argument("name")
    diff.add_argument("--from", dest="old", help="older version id (default: the one before the current)")
    diff.add_argument("--to", dest="new", help="newer version id (default: the current one)")
    diff.set_defaults(func=_sources_diff)

    history = subparsers.add_parser("history", parents=[common], help="search the query history")
    history.add_argument("--source")
    history.add_argument("--user")
    history.add_argument("--status", choices=STATUSES)
    history.add_argument("--since", type=parse_since, help="ISO time or a duration like 30m, 12h, 7d")
    history.add_argument("--limit", type=int, default=50)
    history.set_defaults(func=_history)

    vault = subparsers.add_parser("vault", help="manage the credential vault").add_subparsers(
        dest="vault_command", required=True
    )
    rotate = vault.add_parser(
        "rotate",
        parents=[common],
        help="re-encrypt every secret under the current master key (old keys: NEXUS_FLIGHT_OLD_MASTER_KEYS); "
             "running gateways follow without a restart",
    )
    rotate.set_defaults(func=_vault_rotate)
    finish = vault.add_parser(
        "finish-rotation", parents=[common],
        help="once every gateway runs with the new master key: delete the new key's copies sealed under old keys",
    )
    finish.set_defaults(func=_vault_finish_rotation)
    status = vault.add_parser("status", parents=[common], help="how many records each key id seals")
    status.set_defaults(func=_vault_status)
    init = vault.add_parser("init", help="make a master key and keep it in the OS keyring (or print it)")
    init.add_argument("--print", dest="print_key", action="store_true",
                      help="print the key for an env file or a secret store instead of using the keyring")
    init.set_defaults(func=_vault_init)


def common_options() -> argparse.ArgumentParser:
    """The options every catalog command takes (a parent parser): where the catalog is, and ``--json``."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS keeps these from overwriting the same options given to the top-level parser.
    common.add_argument("--config", default=argparse.SUPPRESS, help="TOML configuration file")
    common.add_argument("--catalog-url", default=argparse.SUPPRESS, help="SQLAlchemy URL of the catalog")
    common.add_argument(
        "--data-dir", default=argparse.SUPPRESS, help="directory of the default SQLite catalog"
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return common


def main(argv: Sequence[str] | None = None) -> int:
    """Run one catalog command (the same commands ``nexus-flight`` offers)."""
    parser = argparse.ArgumentParser(prog="nexus-flight")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# -- plumbing
# --------------------------------------------------------------------------------------------------


def open_store(args: argparse.Namespace) -> CatalogStore:
    """Open the catalog of the server settings: ``catalog_url``, else ``<data_dir>/catalog.db`` (flags win)."""
    flags = {name: getattr(args, name) for name in ("catalog_url", "data_dir") if getattr(args, name, None)}
    server = load_settings(getattr(args, "config", None), flags=flags)
    return CatalogStore(server.catalog_url, data_dir=server.data_dir)


def run_action(args: argparse.Namespace, action, failed=lambda result: False) -> int:
    """Open the store, run the action, print its result; errors become a message and exit code 2.

    ``failed(result)`` marks an outcome that printed fine but is a failure for scripts (exit code 1).
    """
    try:
        store = open_store(args)
        try:
            result = action(store)
        finally:
            store.close()
    except GatewayError as exc:
        print(f"error: {exc.client_message()}", file=sys.stderr)
        return 2
    if result is not None:
        _print(result, args.json)
    return 1 if failed(result) else 0


def _is_error(result: Mapping[str, Any]) -> bool:
    return result.get("status") == "error"


def _print(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=_json_default, sort_keys=True))
    elif isinstance(result, list):
        print(format_table(result) if result else "(none)")
    elif isinstance(result, Mapping):
        width = max((len(k) for k in result), default=0)
        for key, value in result.items():
            text = json.dumps(value, default=_json_default) if isinstance(value, dict | list) else value
            print(f"{key:<{width}}  {'' if text is None else text}")
    else:
        print(result)


def _json_default(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                 whole: Collection[str] = ()) -> str:
    """Rows as an aligned text table with a header; a long cell is cut, except in the columns of ``whole``."""
    columns = list(columns or rows[0].keys())
    cells = [[_cell(row.get(c), cut=c not in whole) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any, cut: bool = True) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 or not cut else text[:57] + "..."


def key_value_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments of option ``--what`` as a dict."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--{what} {item!r}: expected KEY=VALUE")
        pairs[key.strip()] = value
    return pairs


def secret_value(key: str, value: str, option: str | None = None) -> str:
    """``${env:NAME}`` or ``-`` (prompt, or one line of stdin when it is not a terminal); ``option`` names it."""
    where = option or f"--secret {key}"
    if value == "-":
        read = getpass.getpass(f"{key}: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        if not read:  # a script without input would otherwise store an empty secret in place of the real one
            raise ConfigError(f"{where}: - read nothing: type it at the prompt, or give it as one line of stdin")
        return read
    if value.startswith(_ENV_REF_PREFIX) and value.endswith("}"):
        name = value[len(_ENV_REF_PREFIX) : -1]
        if not os.environ.get(name):
            raise ConfigError(f"{where}: the environment variable {name} is not set")
        return os.environ[name]
    raise rule_error("CV-007", f"{where}: give ${{env:NAME}} or - (prompt), not the secret itself")


def parse_since(text: str) -> datetime:
    """``30m``, ``12h``, ``7d`` ago, or an ISO time (UTC when it names no zone)."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    return iso_time(text)


def iso_time(text: str) -> datetime:
    """An ISO time (UTC when it names no zone); argparse's own error, which names the flag, when it is none."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a duration like 30m, 12h or 7d nor an ISO time "
                                         "such as 2026-12-01T09:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_LIST_COLUMNS = ("name", "type", "family", "status", "auth_type", "health_failures", "last_error")


# -- commands
# --------------------------------------------------------------------------------------------------


def _options_and_secrets(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``-o KEY=VALUE`` options (read as TOML values) and ``-s KEY=${env:NAME}|-`` secrets of a command."""
    options = {k: parse_value(v, f"-o {k}") for k, v in key_value_pairs(args.option, "option").items()}
    secrets = {k: secret_value(k, v) for k, v in key_value_pairs(args.secret, "secret").items()}
    return options, secrets


def _sources_add(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        options, secrets = _options_and_secrets(args)
        info = store.add_source(args.name, args.type, options, secrets, args.auth_type, args.token_expires_at)
        if args.test:
            info = check_source(store, args.name)
        return info.redacted()

    return run_action(args, action, _is_error if args.test else (lambda result: False))


def _sources_update(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        options, secrets = _options_and_secrets(args)
        store.update_source(args.name, options=options or None, secrets=secrets or None,
                            auth_type=args.auth_type, token_expires_at=args.token_expires_at)
        info = check_source(store, args.name) if args.test else store.get_source(args.name)
        return info.redacted()

    return run_action(args, action, _is_error if args.test else (lambda result: False))


def _sources_list(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        rows = [s.redacted() for s in store.list_sources(args.type, args.status)]
        return rows if args.json else [{c: r[c] for c in _LIST_COLUMNS} for r in rows]

    return run_action(args, action)


def _sources_show(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: store.get_source(args.name).redacted())


def _sources_test(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        info = check_source(store, args.name)
        return {"name": info.name, "status": info.status, "last_error": info.last_error}

    return run_action(args, action, _is_error)


def _sources_enable(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        if store.get_source(args.name).status == "inactive":
            store.set_status(args.name, "draft")
        info = check_source(store, args.name)
        return {"name": info.name, "status": info.status, "last_error": info.last_error}

    return run_action(args, action, _is_error)


def _sources_disable(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        info = store.set_status(args.name, "inactive")
        return {"name": info.name, "status": info.status}

    return run_action(args, action)


def _sources_remove(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        store.remove_source(args.name)
        return {"name": args.name, "removed": True}

    return run_action(args, action)


def _sources_refresh(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        result = refresh_schema(store, args.name)
        return {
            "name": args.name,
            "version_id": result.version_id,
            "changed": result.changed,
            "previous_version": result.previous_version,
            "unreadable": result.unreadable,
        }

    return run_action(args, action)


def _sources_diff(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        diff = diff_versions(store, args.name, args.old, args.new)
        if args.json:
            return diff.to_dict()
        added_broken = {u.table: u.reason for u in diff.unreadable_tables if u.table in diff.added_tables}
        rows = [{"change": "added table", "table": t,
                 "detail": f"unreadable: {added_broken[t]}" if t in added_broken else ""} for t in diff.added_tables]
        rows += [{"change": "removed table", "table": t, "detail": ""} for t in diff.removed_tables]
        rows += [{"change": "changed kind", "table": k.table, "detail": f"{k.old_kind} -> {k.new_kind}"}
                 for k in diff.changed_kinds]
        for table in diff.changed_tables:
            rows += [
                {"change": "added column", "table": table.table, "detail": c} for c in table.added_columns
            ]
            rows += [
                {"change": "removed column", "table": table.table, "detail": c} for c in table.removed_columns
            ]
            rows += [
                {
                    "change": "changed column",
                    "table": table.table,
                    "detail": f"{c['name']}: {c['old_type']} -> {c['new_type']}"
                    + (
                        ""
                        if c["old_nullable"] == c["new_nullable"]
                        else f" ({'nullable' if c['new_nullable'] else 'not null'})"
                    ),
                }
                for c in table.changed_columns
            ]
        for unreadable in diff.unreadable_tables:  # its columns are unknown now, not removed
            if unreadable.table in added_broken:
                continue
            rows.append(
                {
                    "change": "became unreadable" if unreadable.previous_reason is None else "still unreadable",
                    "table": unreadable.table,
                    "detail": unreadable.reason
                    + ("" if unreadable.previous_reason is None else f" (was: {unreadable.previous_reason})"),
                }
            )
        rows += [
            {"change": "readable again", "table": t.table, "detail": f"columns: {', '.join(t.columns)}"}
            for t in diff.readable_again_tables
        ]
        if not rows:
            return f"no changes between {diff.old_version} and {diff.new_version}"
        return format_table(rows, whole=("detail",))  # the last column: an engine's reason is shown whole

    return run_action(args, action)


_HISTORY_COLUMNS = (
    "created_at",
    "source_name",
    "user_name",
    "status",
    "rows",
    "total_ms",
    "sql_text",
    "error_message",
)


def _history(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        rows = search_history(
            store, source=args.source, user=args.user, status=args.status, since=args.since, limit=args.limit
        )
        return rows if args.json else [{c: r[c] for c in _HISTORY_COLUMNS} for r in rows]

    return run_action(args, action)


def _vault_rotate(args: argparse.Namespace) -> int:
    lifetime = timedelta(seconds=load_settings(getattr(args, "config", None)).handle_ttl_seconds)

    def action(store: CatalogStore):
        counts = rotate_master_key(store, lifetime)
        current = store.vault.keys.require_current().key_id
        if not rotation_done(store.vault.keys, counts) and not pending_handovers(store):
            step = {"nothing_to_do": f"every record is sealed under the current key {current} and no old key is "
                                     "configured: to change keys, run this with a new key in NEXUS_FLIGHT_MASTER_KEY "
                                     "and this one in NEXUS_FLIGHT_OLD_MASTER_KEYS (README)"}
        else:
            step = {"next": "give every gateway the new key, then run `nexus-flight vault finish-rotation`"}
        return {
            "rotated": counts["credentials"],
            **counts,
            "current_key_id": current,
            "records_by_key_id": store.vault_key_ids(),
            **step,
        }

    return run_action(args, action)


def _vault_finish_rotation(args: argparse.Namespace) -> int:
    return run_action(args, lambda store: {"handovers_deleted": finish_rotation(store)})


def _vault_status(args: argparse.Namespace) -> int:
    def action(store: CatalogStore):
        current = store.vault.keys.current
        return {
            "current_key_id": current.key_id if current else None,
            "configured_key_ids": store.vault.keys.key_ids,
            "records_by_key_id": store.vault_key_ids(),
            "pending_handovers": pending_handovers(store),
        }

    return run_action(args, action)


def _vault_init(args: argparse.Namespace) -> int:
    """Make the first master key; never replace one (records sealed with it would be lost)."""
    from nexus_flight.catalog.vault import ENV_KEY, KEYRING_KEY, KEYRING_SERVICE, KeyRing, generate_key

    try:
        existing = KeyRing.from_environment().current
    except GatewayError as exc:
        print(f"error: {exc.client_message()}", file=sys.stderr)
        return 2
    if existing is not None:
        print(f"error: a master key is already configured (key id {existing.key_id!r}); keep it: the catalog's "
              "credentials are sealed with it. To change keys use `nexus-flight vault rotate` (README)",
              file=sys.stderr)
        return 2
    key = generate_key()
    if not args.print_key:
        unusable = _no_os_keyring()
        if unusable is None:
            try:
                import keyring

                keyring.set_password(KEYRING_SERVICE, KEYRING_KEY, key)
                print(f"master key stored in the OS keyring (service {KEYRING_SERVICE!r}, entry {KEYRING_KEY!r}); "
                      "the gateway and these commands read it from there when run as this user. Back it up: "
                      "without it the catalog's credentials cannot be opened.")
                return 0
            except Exception as exc:  # the keyring's service went away between the question and the write
                unusable = type(exc).__name__
        print(f"no usable OS keyring ({unusable}): keep the key below instead", file=sys.stderr)
    print(f"{ENV_KEY}={key}")
    print("# Keep this line in an env file readable only by the gateway's user (chmod 600) or in your secret "
          "store, set it for every gateway and `nexus-flight` command sharing the catalog, and back it up: "
          "without it the catalog's credentials cannot be opened.", file=sys.stderr)
    return 0


def _no_os_keyring() -> str | None:
    """Why the master key cannot go to an OS keyring here (None: it can).

    keyring falls back to backends that are no OS keyring: one that fails (servers and containers) or one that
    keeps keys in a plain file (keyrings.alt's), readable by whoever reads the file. Only a backend keyring itself
    recommends keeps the key.
    """
    try:
        import keyring
        from keyring.core import recommended

        backend = keyring.get_keyring()
    except Exception as exc:  # no keyring backend at all
        return type(exc).__name__
    kind = type(backend)
    return None if recommended(backend) else f"{kind.__module__}.{kind.__name__} is not an OS keyring"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
