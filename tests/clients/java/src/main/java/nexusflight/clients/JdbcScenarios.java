package nexusflight.clients;

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.ParameterMetaData;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Time;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TimeZone;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Drives the Arrow Flight SQL JDBC driver through what BI tools do with a connection, one JSON line per scenario.
 *
 * <p>Usage: {@code JdbcScenarios SCENARIOS}. Lines are tab-separated: name, kind, arguments (the kinds are listed in
 * tests/clients/scenarios.py). Every answer is printed with the JDBC types and the values the typed getters return,
 * so the tests can compare them with the same query through ADBC.
 */
public final class JdbcScenarios {
  private static final String NULL = "\\N";
  private Connection connection;

  public static void main(String[] argv) throws Exception {
    JdbcScenarios runner = new JdbcScenarios();
    for (String line : Files.readAllLines(Path.of(argv[0]), StandardCharsets.UTF_8)) {
      if (line.isBlank()) {
        continue;
      }
      String[] fields = line.split("\t", -1);
      List<String> args = Arrays.asList(fields).subList(2, fields.length);
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("name", fields[0]);
      long started = System.nanoTime();
      try {
        out.put("result", runner.run(fields[1], args));
        out.put("ok", true);
      } catch (SQLException e) {
        out.put("ok", false);
        out.put("error", error(e));
      } catch (Exception e) {
        out.put("ok", false);
        out.put("error", Map.of("class", e.getClass().getName(), "message", String.valueOf(e.getMessage()), "at", String.valueOf(java.util.Arrays.asList(e.getStackTrace()).subList(0, Math.min(6, e.getStackTrace().length)))));
      }
      out.put("millis", (System.nanoTime() - started) / 1_000_000);
      System.out.println(Json.of(out));
      System.out.flush();
    }
    System.exit(0); // gRPC's threads would keep the JVM alive
  }

  private static Map<String, Object> error(SQLException e) {
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("class", e.getClass().getName());
    out.put("message", e.getMessage());
    out.put("sqlstate", e.getSQLState());
    Throwable root = e;
    while (root.getCause() != null && root.getCause() != root) {
      root = root.getCause();
    }
    out.put("cause", root.getClass().getName() + ": " + root.getMessage());
    return out;
  }

  private static String optional(List<String> args, int i) {
    return i < args.size() && !args.get(i).equals(NULL) ? args.get(i) : null;
  }

  private Object run(String kind, List<String> args) throws Exception {
    DatabaseMetaData meta = kind.equals("connect") ? null : connection.getMetaData();
    switch (kind) {
      case "connect": {
        Properties properties = new Properties();
        for (String pair : args.subList(1, args.size())) {
          int eq = pair.indexOf('=');
          properties.setProperty(pair.substring(0, eq), pair.substring(eq + 1));
        }
        if (connection != null) {
          connection.close();
        }
        connection = DriverManager.getConnection(args.get(0), properties);
        return Map.of("zone", TimeZone.getDefault().getID());
      }
      case "info":
        return info(meta);
      case "query": {
        try (Statement statement = connection.createStatement()) {
          if (optional(args, 1) != null) {
            statement.setMaxRows(Integer.parseInt(args.get(1)));
          }
          if (optional(args, 2) != null) {
            statement.setFetchSize(Integer.parseInt(args.get(2)));
          }
          try (ResultSet rows = statement.executeQuery(args.get(0))) {
            return table(rows);
          }
        }
      }
      case "prepared":
        return prepared(args);
      case "catalogs":
        return table(meta.getCatalogs());
      case "schemas":
        return table(meta.getSchemas(optional(args, 0), optional(args, 1)));
      case "tables": {
        String types = optional(args, 3);
        return table(meta.getTables(optional(args, 0), optional(args, 1), optional(args, 2),
            types == null ? null : types.split(",")));
      }
      case "columns":
        return table(meta.getColumns(optional(args, 0), optional(args, 1), optional(args, 2), optional(args, 3)));
      case "primary_keys":
        return table(meta.getPrimaryKeys(optional(args, 0), optional(args, 1), args.get(2)));
      case "imported_keys":
        return table(meta.getImportedKeys(optional(args, 0), optional(args, 1), args.get(2)));
      case "exported_keys":
        return table(meta.getExportedKeys(optional(args, 0), optional(args, 1), args.get(2)));
      case "cross_reference":
        return table(meta.getCrossReference(optional(args, 0), optional(args, 1), args.get(2), optional(args, 3),
            optional(args, 4), args.get(5)));
      case "type_info":
        return table(meta.getTypeInfo());
      case "table_types":
        return table(meta.getTableTypes());
      case "set_catalog":
        connection.setCatalog(args.get(0));
        return Map.of("catalog", String.valueOf(connection.getCatalog()));
      case "count":
        return count(args);
      case "timeout":
        return timeout(args);
      case "cancel":
        return cancel(args);
      case "pause":
        Thread.sleep(Long.parseLong(args.get(0)));
        return Map.of("paused", true);
      case "update":
        try (Statement statement = connection.createStatement()) {
          return Map.of("updated", statement.executeUpdate(args.get(0)));
        }
      default:
        throw new IllegalArgumentException("unknown scenario kind " + kind);
    }
  }

