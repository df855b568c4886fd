"""The Flight SQL endpoint: decodes each command, hands it to the query service or the metadata builders, encodes.

This is the only module that turns Flight SQL commands into the pipeline's requests (``QueryRequest``, ``QueryRun``)
and its answers back into Flight messages. Query results leave as a ``GeneratorStream`` over the engine's own
batches (not copied; the engine runs with the GIL released, see ``server/query/results.py``). One endpoint per
result, no locations (every client then redeems the ticket on the connection it already has, which behind a proxy
may reach another replica: tickets and prepared-statement handles are signed and self-contained,
``signed_handles.py``, and the stores in ``handles.py`` only spare the replica that made them re-planning). Every
error leaves through ``server/flight/status.py``: ``translate`` around each call, ``flight_batches`` around each stream.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from nexus_flight.core.errors import (
    BackendUnavailableError,
    ForbiddenError,
    GatewayError,
    InvalidQueryError,
    ReadOnlyViolationError,
    UnsupportedError,
)
from nexus_flight.server.flight import protocol
from nexus_flight.server.flight.administration import PREFIX as ADMIN_PREFIX
from nexus_flight.server.flight.administration import Administration, listed_actions, run_administration
from nexus_flight.server.flight.auth import (
    MIDDLEWARE_KEY,
    Authenticator,
    HandshakeHandler,
    Identity,
    IdentityMiddlewareFactory,
    OpenAuthenticator,
    ProxyHeaders,
    identity_of,
    session_cookie_given,
)
from nexus_flight.server.flight.catalog_browser import CatalogBrowser, result_schema
from nexus_flight.server.flight.handles import HandleLimits, PreparedStatement, SignedOrigin, Ticket
from nexus_flight.server.flight.protocol import flight as fpb
from nexus_flight.server.flight.protocol import sql as pb
from nexus_flight.server.flight.signed_handles import (
    PREPARED,
    TICKET,
    HandleSigner,
    expired,
    ipc_bytes,
    schema_of,
    table_of,
)
from nexus_flight.server.flight.sql_info import sql_info_table
from nexus_flight.server.flight.status import flight_batches, gateway_error_of, translate
from nexus_flight.server.flight.visibility import visible_rows
from nexus_flight.server.flight.xdbc import xdbc_type_info_table
from nexus_flight.server.query.principal import anonymous
from nexus_flight.server.query.principal_limits import part_credit
from nexus_flight.server.query.service import PreparedQuery, QueryRequest, QueryService
from nexus_flight.server.query.session import KNOWN_OPTIONS, Session, SessionStore, valid_dialect

log = logging.getLogger("nexus_flight.server")

COMPLETION_KEY = "completion"
CORRELATION_HEADER = "x-correlation-id"

_READ_ONLY = "this gateway is read-only: {what} is not accepted"
_NO_TRANSACTIONS = "transactions and savepoints are not supported: this gateway is read-only and runs each query alone"

# CancelResult / CancelStatus values
_CANCELLED, _NOT_CANCELLABLE = 1, 3
# SetSessionOptionsResult.ErrorValue
_INVALID_NAME, _INVALID_VALUE = 1, 2
#: Largest handle a parameter binding returns with the parameters signed inside; larger bindings stay in this
#: process (the original handle is returned, and executes only here).
MAX_SIGNED_HANDLE_BYTES = 256 * 1024


class CompletionMiddleware(flight.ServerMiddleware):
    """Runs callbacks when a call ends, however it ends (finished stream, client gone, deadline)."""

    def __init__(self, correlation_id: str | None) -> None:
        self.correlation_id = correlation_id
        self.callbacks: list[Callable[[BaseException | None], None]] = []

    def call_completed(self, exception: BaseException | None) -> None:
        """Release what the call held and record how it went."""
        for callback in self.callbacks:
            try:
                callback(exception)
            except Exception:
                log.exception("completion callback failed")


class CompletionMiddlewareFactory(flight.ServerMiddlewareFactory):
    """Attaches a completion tracker to every call (and picks up the client's correlation id)."""

    def start_call(self, info: flight.CallInfo, headers: dict) -> CompletionMiddleware:
        """Track this call."""
        correlation = None
        for key, values in headers.items():
            if key.lower() == CORRELATION_HEADER and values:
                value = values[0]
                correlation = (value.decode() if isinstance(value, bytes) else value)[:128]
        return CompletionMiddleware(correlation)


class FlightSqlServer(flight.FlightServerBase):
    """A read-only Flight SQL server over the gateway's sources."""

    def __init__(self, location: str, service: QueryService, handle_ttl_seconds: float = 1800.0,
                 statement_timeout_seconds: int = 300, handle_limits: HandleLimits | None = None,
                 authenticator: Authenticator | None = None, proxy_headers: ProxyHeaders | None = None,
                 administration: Administration | None = None, signer: HandleSigner | None = None,
                 sessions: SessionStore | None = None, max_endpoints: int = 1,
                 advertised_locations: Sequence[str] = (), **kwargs) -> None:
        self.authenticator = authenticator or OpenAuthenticator()
        #: The ``nexus.*`` administration actions (None: authentication off, no admin, every one refused).
        self.administration = administration
        super().__init__(
            location,
            # Arrow passes a verified client certificate's identity to calls only without a Handshake handler.
            auth_handler=None if self.authenticator.certificate_identities else HandshakeHandler(),
            middleware={
                MIDDLEWARE_KEY: IdentityMiddlewareFactory(self.authenticator, proxy_headers),
                COMPLETION_KEY: CompletionMiddlewareFactory(),
            },
            **kwargs,
        )
        self.service = service
        self.browser = CatalogBrowser(service.sources, service.policy)
        self.sessions = sessions or SessionStore()
        #: Signs tickets and prepared-statement handles (keys from the catalog: every replica verifies them).
        self.signer = signer or HandleSigner()
        self.handle_ttl = float(handle_ttl_seconds)
        #: Most endpoints a splittable result (a scan of files) is served as, each a group of its files.
        self.max_endpoints = max_endpoints
        #: Where clients fetch the endpoints of a split result (the proxy's or the gateways' addresses); none: on
        #: the connection that asked.
        self.advertised_locations = [flight.Location(uri) for uri in advertised_locations]
        limits = handle_limits or HandleLimits()
        self.prepared = limits.prepared_store(handle_ttl_seconds)
        self.tickets = limits.ticket_store(handle_ttl_seconds)
        self.statement_timeout = int(statement_timeout_seconds)
        #: Why new queries are refused (the server is draining before it stops); None while serving.
        self.draining: str | None = None

    def begin_drain(self, reason: str) -> None:
        """Refuse new queries from now on (UNAVAILABLE naming ``reason``); running streams go on.

        Queries waiting for room in the memory budget leave the queue with the same refusal.
        """
        self.draining = reason
        self.service.stop_waiting(self._refusal)  # queries waiting for memory would start after the drain

    def _admit(self) -> None:
        if self.draining is not None:
            raise self._refusal()

    def _refusal(self) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"the gateway is shutting down ({self.draining}) and accepts no new queries: retry, another "
            "replica or the restarted gateway will answer"
        )

    # -- helpers -------------------------------------------------------------------------------------------

    def _caller(self, context) -> Identity:
        """Who is calling (signed in by the middleware, or here by its client certificate)."""
        return identity_of(context, self.authenticator)

    def _session(self, context, options: bool = True) -> Session:
        """The caller's session; ``options=False`` where its options are not read (``SessionStore.get``)."""
        identity = self._caller(context)
        session = self.sessions.get(identity.session_key, identity.principal, options=options)
        if identity.principal.authenticated:
            session.principal = identity.principal  # roles may have changed since the session began
        session.address = identity.address
        return session

    def _request(self, context, session: Session, sql: str) -> QueryRequest:
        """What the query service is asked for a statement of this call's session."""
        return QueryRequest(sql, session.principal, session.catalog, session.dialect, self._correlation(context),
                            session.address)

    @staticmethod
    def _command(descriptor: flight.FlightDescriptor):
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            raise UnsupportedError("path descriptors are not supported: send a Flight SQL command")
        return protocol.unpack_any(descriptor.command)

    @staticmethod
    def _correlation(context) -> str | None:
        middleware = context.get_middleware(COMPLETION_KEY)
        return middleware.correlation_id if middleware else None

    @staticmethod
    def _reject_transaction(cmd) -> None:
        if cmd.HasField("transaction_id") and cmd.transaction_id:
            raise UnsupportedError(_NO_TRANSACTIONS)

    def _info(self, descriptor, schema: pa.Schema, tickets: list[tuple[bytes, float | None]]) -> flight.FlightInfo:
        locations = self.advertised_locations if len(tickets) > 1 else []
        endpoints = [flight.FlightEndpoint(ticket, locations, expiration_time=_timestamp(expires_at))
                     for ticket, expires_at in tickets]
        return flight.FlightInfo(schema, descriptor, endpoints, -1, -1)

    @staticmethod
    def _origin(session: Session, sql: str) -> SignedOrigin:
        return SignedOrigin(sql, session.catalog, session.dialect, session.principal.name)

    @staticmethod
    def _origin_claims(origin: SignedOrigin, expires_at: float) -> dict[str, Any]:
        return {"v": 1, "n": secrets.token_hex(6), "sql": origin.sql, "cat": origin.catalog, "dia": origin.dialect,
                "user": origin.user, "exp": expires_at}

    def _new_tickets(self, context, session: Session, plan, schema, origin: SignedOrigin, parameters=None,
                     plan_timings=None, parameter_table: pa.Table | None = None, split: bool = True,
                     prepaid: str | None = None) -> list[Ticket]:
        """The tickets of a result: one, or one per part of a split result (file groups, upstream endpoints).

        ``prepaid`` (the rate token planning took) pays for the first run of each, wherever it is redeemed (each
        ticket carries it, each part of a split result its own part of it): one query, one token.
        """
        self._admit()
        parts = self.service.split(plan, session.principal, self.max_endpoints if split else 1)
        if len(parts) > 1:
            self.service.limiter.share(prepaid, len(parts))
        return [self._new_ticket(context, session, part, schema, origin, parameters, plan_timings, parameter_table,
                                 part_credit(prepaid, i) if len(parts) > 1 else prepaid)
                for i, part in enumerate(parts)]

    def _new_ticket(self, context, session: Session, plan, schema, origin: SignedOrigin, parameters=None,
                    plan_timings=None, parameter_table: pa.Table | None = None,
                    prepaid: str | None = None) -> Ticket:
        expires_at = time.time() + self.handle_ttl
        correlation = self._correlation(context) or uuid.uuid4().hex
        claims = {**self._origin_claims(origin, expires_at), "schema": ipc_bytes(schema),
                  "params": ipc_bytes(parameter_table), "cid": correlation, "part": plan.file_part, "cr": prepaid}
        if plan.upstream_partitions is not None:
            # The upstream's tickets (and where it serves them) stay unreadable: clients fetch through the gateway.
            claims["up"] = self.signer.seal(b"".join(_framed(p) for p in plan.upstream_partitions))
            claims["upw"] = plan.upstream_whole
        handle = self.signer.sign(TICKET, claims)
        ticket = Ticket(
            handle=handle, session_key=session.key, principal=session.principal, plan=plan, schema=schema,
            parameters=parameters, correlation_id=correlation, plan_timings=dict(plan_timings or {}),
            client_address=session.address, expires_at=expires_at, prepaid=prepaid, client_sql=origin.sql,
        )
        self.tickets.put(handle, ticket, owner=session.key)
        return ticket

    @staticmethod
    def _packed(ticket: Ticket) -> bytes:
        return protocol.pack(pb.TicketStatementQuery(statement_handle=ticket.handle))

    @staticmethod
    def _check_owner(principal, user: str, what: str) -> None:
        """A signed handle serves the user it was issued to (grants are checked again when it runs)."""
        if principal.authenticated and principal.name != user:
            raise ForbiddenError(f"the {what} was issued to another user")

    def _redeem(self, context, handle: bytes) -> Ticket:
        """The ticket behind a signed handle: this process's own, else rebuilt from what it carries.

        Only the caller's sign-in is read, not its session: everything the query needs is in the ticket.
        """
        caller = self._caller(context)
        ticket = self.tickets.peek(handle)
        if ticket is not None:
            if self.signer.expired(ticket.expires_at):
                raise expired(TICKET)
            self._check_owner(caller.principal, ticket.principal.name, "ticket")
        else:
            claims = self.signer.open(TICKET, handle)
            origin = self._signed_origin(claims)
            self._check_owner(caller.principal, origin.user, "ticket")
            principal = caller.principal if caller.principal.authenticated else anonymous(origin.user)
            plan = self._with_part(self._replan(context, principal, caller.address, origin), claims.get("part"))
            if "up" in claims:
                plan = dataclasses.replace(plan, upstream_partitions=_unframed(self.signer.unseal(claims["up"])),
                                           upstream_whole=bool(claims.get("upw")))
            table = table_of(claims.get("params"))
            ticket = Ticket(handle=handle, session_key=caller.session_key, principal=principal, plan=plan,
                            schema=schema_of(claims["schema"]), parameters=parameter_rows(table),
                            correlation_id=claims.get("cid"), client_address=caller.address,
                            expires_at=float(claims["exp"]), prepaid=_credit_claim(claims), client_sql=origin.sql)
            self.tickets.put(handle, ticket, owner=caller.session_key)
        if caller.principal.authenticated:
            ticket = dataclasses.replace(ticket, principal=caller.principal)  # today's roles and grants
        return ticket

    @staticmethod
    def _with_part(plan, part: object):
        """The plan of one endpoint of a split result (``part``: [index, count]), or the whole plan."""
        if part is None:
            return plan
        if not (isinstance(part, list) and len(part) == 2 and all(isinstance(n, int) for n in part)
                and 0 <= part[0] < part[1] <= 1024):
            raise InvalidQueryError("not a valid ticket: its part of the result is malformed")
        return dataclasses.replace(plan, file_part=(part[0], part[1]))

    @staticmethod
    def _signed_origin(claims: dict[str, Any]) -> SignedOrigin:
        try:
            return SignedOrigin(str(claims["sql"]), claims.get("cat"), claims.get("dia"), str(claims["user"]))
        except KeyError:
            raise InvalidQueryError("not a valid handle: it does not say which query it runs") from None

    def _replan(self, context, principal, address: str | None, origin: SignedOrigin):
        """Route a signed handle's query again, for the caller, as the session that made it had it."""
        return self.service.route(QueryRequest(origin.sql, principal, origin.catalog, origin.dialect,
                                               self._correlation(context), address))

    def _sign_prepared(self, statement: PreparedStatement) -> bytes:
        assert statement.origin is not None
        claims = {**self._origin_claims(statement.origin, time.time() + self.handle_ttl),
                  "ds": ipc_bytes(statement.dataset_schema), "ps": ipc_bytes(statement.parameter_schema),
                  "params": ipc_bytes(statement.parameter_table), "cr": statement.prepaid}
        return self.signer.sign(PREPARED, claims)

    def _statement(self, context, handle: bytes) -> PreparedStatement:
        """The prepared statement behind a handle: this process's own, else rebuilt from what it carries."""
        statement = self.prepared.peek(handle)
        if statement is not None:
            return statement
        claims = self.signer.open(PREPARED, handle)
        origin = self._signed_origin(claims)
        session = self._session(context, options=False)  # the handle carries the catalog and dialect it was planned in
        self._check_owner(session.principal, origin.user, "prepared statement handle")
        table = table_of(claims.get("params"))
        statement = PreparedStatement(handle, session.key,
                                      self._replan(context, session.principal, session.address, origin),
                                      schema_of(claims["ds"]), schema_of(claims["ps"]), parameter_rows(table),
                                      origin=origin, parameter_table=table, prepaid=_credit_claim(claims))
        self.prepared.put(handle, statement, owner=session.key)
        return statement

    def _plan(self, context, session: Session, sql: str) -> PreparedQuery:
        """Plan a query; its result schema carries the column metadata JDBC and ODBC read."""
        self._admit()
        prepared = self.service.plan(self._request(context, session, sql))
        schema = result_schema(prepared.dataset_schema, prepared.plan.source)
        return dataclasses.replace(prepared, dataset_schema=schema)

    def _statement_tickets(self, context, cmd, split: bool) -> list[Ticket]:
        self._reject_transaction(cmd)
        session = self._session(context)
        prepared = self._plan(context, session, cmd.query)
        if prepared.plan.parameter_count:
            raise InvalidQueryError(
                f"the query has {prepared.plan.parameter_count} parameter placeholder(s): prepare it and bind values"
            )
        return self._new_tickets(context, session, prepared.plan, prepared.dataset_schema,
                                 self._origin(session, cmd.query), plan_timings=prepared.timings_ms, split=split,
                                 prepaid=prepared.prepaid)

    def _prepared_tickets(self, context, cmd, split: bool) -> list[Ticket]:
        statement = self._statement(context, cmd.prepared_statement_handle)
        if len(statement.parameter_schema) and statement.parameters is None:
            raise InvalidQueryError(
                f"the prepared statement has {len(statement.parameter_schema)} parameter(s) and none are bound"
            )
        session = self._session(context, options=False)  # the statement's catalog and dialect were fixed at prepare
        self.service.authorize(statement.plan, session.principal)  # grants may have changed since it was prepared
        # Each execution is a query: the first on any replica spends what preparing it took, others take a token.
        prepaid, statement.prepaid = statement.prepaid, None
        prepaid = self.service.limiter.claim(session.principal, prepaid)
        # Some engines type results by the bound values (SQLite): the schema follows what is bound now.
        bound = self.service.bound_schema(statement.plan, statement.parameters, session.principal)
        assert statement.origin is not None
        return self._new_tickets(context, session, statement.plan, bound or statement.dataset_schema,
                                 statement.origin, statement.parameters, statement.plan_timings,
                                 statement.parameter_table, split=split, prepaid=prepaid)

    def _query_tickets(self, context, cmd, split: bool = True) -> list[Ticket] | None:
        """The tickets that run a query command (several for a split result); None for any other command."""
        if isinstance(cmd, pb.CommandStatementQuery):
            return self._statement_tickets(context, cmd, split)
        if isinstance(cmd, pb.CommandPreparedStatementQuery):
            return self._prepared_tickets(context, cmd, split)
        return None

    def _describe(self, context, cmd) -> tuple[pa.Schema, list[tuple[bytes, float | None]] | None]:
        """The result schema of a command and, for queries, the tickets that run it and when they expire."""
        tickets = self._query_tickets(context, cmd)
        if tickets is not None:
            return tickets[0].schema, [(self._packed(ticket), ticket.expires_at) for ticket in tickets]
        if isinstance(cmd, (pb.CommandStatementSubstraitPlan,)):
            raise UnsupportedError("Substrait plans are not supported: send SQL")
        if isinstance(cmd, (pb.CommandStatementUpdate, pb.CommandPreparedStatementUpdate, pb.CommandStatementIngest)):
            raise ReadOnlyViolationError(_READ_ONLY.format(what=cmd.DESCRIPTOR.name))
        schema = self.browser.schema_of(cmd)
        return schema, None

    # -- Flight RPCs ---------------------------------------------------------------------------------------

    def get_flight_info(self, context, descriptor):
        """Plan a query (schema, ticket) or describe a metadata command."""
        with translate():
            self._caller(context)
            cmd = self._command(descriptor)
            schema, tickets = self._describe(context, cmd)
            return self._info(descriptor, schema, tickets if tickets is not None else [(protocol.pack(cmd), None)])

    def get_schema(self, context, descriptor):
        """The result schema of a command, without running it."""
        with translate(schema_call=True):
            self._caller(context)
            cmd = self._command(descriptor)
            if isinstance(cmd, pb.CommandStatementQuery):
                self._reject_transaction(cmd)
                schema = self._plan(context, self._session(context), cmd.query).dataset_schema
            elif isinstance(cmd, pb.CommandPreparedStatementQuery):
                statement = self._statement(context, cmd.prepared_statement_handle)
                self.service.authorize(statement.plan, self._session(context, options=False).principal)
                schema = statement.dataset_schema
            else:
                schema, _ = self._describe(context, cmd)
            return flight.SchemaResult(schema)

    def do_get(self, context, ticket):
        """Stream a query result or a metadata table."""
        with translate():
            self._caller(context)
            cmd = protocol.unpack_any(ticket.ticket)
            if isinstance(cmd, pb.TicketStatementQuery):
                return self._stream(context, self._redeem(context, cmd.statement_handle))
            query = self._query_tickets(context, cmd, split=False)  # a query command redeemed as its own ticket
            if query is not None:
                return self._stream(context, query[0])
            return flight.RecordBatchStream(self._metadata_table(context, cmd))

    def _stream(self, context, ticket: Ticket):
        running = self.service.open(ticket.run(), watch=context)
        self.tickets.retire(ticket.handle)
        middleware = context.get_middleware(COMPLETION_KEY)
        if middleware is not None:
            middleware.callbacks.append(lambda exception: running.finish(gateway_error_of(exception)))
        return flight.GeneratorStream(ticket.schema, flight_batches(running))

    def _metadata_table(self, context, cmd) -> pa.Table:
        principal = self._session(context, options=False).principal
        if isinstance(cmd, pb.CommandGetSqlInfo):
            restricted = self.service.access is not None and principal.authenticated and not principal.is_admin
            return sql_info_table(cmd.info, self.statement_timeout, all_tables_selectable=not restricted)
        if isinstance(cmd, pb.CommandGetXdbcTypeInfo):
            catalog = self._session(context).catalog or self.service.default_catalog(principal)
            names = self.browser.xdbc_type_names(catalog, principal)
            return xdbc_type_info_table(cmd.data_type if cmd.HasField("data_type") else None, names)
        # The browser shows what the access policy lets through; the grants then cut rows naming hidden objects.
        return visible_rows(self.browser.table_of(cmd, principal), self.service.access,
                            principal if principal.authenticated else None, self.service.identifiers)

    def do_put(self, context, descriptor, reader, writer):
        """Bind parameters to a prepared statement; refuse every write."""
        with translate():
            self._caller(context)
            cmd = self._command(descriptor)
            if isinstance(cmd, pb.CommandPreparedStatementQuery):
                statement = self._statement(context, cmd.prepared_statement_handle)
                statement.parameters, statement.parameter_table = self._read_parameters(reader, statement)
                # The spec's stateless prepared statements: the handle returned carries the parameters, so any
                # replica executes it; the original keeps them here for clients that execute the original.
                bound = dataclasses.replace(statement)
                handle = self._sign_prepared(bound)
                if len(handle) <= MAX_SIGNED_HANDLE_BYTES:
                    bound.handle = handle
                    self.prepared.put(handle, bound, owner=self._session(context, options=False).key)
                else:
                    handle = cmd.prepared_statement_handle
                result = pb.DoPutPreparedStatementResult(prepared_statement_handle=handle)
                writer.write(pa.py_buffer(result.SerializeToString()))
                return
            if isinstance(cmd, (pb.CommandStatementUpdate, pb.CommandPreparedStatementUpdate,
                                pb.CommandStatementIngest)):
                raise ReadOnlyViolationError(_READ_ONLY.format(what=cmd.DESCRIPTOR.name))
            raise UnsupportedError(f"{cmd.DESCRIPTOR.name} is not accepted by DoPut")

    @staticmethod
    def _read_parameters(reader, statement: PreparedStatement) -> tuple[list[tuple[Any, ...]] | None, pa.Table | None]:
        """The bound rows and the table they came in."""
        try:
            table = reader.read_all()
        except pa.ArrowInvalid:
            table = None  # descriptor-only DoPut: "Client never sent a data message"
        rows = parameter_rows(table)
        expected = len(statement.parameter_schema)
        if rows is None:
            if expected:
                raise InvalidQueryError(f"the statement has {expected} parameter(s) and no values were bound")
            return None, None
        if table.num_columns != expected:
            raise InvalidQueryError(
                f"the statement has {expected} parameter(s), {table.num_columns} were bound"
            )
        return rows, table

    # -- actions -------------------------------------------------------------------------------------------

    _ACTIONS = {
        "CreatePreparedStatement": "Prepare a SQL query; returns its handle and schemas",
        "ClosePreparedStatement": "Forget a prepared statement",
        "CancelFlightInfo": "Stop a running query",
        "CancelQuery": "Stop a running query (deprecated form)",
        "SetSessionOptions": "Set session options: catalog, schema, dialect",
        "GetSessionOptions": "Get session options",
        "CloseSession": "End the session",
        "RenewFlightEndpoint": "Keep a ticket alive",
    }

    def list_actions(self, context):
        """The actions this server implements (the administration actions to admins only)."""
        with translate():
            principal = self._caller(context).principal
            return list(self._ACTIONS.items()) + listed_actions(self.administration, principal)

    def do_action(self, context, action):
        """Dispatch a Flight SQL, Flight session/cancel or administration action."""
        with translate():
            identity = self._caller(context)
            if action.type.startswith(ADMIN_PREFIX):
                body = action.body.to_pybytes() if action.body is not None else b""
                answer = run_administration(self.administration, action.type, body, identity.principal)
                return [flight.Result(pa.py_buffer(answer))]
            handler = getattr(self, "_action_" + action.type, None)
            if handler is None:
                if action.type in ("BeginTransaction", "EndTransaction", "BeginSavepoint", "EndSavepoint"):
                    raise UnsupportedError(_NO_TRANSACTIONS)
                if action.type == "CreatePreparedSubstraitPlan":
                    raise UnsupportedError("Substrait plans are not supported: send SQL")
                raise UnsupportedError(f"unknown action {action.type!r}")
            body = action.body.to_pybytes() if action.body is not None else b""
            return [flight.Result(pa.py_buffer(r)) for r in handler(context, body)]

    def _action_CreatePreparedStatement(self, context, body):  # noqa: N802 - Flight action name
        request = protocol.unpack_as(body, pb.ActionCreatePreparedStatementRequest)
        self._reject_transaction(request)
        session = self._session(context)
        prepared = self._plan(context, session, request.query)
        statement = PreparedStatement(b"", session.key, prepared.plan, prepared.dataset_schema,
                                      prepared.parameter_schema, plan_timings=dict(prepared.timings_ms),
                                      origin=self._origin(session, request.query), prepaid=prepared.prepaid)
        handle = statement.handle = self._sign_prepared(statement)
        self.prepared.put(handle, statement, owner=session.key)
        result = pb.ActionCreatePreparedStatementResult(
            prepared_statement_handle=handle,
            dataset_schema=prepared.dataset_schema.serialize().to_pybytes(),
            parameter_schema=prepared.parameter_schema.serialize().to_pybytes(),
            is_update=False,
        )
        return [protocol.pack(result)]

    def _action_ClosePreparedStatement(self, context, body):  # noqa: N802
        request = protocol.unpack_as(body, pb.ActionClosePreparedStatementRequest)
        self.prepared.pop(request.prepared_statement_handle)
        return []

    def _cancel_info(self, context, info_bytes: bytes) -> int:
        try:
            info = flight.FlightInfo.deserialize(info_bytes)
        except Exception as exc:
            raise InvalidQueryError("malformed FlightInfo in cancel request") from exc
        keys = []
        for endpoint in info.endpoints:
            cmd = protocol.unpack_any(endpoint.ticket.ticket)
            if isinstance(cmd, pb.TicketStatementQuery):
                keys.append(cmd.statement_handle)
        cancelled = [self.service.cancel(key) for key in keys]  # each of them, not up to the first
        if not any(cancelled):
            # Not running here: maybe on another replica. Only tickets of this catalog, issued to the caller.
            cancelled.append(self.service.cancel_elsewhere([k for k in keys if self._caller_owns(context, k)]))
        return _CANCELLED if any(cancelled) else _NOT_CANCELLABLE

    def _caller_owns(self, context, handle: bytes) -> bool:
        """Whether ``handle`` is a live ticket of this catalog issued to the caller."""
        try:
            claims = self.signer.open(TICKET, handle)
            self._check_owner(self._caller(context).principal, str(claims.get("user")), "ticket")
        except GatewayError:
            return False
        return True

    def _action_CancelFlightInfo(self, context, body):  # noqa: N802
        request = protocol.parse(fpb.CancelFlightInfoRequest, body)
        return [fpb.CancelFlightInfoResult(status=self._cancel_info(context, request.info)).SerializeToString()]

    def _action_CancelQuery(self, context, body):  # noqa: N802
        request = protocol.unpack_as(body, pb.ActionCancelQueryRequest)
        return [protocol.pack(pb.ActionCancelQueryResult(result=self._cancel_info(context, request.info)))]

    def _action_RenewFlightEndpoint(self, context, body):  # noqa: N802
        # A ticket is signed with its expiry: renewing signs it again with a later one.
        try:
            endpoint = flight.FlightEndpoint.deserialize(body) if body else None
        except pa.ArrowException:
            endpoint = None
        if endpoint is None:
            raise InvalidQueryError("RenewFlightEndpoint needs a FlightEndpoint (its serialized message) as body")
        cmd = protocol.unpack_any(endpoint.ticket.ticket)
        if not isinstance(cmd, pb.TicketStatementQuery):
            return [endpoint.serialize()]
        claims = self.signer.open(TICKET, cmd.statement_handle)
        self._check_owner(self._session(context, options=False).principal, str(claims.get("user")), "ticket")
        claims["exp"] = time.time() + self.handle_ttl
        handle = self.signer.sign(TICKET, claims)
        renewed = flight.FlightEndpoint(protocol.pack(pb.TicketStatementQuery(statement_handle=handle)),
                                        endpoint.locations, expiration_time=_timestamp(claims["exp"]))
        return [renewed.serialize()]

    def _action_SetSessionOptions(self, context, body):  # noqa: N802
        request = protocol.parse(fpb.SetSessionOptionsRequest, body)
        session = self._session(context)
        result = fpb.SetSessionOptionsResult()
        for name, value in request.session_options.items():
            kind = value.WhichOneof("option_value")
            if name not in KNOWN_OPTIONS:
                result.errors[name].value = _INVALID_NAME
                continue
            if kind is None:
                session.options.pop(name, None)
                continue
            if kind != "string_value" or not self._valid_option(session, name, value.string_value):
                result.errors[name].value = _INVALID_VALUE
                continue
            session.options[name] = value.string_value
        self.sessions.save(session)
        cookie_key = session_cookie_given(context)
        if cookie_key is not None:  # the connection's session keeps them too, for clients that drop cookies
            carried = self.sessions.get(cookie_key, session.principal)
            carried.options = dict(session.options)
            self.sessions.save(carried)
        return [result.SerializeToString()]

    def _valid_option(self, session: Session, name: str, value: str) -> bool:
        if name == "catalog":
            return value in self.service.catalogs(session.principal)
        if name == "dialect":
            return valid_dialect(value)
        return True

    def _action_GetSessionOptions(self, context, body):  # noqa: N802
        session = self._session(context)
        result = fpb.GetSessionOptionsResult()
        catalog = session.catalog or self.service.default_catalog(session.principal)
        if catalog:
            result.session_options["catalog"].string_value = catalog
        schema = session.options.get("schema")
        if not isinstance(schema, str) and catalog:
            schema = self._default_schema(catalog)
        if isinstance(schema, str):
            result.session_options["schema"].string_value = schema
        if session.dialect:
            result.session_options["dialect"].string_value = session.dialect
        return [result.SerializeToString()]

    def _default_schema(self, catalog: str) -> str | None:
        try:
            return self.service.sources.backend(catalog).default_schema
        except GatewayError:
            return None

    def _action_CloseSession(self, context, body):  # noqa: N802
        identity = self._caller(context)
        self.sessions.close(identity.session_key)
        return [fpb.CloseSessionResult(status=1).SerializeToString()]


