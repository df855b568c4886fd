"""The metadata commands (catalogs, schemas, tables, keys) answered from the sources' backends.

Every command shows only what the caller's principal may see: the catalogs ``AccessPolicy.visible_sources``
lets through, and the tables ``AccessPolicy.may_read`` allows (``server/query/access.py``, the same policy the
query path asks).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import pyarrow as pa

from nexus_flight.backends.base import DATABASE_TYPE_NAME, FRACTIONAL_DIGITS
from nexus_flight.backends.type_names import sql_type_name
from nexus_flight.core.errors import SOURCE_FAILURES, GatewayError, UnsupportedError
from nexus_flight.core.identity_memo import IdentityMemo
from nexus_flight.core.plan import TableRef
from nexus_flight.server.flight import metadata
from nexus_flight.server.flight.protocol import sql as pb
from nexus_flight.server.flight.sql_info import SCHEMA as SQL_INFO_SCHEMA
from nexus_flight.server.flight.xdbc import SCHEMA as XDBC_SCHEMA
from nexus_flight.server.query.access import AccessPolicy, AllowAll
from nexus_flight.server.query.directory import SourceDirectory
from nexus_flight.server.query.principal import Principal

log = logging.getLogger("nexus_flight.metadata")


def _optional(cmd, name: str) -> str | None:
    return getattr(cmd, name) if cmd.HasField(name) else None


def _type_metadata(field: pa.Field) -> tuple[dict[bytes, bytes], dict[str, str]]:
    """The metadata the backend set on a column (kept) and what JDBC and ODBC read about its type.

    The type name is the database's own (``bigint``, ``numeric(15,2)``) where the backend knows it, else DuckDB's
    name of the Arrow type; other metadata the backend set (a lake table's partition keys) stays.
    """
    own = dict(field.metadata or {})
    database_type = own.pop(DATABASE_TYPE_NAME, None)
    digits = own.pop(FRACTIONAL_DIGITS, None)
    type_name = database_type.decode() if database_type else sql_type_name(field.type)
    meta = {
        "ARROW:FLIGHT:SQL:TYPE_NAME": type_name,
        "ARROW:FLIGHT:SQL:IS_READ_ONLY": "1",
        "ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT": "0",
        "ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE": "1" if pa.types.is_string(field.type) else "0",
        "ARROW:FLIGHT:SQL:IS_SEARCHABLE": "1",
    }
    if pa.types.is_decimal(field.type):
        meta["ARROW:FLIGHT:SQL:PRECISION"] = str(field.type.precision)
        meta["ARROW:FLIGHT:SQL:SCALE"] = str(field.type.scale)
    elif (length := _declared_length(type_name)) is not None:
        meta["ARROW:FLIGHT:SQL:PRECISION"] = str(length)  # varchar(44): the column size in characters
    elif digits is not None and (pa.types.is_timestamp(field.type) or pa.types.is_time(field.type)):
        # JDBC's DECIMAL_DIGITS, and the COLUMN_SIZE of the text '2024-01-02 03:04:05.123' ('03:04:05.123')
        fraction = int(digits)
        whole = 19 if pa.types.is_timestamp(field.type) else 8
        meta["ARROW:FLIGHT:SQL:SCALE"] = str(fraction)
        meta["ARROW:FLIGHT:SQL:PRECISION"] = str(whole + (fraction + 1 if fraction else 0))
    return own, meta


def _encoded(meta: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in meta.items()}


def column_metadata(catalog: str, db_schema: str, table: str, field: pa.Field) -> dict[bytes, bytes]:
    """The ARROW:FLIGHT:SQL:* keys JDBC and ODBC read for columns (both schema-name spellings are in use)."""
    own, meta = _type_metadata(field)
    location = {
        "ARROW:FLIGHT:SQL:CATALOG_NAME": catalog,
        "ARROW:FLIGHT:SQL:DB_SCHEMA_NAME": db_schema,
        "ARROW:FLIGHT:SQL:SCHEMA_NAME": db_schema,
        "ARROW:FLIGHT:SQL:TABLE_NAME": table,
    }
    return {**own, **_encoded({**location, **meta})}


def result_schema(schema: pa.Schema, catalog: str) -> pa.Schema:
    """A query's result schema with the column metadata JDBC reads for ``ResultSetMetaData``.

    Without ``PRECISION``/``SCALE`` the JDBC driver reports 0 for both on every DECIMAL result column, and BI tools
    then format decimals as integers. The stream carries the same schema, so clients see one schema throughout.
    """
    return _RESULT_SCHEMAS.get(schema, lambda: _with_column_metadata(schema, catalog), extra=catalog)


def _with_column_metadata(schema: pa.Schema, catalog: str) -> pa.Schema:
    fields = []
    for field in schema:
        own, meta = _type_metadata(field)
        fields.append(field.with_metadata({**own, **_encoded({"ARROW:FLIGHT:SQL:CATALOG_NAME": catalog, **meta})}))
    return pa.schema(fields, metadata=schema.metadata)


#: A plan keeps its schema object: the metadata is added once per schema and catalog.
_RESULT_SCHEMAS: IdentityMemo[pa.Schema] = IdentityMemo()


_LENGTH = re.compile(r"(?:char|character|varchar|character varying|binary|varbinary|bit)\s*\((\d+)\)", re.IGNORECASE)


def _declared_length(type_name: str) -> int | None:
    match = _LENGTH.fullmatch(type_name.strip())
    return int(match.group(1)) if match else None


class CatalogBrowser:
    """Builds the metadata command results; every source is one catalog."""

    def __init__(self, sources: SourceDirectory, access: AccessPolicy | None = None) -> None:
        self.sources = sources
        self.access = access or AllowAll()

    def _catalogs(self, catalog: str | None, principal: Principal) -> list[str]:
        names = self.access.visible_sources(principal, self.sources.names())
        if catalog is None:
            return names
        return [n for n in names if n == catalog]  # "" means "without a catalog": none here

    def schema_of(self, cmd) -> pa.Schema:
        """The fixed result schema of a metadata command."""
        if isinstance(cmd, pb.CommandGetSqlInfo):
            return SQL_INFO_SCHEMA
        if isinstance(cmd, pb.CommandGetXdbcTypeInfo):
            return XDBC_SCHEMA
        if isinstance(cmd, pb.CommandGetCatalogs):
            return metadata.CATALOGS
        if isinstance(cmd, pb.CommandGetDbSchemas):
            return metadata.DB_SCHEMAS
        if isinstance(cmd, pb.CommandGetTables):
            return metadata.TABLES_WITH_SCHEMA if cmd.include_schema else metadata.TABLES
        if isinstance(cmd, pb.CommandGetTableTypes):
            return metadata.TABLE_TYPES
        if isinstance(cmd, pb.CommandGetPrimaryKeys):
            return metadata.PRIMARY_KEYS
        if isinstance(cmd, (pb.CommandGetExportedKeys, pb.CommandGetImportedKeys, pb.CommandGetCrossReference)):
            return metadata.FOREIGN_KEYS
        raise UnsupportedError(f"{cmd.DESCRIPTOR.name} is not supported by this server")

    def table_of(self, cmd, principal: Principal) -> pa.Table:
        """The result table of a metadata command, as ``principal`` may see it."""
        schema = self.schema_of(cmd)
        if isinstance(cmd, pb.CommandGetCatalogs):
            return metadata.table(schema, [(n,) for n in self._catalogs(None, principal)])
        if isinstance(cmd, pb.CommandGetTableTypes):
            return metadata.table(schema, [(t,) for t in metadata.TABLE_TYPE_NAMES])
        if isinstance(cmd, pb.CommandGetDbSchemas):
            return metadata.table(schema, self._schema_rows(cmd, principal))
        if isinstance(cmd, pb.CommandGetTables):
            return metadata.table(schema, self._table_rows(cmd, principal))
        if isinstance(cmd, pb.CommandGetPrimaryKeys):
            return metadata.table(schema, self._primary_key_rows(cmd, principal))
        return metadata.table(schema, self._foreign_key_rows(cmd, principal))

    def _schema_rows(self, cmd, principal: Principal) -> list[tuple]:
        pattern = metadata.like_to_regex(_optional(cmd, "db_schema_filter_pattern"))
        rows = []
        for catalog in self._catalogs(_optional(cmd, "catalog"), principal):
            for db_schema in self._safely(catalog, lambda b: b.list_schemas(), []):
                if metadata.matches(pattern, db_schema):
                    rows.append((catalog, db_schema))
        return sorted(rows)

    def _table_rows(self, cmd, principal: Principal) -> list[tuple]:
        schema_pattern = metadata.like_to_regex(_optional(cmd, "db_schema_filter_pattern"))
        table_pattern = metadata.like_to_regex(_optional(cmd, "table_name_filter_pattern"))
        types = set(cmd.table_types)
        rows = []
        for catalog in self._catalogs(_optional(cmd, "catalog"), principal):
            backend_tables = self._safely(catalog, lambda b: b.list_tables(), [])
            for info in backend_tables:
                wanted = metadata.matches(schema_pattern, info.db_schema) and metadata.matches(table_pattern, info.name)
                if not wanted:
                    continue
                if types and info.table_type not in types:
                    continue
                if not self.access.may_read(principal, catalog, [TableRef(info.name, info.db_schema)]):
                    continue
                row = (catalog, info.db_schema, info.name, info.table_type)
                if cmd.include_schema:
                    columns = self.access.readable_columns(principal, catalog, info.db_schema, info.name)
                    row += (self._table_schema_bytes(catalog, info.db_schema, info.name, columns),)
                rows.append(row)
        return sorted(rows, key=lambda r: (r[0], r[1], r[2], r[3]))

    def _table_schema_bytes(self, catalog: str, db_schema: str, table: str,
                            columns: frozenset[str] | None = None) -> bytes:
        """A table's schema as GetTables sends it: only the ``columns`` the caller may read (None: all).

        An object the source cannot describe for its login (a view of a dropped table) is listed with no
        columns: one such view must not fail the listing of every other table.
        """
        try:
            schema = self.sources.backend(catalog).table_schema(db_schema, table)
        except SOURCE_FAILURES:
            raise  # the source, not this object (as the schema snapshot tells them apart)
        except GatewayError as exc:
            log.info("%s.%s.%s is listed without columns: %s", catalog, db_schema, table, exc.message)
            schema = pa.schema([])
        annotated = pa.schema(
            [f.with_metadata(column_metadata(catalog, db_schema, table, f)) for f in schema
             if columns is None or self.access.identifiers(catalog).key(f.name) in columns]
        )
        return annotated.serialize().to_pybytes()

    def _primary_key_rows(self, cmd, principal: Principal) -> list[tuple]:
        rows = []
        for catalog in self._catalogs(_optional(cmd, "catalog"), principal):
            keys = self._safely(catalog, lambda b: b.primary_keys(_optional(cmd, "db_schema"), cmd.table), [])
            rows += metadata.primary_key_rows(catalog, keys)
        return rows

    def _foreign_key_rows(self, cmd, principal: Principal) -> list[tuple]:
        rows = []
        if isinstance(cmd, pb.CommandGetCrossReference):
            pk_schema, fk_schema = _optional(cmd, "pk_db_schema"), _optional(cmd, "fk_db_schema")
            for catalog in self._catalogs(_optional(cmd, "fk_catalog"), principal):
                if _optional(cmd, "pk_catalog") not in (None, catalog):
                    continue  # a key never references another source
                keys = self._safely(catalog, lambda b: b.foreign_keys(fk_schema, cmd.fk_table), [])
                keys = [k for k in keys if k.pk.table == cmd.pk_table and k.fk.table == cmd.fk_table
                        and pk_schema in (None, k.pk.db_schema) and fk_schema in (None, k.fk.db_schema)]
                rows += metadata.foreign_key_rows(catalog, catalog, keys, order_by_fk=False)
            return rows
        exported = isinstance(cmd, pb.CommandGetExportedKeys)
        db_schema = _optional(cmd, "db_schema")
        for catalog in self._catalogs(_optional(cmd, "catalog"), principal):
            keys = self._safely(catalog, lambda b: b.foreign_keys(db_schema, cmd.table), [])
            # A backend returns the keys with the table on either side: only those of this table (in this schema:
            # ``bi.customers`` is not ``sales.customers``) on the side asked for are its keys.
            side = (lambda k: k.pk) if exported else (lambda k: k.fk)
            keys = [k for k in keys if side(k).table == cmd.table and db_schema in (None, side(k).db_schema)]
            rows += metadata.foreign_key_rows(catalog, catalog, keys, order_by_fk=exported)
        return rows

    def xdbc_type_names(self, catalog: str | None, principal: Principal) -> Mapping[str, int] | None:
        """The type names of a catalog's database for GetXdbcTypeInfo (None: DuckDB's, the default)."""
        if catalog is None or catalog not in self._catalogs(None, principal):
            return None
        return self._safely(catalog, lambda b: b.xdbc_type_names, None)

    def _safely(self, catalog: str, call, fallback):
        """Browsing all catalogs must not fail because one source is down: log it and show nothing for it."""
        try:
            return call(self.sources.backend(catalog))
        except GatewayError as exc:
            log.warning("catalog %s unavailable for metadata: %s", catalog, exc.message)
            return fallback
