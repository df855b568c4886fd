"""The Flight SQL and Flight session/cancel protobuf messages, built at import from a compact field table.

Building the descriptors here (instead of shipping protoc output) keeps the wire format readable in one place,
needs no code generator, and lives in a private descriptor pool so it never clashes with another copy of the same
messages loaded in the process (client libraries ship their own). Enums travel as int32: same wire encoding.

Type URLs are emitted exactly as ``type.googleapis.com/arrow.flight.protocol.sql.<Name>`` (Rust clients compare
the whole string) and accepted with any prefix (matching the part after the last ``/``).
"""

from __future__ import annotations

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message, message_factory

from nexus_flight.core.errors import InvalidQueryError, UnsupportedError

SQL_PACKAGE = "arrow.flight.protocol.sql"
FLIGHT_PACKAGE = "arrow.flight.protocol"
TYPE_URL_PREFIX = "type.googleapis.com/"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "bool": _F.TYPE_BOOL,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "double": _F.TYPE_DOUBLE,
    "sfixed64": _F.TYPE_SFIXED64,
}

# name: [(field, number, type, label)], label one of "", "optional", "repeated", "oneof:<name>", "map:<value type>"
_SQL_MESSAGES: dict[str, list[tuple[str, int, str, str]]] = {
    "CommandGetSqlInfo": [("info", 1, "uint32", "repeated")],
    "CommandGetXdbcTypeInfo": [("data_type", 1, "int32", "optional")],
    "CommandGetCatalogs": [],
    "CommandGetDbSchemas": [
        ("catalog", 1, "string", "optional"),
        ("db_schema_filter_pattern", 2, "string", "optional"),
    ],
    "CommandGetTables": [
        ("catalog", 1, "string", "optional"),
        ("db_schema_filter_pattern", 2, "string", "optional"),
        ("table_name_filter_pattern", 3, "string", "optional"),
        ("table_types", 4, "string", "repeated"),
        ("include_schema", 5, "bool", ""),
    ],
    "CommandGetTableTypes": [],
    "CommandGetPrimaryKeys": [
        ("catalog", 1, "string", "optional"),
        ("db_schema", 2, "string", "optional"),
        ("table", 3, "string", ""),
    ],
    "CommandGetExportedKeys": [
        ("catalog", 1, "string", "optional"),
        ("db_schema", 2, "string", "optional"),
        ("table", 3, "string", ""),
    ],
    "CommandGetImportedKeys": [
        ("catalog", 1, "string", "optional"),
        ("db_schema", 2, "string", "optional"),
        ("table", 3, "string", ""),
    ],
    "CommandGetCrossReference": [
        ("pk_catalog", 1, "string", "optional"),
        ("pk_db_schema", 2, "string", "optional"),
        ("pk_table", 3, "string", ""),
        ("fk_catalog", 4, "string", "optional"),
        ("fk_db_schema", 5, "string", "optional"),
        ("fk_table", 6, "string", ""),
    ],
    "SubstraitPlan": [("plan", 1, "bytes", ""), ("version", 2, "string", "")],
    "ActionCreatePreparedStatementRequest": [("query", 1, "string", ""), ("transaction_id", 2, "bytes", "optional")],
    "ActionCreatePreparedSubstraitPlanRequest": [
        ("plan", 1, ".arrow.flight.protocol.sql.SubstraitPlan", ""),
        ("transaction_id", 2, "bytes", "optional"),
    ],
    "ActionCreatePreparedStatementResult": [
        ("prepared_statement_handle", 1, "bytes", ""),
        ("dataset_schema", 2, "bytes", ""),
        ("parameter_schema", 3, "bytes", ""),
        ("is_update", 4, "bool", "optional"),
    ],
    "ActionClosePreparedStatementRequest": [("prepared_statement_handle", 1, "bytes", "")],
    "ActionBeginTransactionRequest": [],
    "ActionBeginSavepointRequest": [("transaction_id", 1, "bytes", ""), ("name", 2, "string", "")],
    "ActionBeginTransactionResult": [("transaction_id", 1, "bytes", "")],
    "ActionBeginSavepointResult": [("savepoint_id", 1, "bytes", "")],
    "ActionEndTransactionRequest": [("transaction_id", 1, "bytes", ""), ("action", 2, "int32", "")],
    "ActionEndSavepointRequest": [("savepoint_id", 1, "bytes", ""), ("action", 2, "int32", "")],
    "CommandStatementQuery": [("query", 1, "string", ""), ("transaction_id", 2, "bytes", "optional")],
    "CommandStatementSubstraitPlan": [
        ("plan", 1, ".arrow.flight.protocol.sql.SubstraitPlan", ""),
        ("transaction_id", 2, "bytes", "optional"),
    ],
    "TicketStatementQuery": [("statement_handle", 1, "bytes", "")],
    "CommandPreparedStatementQuery": [("prepared_statement_handle", 1, "bytes", "")],
    "CommandStatementUpdate": [("query", 1, "string", ""), ("transaction_id", 2, "bytes", "optional")],
    "CommandPreparedStatementUpdate": [("prepared_statement_handle", 1, "bytes", "")],
    "TableDefinitionOptions": [("if_not_exist", 1, "int32", ""), ("if_exists", 2, "int32", "")],
    "CommandStatementIngest": [
        ("table_definition_options", 1, ".arrow.flight.protocol.sql.TableDefinitionOptions", ""),
        ("table", 2, "string", ""),
        ("schema", 3, "string", "optional"),
        ("catalog", 4, "string", "optional"),
        ("temporary", 5, "bool", ""),
        ("transaction_id", 6, "bytes", "optional"),
    ],
    "DoPutUpdateResult": [("record_count", 1, "int64", "")],
    "DoPutPreparedStatementResult": [("prepared_statement_handle", 1, "bytes", "optional")],
    "ActionCancelQueryRequest": [("info", 1, "bytes", "")],
    "ActionCancelQueryResult": [("result", 1, "int32", "")],
}

