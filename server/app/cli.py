"""The ``nexus-flight`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from nexus_flight.core.errors import ConfigError, GatewayError
from nexus_flight.core.settings import DEFAULT_PORT, ServerSettings
from nexus_flight.server.flight.status import client_safe_tracebacks, full_tracebacks


def _serve(args: argparse.Namespace) -> int:
    from nexus_flight.catalog.config_file import load_config
    from nexus_flight.catalog.runtime import start_catalog
    from nexus_flight.server.app.gateway import Gateway, demo_source
    from nexus_flight.server.app.lifecycle import SignalWaiter, drain
    from nexus_flight.server.app.logs import configure_logging
    from nexus_flight.server.app.memory_guard import cap_process_memory
    from nexus_flight.server.app.reload import reload_or_explain
    from nexus_flight.server.app.telemetry import configure_telemetry
    from nexus_flight.server.query.directory import StaticSourceDirectory

    try:
        config = load_config(args.config, flags=given_settings(args))
    except ConfigError as exc:
        raise ConfigError(with_flag(exc.message), **exc.details) from None
    settings = config.server
    configure_logging(settings.log_format, settings.log_level, settings.log_levels)
    waiter = SignalWaiter()
    waiter.install()  # from here a signal drains; before, the default handlers end the start-up at once
    catalog = start_catalog(config, admit=_require_vault_keys)  # refused: the file has changed nothing
    security = None
    try:
        if settings.auth.enabled:
            from nexus_flight.server.app.security import start_security

            security = start_security(catalog.store, settings.auth, settings.limits.as_limits())
    except GatewayError:
        catalog.close()
        raise
    # The catalog's sources are served with the demo alongside; the catalog's history records every query.
    if settings.demo_scale is not None:
        catalog.directory.fallback = StaticSourceDirectory([demo_source(settings)])

    configure_telemetry()
    # This process is the gateway's and serves from construction: status messages carry no frames from now on.
    with client_safe_tracebacks():
        try:
            from nexus_flight.server.app.replicas import handle_signer, share_cancels, share_limits, shared_sessions

            gateway = Gateway(settings, sources=catalog.directory, observers=catalog.observers,
                              authenticator=security.authenticator if security else None,
                              access=security.access if security else None,
                              administration=security.administration if security else None,
                              signer=handle_signer(catalog.store), sessions=shared_sessions(catalog.store))
        except BaseException:
            if security is not None:
                security.close()
            catalog.close()
            raise
        share_cancels(gateway.service, catalog.store)
        limits = (share_limits(gateway.service, catalog.store, settings.slot_lease_seconds)
                  if settings.limit_counts == "catalog" else None)
        gateway.readiness.append(lambda: catalog.watch.not_ready(gateway.settings.catalog_outage_grace_seconds))
        gateway.metrics.add_catalog_watch(catalog.watch)
        gateway.metrics.add_catalog_writers({"history": catalog.history.counts,
                                             **({"audit": security.audit.counts} if security else {})})
        if settings.process_memory_limit is not None:
            cap_process_memory(settings.process_memory_limit)  # the process is ours: an embedding one decides itself
        print(f"Nexus Flight listening on {gateway.location}", flush=True)
        if gateway.operations is not None:
            print(f"health and metrics on http://{settings.http_host or settings.host}:{gateway.operations.port}"
                  "/healthz /readyz /metrics", flush=True)
        # The server serves from its construction; this thread only waits for signals.
        while (received := waiter.wait()) == "SIGHUP":
            reload_or_explain(args.config, given_settings(args), gateway, catalog.store,
                              say=lambda text: print(text, flush=True))
        drain_seconds = gateway.settings.drain_seconds  # as the last reload left it
        print(f"{received}: shutting down (drain_seconds={drain_seconds:g})", flush=True)
        drain(gateway, drain_seconds, f"{received} received", say=lambda text: print(text, flush=True))
        if not gateway.shutdown(wait_seconds=10):
            print("calls still open after the drain (clients not reading): exiting without them", flush=True)
            if limits is not None:
                limits.close()
            catalog.close()
            return 0
        if security is not None:
            security.close()
        if limits is not None:
            limits.close()
        catalog.close()
        print("stopped", flush=True)
        return 0


def _require_vault_keys(store) -> None:
    """Refuse to serve when the catalog holds credentials this process has no key to open.

    Every query on those sources would otherwise fail, one by one, with a vault error.

    Raises:
        ConfigError: CV-001 (no master key at all) or CV-004 (keys of some records missing), naming the fix.

    """
    from nexus_flight.catalog.vault import ENV_KEY, MISSING_KEY_FIX

    sealed = store.vault_key_ids()
    missing = sorted(set(sealed) - set(store.vault.keys.key_ids))
    if not missing:
        return
    count = sum(sealed[k] for k in missing)
    what = f"{count} source credential{'s' if count != 1 else ''} in the catalog {'are' if count != 1 else 'is'}"
    ids = ", ".join(repr(k) for k in missing)
    if store.vault.keys.current is None:
        raise ConfigError(
            f"CV-001: {what} sealed with master key {ids} and no master key is configured: set {ENV_KEY} to "
            "that key (or keep it in the OS keyring, `nexus-flight vault init` explains where) and start again",
            rule="CV-001",
        )
    raise ConfigError(
        f"CV-004: {what} sealed with key {ids}, which is not configured: {MISSING_KEY_FIX} "
        "(then `nexus-flight vault rotate` re-seals them under the current key)",
        rule="CV-004",
    )


#: The serve flag that sets each setting (its dest is the setting's dotted name), named in errors about it.
SETTING_FLAGS: dict[str, str] = {}


def with_flag(message: str) -> str:
    """``server.tls.key_file: Field required`` -> ``server.tls.key_file (--tls-key): Field required``.

    A setting may come from the file, the environment or a flag: the message names the setting as the file
    spells it and, where one exists, the flag, so it reads right whichever the user gave.
    """
    where, sep, reason = message.partition(": ")
    flag = SETTING_FLAGS.get(where.removeprefix("server.")) if where.startswith("server.") else None
    return f"{where} ({flag}){sep}{reason}" if flag and sep else message


def given_settings(args: argparse.Namespace) -> dict[str, object]:
    """The server settings given as flags, by (dotted) setting name: a flag's ``dest`` is the setting it sets.

    Flags have no argparse default (``SUPPRESS``), so only those on the command line appear, and one given wins
    over the environment and the file even when it repeats the built-in default.
    """
    return {k: v for k, v in vars(args).items() if k.split(".")[0] in ServerSettings.model_fields}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="nexus-flight", description="A read-only Arrow Flight SQL gateway")
    parser.add_argument("--log-level", dest="log_level", default=argparse.SUPPRESS, type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], metavar="LOG_LEVEL",
                        help="level of the log (DEBUG, INFO, WARNING, ERROR; default INFO)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve Flight SQL (the TPC-H demo catalog by default)",
                           argument_default=argparse.SUPPRESS)
    # Each flag's dest names the ServerSettings field it sets (defaults, bounds and meaning are declared there).
    serve.add_argument("--config", default=None, help="TOML configuration file")
    serve.add_argument("--host", dest="host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", dest="port", type=int,
                       help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--data-dir", dest="data_dir", help="where the demo data and the catalog live (default ./data)")
    serve.add_argument("--demo-scale", dest="demo_scale", type=float,
                       help="TPC-H scale factor of the demo catalog (default 0.01)")
    serve.add_argument("--no-demo", dest="demo_scale", action="store_const", const=None,
                       help="do not serve the demo catalog")
    serve.add_argument("--query-timeout", dest="query_timeout_seconds", type=float,
                       help="server-side query timeout, seconds (default 300)")
    serve.add_argument("--max-message-bytes", dest="max_message_bytes", type=int,
                       help="largest Flight message sent to clients (default 16 MiB, what they accept by default)")
    serve.add_argument("--tls-cert", dest="tls.cert_file", type=Path, help="PEM certificate chain: serve grpc+tls")
    serve.add_argument("--tls-key", dest="tls.key_file", type=Path, help="PEM private key of --tls-cert")
    serve.add_argument("--tls-client-ca", dest="tls.client_ca_file", type=Path,
                       help="PEM CA bundle: require client certificates (mTLS)")
    serve.add_argument("--allow-unauthenticated-remote", dest="allow_unauthenticated_remote", action="store_true",
                       help="serve a non-loopback address without authentication (trusted networks only)")
    serve.add_argument("--http-port", dest="http_port", type=int,
                       help="serve /healthz, /readyz and /metrics over HTTP on this port (off by default)")
    serve.add_argument("--drain-seconds", dest="drain_seconds", type=float,
                       help="on Ctrl-C or SIGTERM, how long running queries may finish (default 30)")
    serve.add_argument("--log-format", dest="log_format", choices=["text", "json"],
                       help="text (default) or json: one JSON object per line")
    serve.set_defaults(func=_serve)
    SETTING_FLAGS.update({dest: options[0] for dest, options in _setting_options(serve).items()})
    from nexus_flight.catalog.cli import add_subcommands
    from nexus_flight.server.app.policies_cli import add_policy_subcommands
    from nexus_flight.server.app.security_cli import add_security_subcommands

    add_subcommands(sub)
    add_security_subcommands(sub)
    add_policy_subcommands(sub)
    return parser


def _setting_options(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Setting name -> the option strings of the flags that set it (``--no-demo`` too sets ``demo_scale``)."""
    found: dict[str, list[str]] = {}
    for action in parser._actions:  # argparse keeps no public list of a parser's arguments
        if action.option_strings and action.dest.split(".")[0] in ServerSettings.model_fields:
            found.setdefault(action.dest, []).extend(action.option_strings)
    return found


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(args, "log_level", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # this process is the gateway's: its log keeps every frame
        full_tracebacks(handler)
    try:
        return args.func(args)
    except GatewayError as exc:
        print(f"error: {exc.client_message()}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid configuration: {problems}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