  private Map<String, Object> info(DatabaseMetaData meta) throws SQLException {
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("productName", meta.getDatabaseProductName());
    out.put("productVersion", meta.getDatabaseProductVersion());
    out.put("driverName", meta.getDriverName());
    out.put("driverVersion", meta.getDriverVersion());
    out.put("identifierQuoteString", meta.getIdentifierQuoteString());
    out.put("supportsTransactions", meta.supportsTransactions());
    out.put("metaIsReadOnly", meta.isReadOnly());
    out.put("connectionIsReadOnly", connection.isReadOnly());
    out.put("catalog", connection.getCatalog());
    out.put("catalogTerm", meta.getCatalogTerm());
    out.put("schemaTerm", meta.getSchemaTerm());
    out.put("searchStringEscape", meta.getSearchStringEscape());
    out.put("sqlKeywords", meta.getSQLKeywords());
    out.put("userName", meta.getUserName());
    out.put("defaultTransactionIsolation", meta.getDefaultTransactionIsolation());
    out.put("nullsAreSortedAtEnd", meta.nullsAreSortedAtEnd());
    out.put("storesLowerCaseIdentifiers", meta.storesLowerCaseIdentifiers());
    out.put("supportsStoredProcedures", meta.supportsStoredProcedures());
    return out;
  }