_FLIGHT_MESSAGES: dict[str, list[tuple[str, int, str, str]]] = {
    "SessionOptionValue.StringListValue": [("values", 1, "string", "repeated")],
    "SessionOptionValue": [
        ("string_value", 1, "string", "oneof:option_value"),
        ("bool_value", 2, "bool", "oneof:option_value"),
        ("int64_value", 3, "sfixed64", "oneof:option_value"),
        ("double_value", 4, "double", "oneof:option_value"),
        ("string_list_value", 5, ".arrow.flight.protocol.SessionOptionValue.StringListValue", "oneof:option_value"),
    ],
    "SetSessionOptionsRequest": [("session_options", 1, ".arrow.flight.protocol.SessionOptionValue", "map")],
    "SetSessionOptionsResult.Error": [("value", 1, "int32", "")],
    "SetSessionOptionsResult": [("errors", 1, ".arrow.flight.protocol.SetSessionOptionsResult.Error", "map")],
    "GetSessionOptionsRequest": [],
    "GetSessionOptionsResult": [("session_options", 1, ".arrow.flight.protocol.SessionOptionValue", "map")],
    "CloseSessionRequest": [],
    "CloseSessionResult": [("status", 1, "int32", "")],
    # FlightInfo is an embedded message; as bytes it has the same wire form and pyarrow parses it for us.
    "CancelFlightInfoRequest": [("info", 1, "bytes", "")],
    "CancelFlightInfoResult": [("status", 1, "int32", "")],
}


