"""The ``nexus-flight`` command."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from nexus_flight.core.errors import ConfigError, GatewayError
from nexus_flight.core.source import ValidationLimits
from nexus_flight.server.app.config import DEFAULT_PORT, ServerConfig
from nexus_flight.server.flight.status import full_tracebacks


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace) -> int:
    from nexus_flight.catalog.runtime import start_catalog
    from nexus_flight.server.app.gateway import Gateway, demo_source
    from nexus_flight.server.app.telemetry import configure_telemetry
    from nexus_flight.server.query.directory import StaticSourceDirectory

    catalog = start_catalog(args.config, data_dir=_given(args, "data_dir", None))
    settings = catalog.config.server
    if settings.auth.mode != "none":
        # Fail closed: the file asks for client authentication, which this version does not enforce yet.
        catalog.close()
        raise ConfigError(
            f"server.auth.mode = {settings.auth.mode!r} is not supported yet: this version serves without client "
            "authentication (loopback by default); remove [server.auth] or set mode = \"none\""
        )
    tls = settings.tls
    config = ServerConfig(
        host=_given(args, "host", settings.host),
        port=_given(args, "port", settings.port),
        data_dir=Path(_given(args, "data_dir", settings.data_dir)).expanduser(),
        demo_scale=None if args.no_demo else args.demo_scale,
        query_timeout_seconds=_given(args, "query_timeout", settings.query_timeout_seconds),
        max_message_bytes=_given(args, "max_message_bytes", settings.max_message_bytes),
        max_result_rows=settings.max_result_rows,
        max_result_bytes=settings.max_result_bytes,
        memory_limit=settings.memory_limit,
        process_memory_limit=None if settings.process_memory_limit.lower() == "none" else settings.process_memory_limit,
        max_tickets=settings.max_tickets,
        max_tickets_per_client=settings.max_tickets_per_client,
        max_prepared_statements=settings.max_prepared_statements,
        max_prepared_statements_per_client=settings.max_prepared_statements_per_client,
        validation_limits=ValidationLimits(
            max_length=settings.max_query_length, max_nesting=settings.max_nesting, max_joins=settings.max_joins
        ),
        default_source=settings.default_source,
        allow_unauthenticated_remote=args.allow_unauthenticated_remote,
        tls_cert_file=_given(args, "tls_cert", tls.cert_file if tls else None),
        tls_key_file=_given(args, "tls_key", tls.key_file if tls else None),
        tls_client_ca_file=_given(args, "tls_client_ca", tls.client_ca_file if tls else None),
    )
    # The catalog's sources are served with the demo alongside; the catalog's history records every query.
    if config.demo_scale is not None:
        catalog.directory.fallback = StaticSourceDirectory([demo_source(config)])

    configure_telemetry()
    gateway = Gateway(config, sources=catalog.directory, observers=catalog.observers)
    # The port is bound once the server object exists; pyarrow's serve() then blocks until SIGINT or SIGTERM,
    # which it handles itself (a Python handler would not run while it waits).
    print(f"Nexus Flight listening on {gateway.location}", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM ends the server like Ctrl-C does
    try:
        gateway.serve()
    except KeyboardInterrupt:
        pass
    print("shutting down", flush=True)
    gateway.shutdown()
    catalog.close()
    return 0


def _given(args: argparse.Namespace, name: str, otherwise):
    """Return a serve option given on the command line, else ``otherwise`` (the configuration file's)."""
    value = getattr(args, name)
    return otherwise if value is None else value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="nexus-flight", description="A read-only Arrow Flight SQL gateway")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve Flight SQL (the TPC-H demo catalog by default)")
    # No argparse defaults for what the configuration file can also set: a flag given wins over the file, the file
    # over the built-in default (ServerSettings).
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--data-dir", help="where the demo data and the catalog live (default ./data)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--demo-scale", type=float, default=0.01, help="TPC-H scale factor of the demo catalog")
    serve.add_argument("--no-demo", action="store_true", help="do not serve the demo catalog")
    serve.add_argument("--query-timeout", type=float, help="server-side query timeout, seconds (default 300)")
    serve.add_argument("--max-message-bytes", type=int,
                       help="largest Flight message sent to clients (default 16 MiB, what they accept by default)")
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve grpc+tls")
    serve.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    serve.add_argument("--tls-client-ca", type=Path, help="PEM CA bundle: require client certificates (mTLS)")
    serve.add_argument("--allow-unauthenticated-remote", action="store_true",
                       help="serve a non-loopback address without authentication (trusted networks only)")
    serve.set_defaults(func=_serve)
    from nexus_flight.catalog.cli import add_subcommands

    add_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