_EXPIRATION_TYPE = pa.timestamp("ns", "UTC")


def _timestamp(epoch_seconds: float | None) -> pa.TimestampScalar | None:
    """An endpoint's expiration time (None: none announced).

    Made from an integer in the type pyarrow converts it to anyway: building it from a ``datetime`` cost several
    times more, on every GetFlightInfo.
    """
    if epoch_seconds is None:
        return None
    return pa.scalar(int(epoch_seconds * 1e9), type=_EXPIRATION_TYPE)


def _credit_claim(claims: dict[str, Any]) -> str | None:
    """The prepaid rate credit a signed handle carries (its planning's token, spent by its first run), if any."""
    credit = claims.get("cr")
    return credit if isinstance(credit, str) and len(credit) <= 64 else None


def _framed(data: bytes) -> bytes:
    """``data`` preceded by its length (4 bytes, big-endian), so that several travel as one byte string."""
    return len(data).to_bytes(4, "big") + data


def _unframed(data: bytes) -> tuple[bytes, ...]:
    """The byte strings ``_framed`` joined."""
    parts, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        parts.append(data[offset + 4:offset + 4 + size])
        offset += 4 + size
    if offset != len(data) or not parts:
        raise InvalidQueryError("not a valid ticket: its upstream endpoints are malformed")
    return tuple(parts)


def parameter_rows(batch_or_table: pa.Table | None) -> list[tuple[Any, ...]] | None:
    """Bound parameter rows as Python tuples; dense-union columns (flightsql-dbapi) are unwrapped."""
    if batch_or_table is None or batch_or_table.num_columns == 0 or batch_or_table.num_rows == 0:
        return None
    columns = [col.to_pylist() for col in batch_or_table.columns]
    return [tuple(row) for row in zip(*columns, strict=True)]