def _snake_to_camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _add_field(msg: descriptor_pb2.DescriptorProto, name: str, number: int, ftype: str, label: str) -> None:
    field = msg.field.add(name=name, number=number, json_name=name)
    if ftype.startswith("."):
        field.type = _F.TYPE_MESSAGE
        field.type_name = ftype
    else:
        field.type = _SCALARS[ftype]
    field.label = _F.LABEL_REPEATED if label in ("repeated", "map") else _F.LABEL_OPTIONAL
    if label == "optional":
        # proto3 'optional': a synthetic oneof gives the field presence (HasField).
        field.proto3_optional = True
        field.oneof_index = len(msg.oneof_decl)
        msg.oneof_decl.add(name=f"_{name}")
    elif label.startswith("oneof:"):
        oneof = label.split(":", 1)[1]
        names = [o.name for o in msg.oneof_decl]
        if oneof not in names:
            msg.oneof_decl.add(name=oneof)
            names.append(oneof)
        field.oneof_index = names.index(oneof)
    elif label == "map":
        entry = msg.nested_type.add(name=_snake_to_camel(name) + "Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL, json_name="key")
        value = entry.field.add(name="value", number=2, label=_F.LABEL_OPTIONAL, json_name="value")
        value.type = _F.TYPE_MESSAGE
        value.type_name = ftype
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{msg_full_name(msg)}.{entry.name}"


_names: dict[int, str] = {}


def msg_full_name(msg: descriptor_pb2.DescriptorProto) -> str:
    """The full name recorded for a DescriptorProto being built."""
    return _names[id(msg)]


def _build_file(filename: str, package: str, spec: dict[str, list[tuple[str, int, str, str]]]):
    fdp = descriptor_pb2.FileDescriptorProto(name=filename, package=package, syntax="proto3")
    built: dict[str, descriptor_pb2.DescriptorProto] = {}
    for dotted, fields in spec.items():
        parts = dotted.split(".")
        if len(parts) == 1:
            msg = built.get(dotted) or fdp.message_type.add(name=parts[0])
        else:
            parent = built.get(parts[0])
            if parent is None:
                parent = fdp.message_type.add(name=parts[0])
                built[parts[0]] = parent
                _names[id(parent)] = f"{package}.{parts[0]}"
            msg = parent.nested_type.add(name=parts[1])
        built[dotted] = msg
        _names[id(msg)] = f"{package}.{dotted}"
        for name, number, ftype, label in fields:
            _add_field(msg, name, number, ftype, label)
    return fdp


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_build_file("nexus_flight/flight_session.proto", FLIGHT_PACKAGE, _FLIGHT_MESSAGES))
_POOL.Add(_build_file("nexus_flight/flight_sql.proto", SQL_PACKAGE, _SQL_MESSAGES))


def _message_class(full_name: str) -> type[message.Message]:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


class _Namespace:
    """Attribute access to the message classes of one package: ``sql.CommandStatementQuery``."""

    def __init__(self, package: str, names) -> None:
        for name in names:
            if "." not in name:
                setattr(self, name, _message_class(f"{package}.{name}"))


sql = _Namespace(SQL_PACKAGE, _SQL_MESSAGES)
flight = _Namespace(FLIGHT_PACKAGE, _FLIGHT_MESSAGES)

_SQL_BY_NAME = {name: getattr(sql, name) for name in _SQL_MESSAGES if "." not in name}


def pack(msg: message.Message) -> bytes:
    """Serialize ``msg`` wrapped in ``google.protobuf.Any`` with the canonical type URL."""
    wrapper = any_pb2.Any()
    wrapper.type_url = TYPE_URL_PREFIX + msg.DESCRIPTOR.full_name
    wrapper.value = msg.SerializeToString()
    return wrapper.SerializeToString()


def unpack_any(data: bytes) -> message.Message:
    """Decode an Any-wrapped Flight SQL message of any known type.

    Raises:
        InvalidQueryError: the bytes are not an Any, or the payload does not decode.
        UnsupportedError: the type is not a Flight SQL message this server knows.

    """
    wrapper = any_pb2.Any()
    try:
        wrapper.ParseFromString(data)
    except message.DecodeError as exc:
        raise InvalidQueryError("malformed request: not a protobuf Any-wrapped Flight SQL command") from exc
    if not wrapper.type_url:
        raise InvalidQueryError("malformed request: missing Flight SQL command type")
    name = wrapper.type_url.rsplit("/", 1)[-1]
    if not name.startswith(SQL_PACKAGE + "."):
        raise UnsupportedError(f"unknown command type {wrapper.type_url!r}: this server speaks Flight SQL")
    cls = _SQL_BY_NAME.get(name[len(SQL_PACKAGE) + 1 :])
    if cls is None:
        raise UnsupportedError(f"unsupported Flight SQL command {name!r}")
    return parse(cls, wrapper.value)


def unpack_as(data: bytes, cls: type[message.Message]) -> message.Message:
    """Decode an Any-wrapped message that must be of type ``cls``.

    Raises:
        InvalidQueryError: wrong type or undecodable payload.

    """
    msg = unpack_any(data)
    if not isinstance(msg, cls):
        raise InvalidQueryError(f"expected {cls.DESCRIPTOR.name}, got {msg.DESCRIPTOR.name}")
    return msg


def parse(cls: type[message.Message], data: bytes) -> message.Message:
    """Decode a raw (not Any-wrapped) message.

    Raises:
        InvalidQueryError: the bytes do not decode as ``cls``.

    """
    msg = cls()
    try:
        msg.ParseFromString(data)
    except message.DecodeError as exc:
        raise InvalidQueryError(f"malformed {cls.DESCRIPTOR.name} message") from exc
    return msg