  private Object prepared(List<String> args) throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(args.get(0))) {
      ParameterMetaData parameterMeta = statement.getParameterMetaData();
      List<Object> parameterTypes = new ArrayList<>();
      for (int i = 1; i <= parameterMeta.getParameterCount(); i++) {
        parameterTypes.add(parameterMeta.getParameterType(i));
      }
      // Each following argument is type:value; the same statement runs once per group split by "|".
      List<Object> runs = new ArrayList<>();
      int index = 1;
      for (String arg : args.subList(1, args.size())) {
        if (arg.equals("|")) {
          runs.add(execute(statement));
          index = 1;
          continue;
        }
        bind(statement, index++, arg);
      }
      runs.add(execute(statement));
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("parameterTypes", parameterTypes);
      out.put("runs", runs);
      return out;
    }
  }

  private static Object execute(PreparedStatement statement) throws SQLException {
    try (ResultSet rows = statement.executeQuery()) {
      return table(rows);
    }
  }

  private static void bind(PreparedStatement statement, int index, String arg) throws SQLException {
    int colon = arg.indexOf(':');
    String type = arg.substring(0, colon);
    String value = arg.substring(colon + 1);
    switch (type) {
      case "null" -> statement.setNull(index, typeCode(value));
      case "long" -> statement.setLong(index, Long.parseLong(value));
      case "int" -> statement.setInt(index, Integer.parseInt(value));
      case "short" -> statement.setShort(index, Short.parseShort(value));
      case "double" -> statement.setDouble(index, Double.parseDouble(value));
      case "float" -> statement.setFloat(index, Float.parseFloat(value));
      case "decimal" -> statement.setBigDecimal(index, new BigDecimal(value));
      case "boolean" -> statement.setBoolean(index, Boolean.parseBoolean(value));
      case "string" -> statement.setString(index, value);
      case "date" -> statement.setDate(index, Date.valueOf(value));
      case "time" -> statement.setTime(index, Time.valueOf(value));
      case "timestamp" -> statement.setTimestamp(index, Timestamp.valueOf(value));
      case "bytes" -> statement.setBytes(index, HexFormat.of().parseHex(value));
      case "object" -> statement.setObject(index, value);
      default -> throw new IllegalArgumentException("unknown parameter type " + type);
    }
  }

  private static int typeCode(String name) {
    try {
      return Types.class.getField(name).getInt(null);
    } catch (ReflectiveOperationException e) {
      throw new IllegalArgumentException("unknown java.sql.Types name " + name, e);
    }
  }

  /** The metadata of each column and every row, each cell as its typed getter returns it. */
  private static Map<String, Object> table(ResultSet rows) throws SQLException {
    try (rows) {
      ResultSetMetaData meta = rows.getMetaData();
      List<Object> columns = new ArrayList<>();
      for (int i = 1; i <= meta.getColumnCount(); i++) {
        Map<String, Object> column = new LinkedHashMap<>();
        column.put("name", meta.getColumnName(i));
        column.put("label", meta.getColumnLabel(i));
        column.put("type", meta.getColumnType(i));
        column.put("typeName", meta.getColumnTypeName(i));
        column.put("precision", meta.getPrecision(i));
        column.put("scale", meta.getScale(i));
        column.put("nullable", meta.isNullable(i));
        column.put("className", meta.getColumnClassName(i));
        column.put("catalog", meta.getCatalogName(i));
        column.put("schema", meta.getSchemaName(i));
        column.put("table", meta.getTableName(i));
        columns.add(column);
      }
      List<Object> data = new ArrayList<>();
      while (rows.next()) {
        List<Object> row = new ArrayList<>();
        for (int i = 1; i <= meta.getColumnCount(); i++) {
          row.add(cell(rows, i, meta.getColumnType(i)));
        }
        data.add(row);
      }
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("columns", columns);
      out.put("rows", data);
      return out;
    }
  }

  private static Object cell(ResultSet rows, int i, int type) throws SQLException {
    String string = rows.getString(i);
    if (rows.wasNull() || string == null) {
      return null;
    }
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("string", string);
    try {
      out.put("class", rows.getObject(i).getClass().getName());
    } catch (RuntimeException e) { // the driver's getObject fails on some types: report it, read the rest
      out.put("objectError", String.valueOf(e.getMessage()));
    }
    switch (type) {
      case Types.BIGINT, Types.INTEGER, Types.SMALLINT, Types.TINYINT -> out.put("value", rows.getLong(i));
      case Types.DECIMAL, Types.NUMERIC -> out.put("value", rows.getBigDecimal(i).toPlainString());
      case Types.REAL, Types.FLOAT, Types.DOUBLE -> out.put("value", Double.toString(rows.getDouble(i)));
      case Types.BOOLEAN, Types.BIT -> out.put("value", rows.getBoolean(i));
      case Types.DATE -> out.put("value", rows.getDate(i).toString());
      case Types.TIME -> out.put("value", rows.getTime(i).toString());
      case Types.TIMESTAMP, Types.TIMESTAMP_WITH_TIMEZONE -> {
        Timestamp timestamp = rows.getTimestamp(i);
        out.put("value", timestamp.toString());
        out.put("epochMillis", timestamp.getTime());
      }
      case Types.BINARY, Types.VARBINARY, Types.LONGVARBINARY -> out.put("value", HexFormat.of().formatHex(rows.getBytes(i)));
      case Types.ARRAY -> {
        Array array = rows.getArray(i);
        out.put("value", Arrays.deepToString(new Object[] {array.getArray()}));
      }
      default -> out.put("value", String.valueOf(rows.getObject(i)));
    }
    return out;
  }

  /** Read a result to the end: the first column with getLong, or with "all" every column with getObject. */
  private Map<String, Object> count(List<String> args) throws SQLException {
    try (Statement statement = connection.createStatement()) {
      if (optional(args, 1) != null) {
        statement.setFetchSize(Integer.parseInt(args.get(1)));
      }
      boolean everyColumn = "all".equals(optional(args, 2));
      long started = System.nanoTime();
      long rows = 0;
      long sum = 0;
      try (ResultSet result = statement.executeQuery(args.get(0))) {
        int columns = result.getMetaData().getColumnCount();
        while (result.next()) {
          rows++;
          if (everyColumn) {
            for (int i = 1; i <= columns; i++) {
              sum += result.getObject(i) == null ? 0 : 1;
            }
          } else {
            sum += result.getLong(1);
          }
        }
      }
      double seconds = (System.nanoTime() - started) / 1e9;
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("rows", rows);
      out.put("sum", sum);
      out.put("rowsPerSecond", (long) (rows / seconds));
      return out;
    }
  }

  private Object timeout(List<String> args) throws SQLException {
    try (Statement statement = connection.createStatement()) {
      statement.setQueryTimeout(Integer.parseInt(args.get(1)));
      try (ResultSet rows = statement.executeQuery(args.get(0))) {
        while (rows.next()) {
          // read until the deadline stops the query
        }
      }
    }
    return Map.of("finished", true);
  }

  private Object cancel(List<String> args) throws SQLException {
    ScheduledExecutorService canceller = Executors.newSingleThreadScheduledExecutor();
    try (Statement statement = connection.createStatement()) {
      canceller.schedule(() -> {
        try {
          statement.cancel();
        } catch (SQLException e) {
          throw new IllegalStateException(e);
        }
      }, Long.parseLong(args.get(1)), TimeUnit.MILLISECONDS);
      try (ResultSet rows = statement.executeQuery(args.get(0))) {
        while (rows.next()) {
          // read until the cancel stops the query
        }
      }
    } finally {
      canceller.shutdownNow();
    }
    return Map.of("finished", true);
  }
}
