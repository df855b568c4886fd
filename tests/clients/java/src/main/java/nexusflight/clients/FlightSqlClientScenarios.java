package nexusflight.clients;

import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.math.BigDecimal;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.CallOption;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.CancelFlightInfoRequest;
import org.apache.arrow.flight.CancelFlightInfoResult;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightInfo;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.flight.GetSessionOptionsRequest;
import org.apache.arrow.flight.NoOpSessionOptionValueVisitor;
import org.apache.arrow.flight.SessionOptionValue;
import org.apache.arrow.flight.SessionOptionValueFactory;
import org.apache.arrow.flight.SetSessionOptionsRequest;
import org.apache.arrow.flight.SetSessionOptionsResult;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.sql.FlightSqlClient;
import org.apache.arrow.flight.sql.util.TableRef;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.DateDayVector;
import org.apache.arrow.vector.DecimalVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.SmallIntVector;
import org.apache.arrow.vector.TimeStampMicroTZVector;
import org.apache.arrow.vector.TimeStampMicroVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowStreamWriter;

/**
 * Runs the scenarios of a scenario file with Arrow Java's {@code FlightSqlClient} and prints one JSON line each.
 *
 * <p>Usage: {@code FlightSqlClientScenarios SCENARIOS OUT_DIR}. Lines are tab-separated: name, kind, arguments (the
 * kinds are listed in tests/clients/scenarios.py). Result tables go to {@code OUT_DIR/<name>.arrows} as Arrow IPC
 * streams, which the tests compare with ADBC's answer.
 */
public final class FlightSqlClientScenarios {
  private static final String NULL = "\\N";

  private final BufferAllocator allocator = new RootAllocator();
  private final Path outDir;
  private FlightClient flight;
  private FlightSqlClient client;
  private CallOption[] auth = new CallOption[0];
  private String value;

  private FlightSqlClientScenarios(Path outDir) {
    this.outDir = outDir;
  }

  public static void main(String[] argv) throws Exception {
    FlightSqlClientScenarios runner = new FlightSqlClientScenarios(Path.of(argv[1]));
    for (String line : Files.readAllLines(Path.of(argv[0]), StandardCharsets.UTF_8)) {
      if (line.isBlank()) {
        continue;
      }
      String[] fields = line.split("\t", -1);
      List<String> args = Arrays.asList(fields).subList(2, fields.length);
      System.out.println(Json.of(runner.report(fields[0], fields[1], args)));
      System.out.flush();
    }
    System.exit(0); // gRPC's threads would keep the JVM alive
  }

  private Map<String, Object> report(String name, String kind, List<String> args) {
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("name", name);
    try {
      long rows = kind.equals("connect") ? connect(args) : run(name, kind, args);
      out.put("ok", true);
      out.put("rows", rows);
      if (value != null) {
        out.put("value", value);
        value = null;
      }
    } catch (FlightRuntimeException e) {
      out.put("ok", false);
      out.put("code", e.status().code().name());
      out.put("message", e.status().description());
      Throwable root = e;
      while (root.getCause() != null && root.getCause() != root) {
        root = root.getCause();
      }
      out.put("cause", root.toString());
    } catch (Exception e) {
      out.put("ok", false);
      out.put("code", "CLIENT");
      out.put("message", e.toString());
    }
    return out;
  }

  private static String optional(List<String> args, int i) {
    return i < args.size() && !args.get(i).equals(NULL) ? args.get(i) : null;
  }

  private long connect(List<String> args) throws Exception {
    URI uri = URI.create(args.get(0));
    boolean tls = uri.getScheme().equals("grpc+tls");
    Location location = tls ? Location.forGrpcTls(uri.getHost(), uri.getPort())
        : Location.forGrpcInsecure(uri.getHost(), uri.getPort());
    FlightClient.Builder builder = FlightClient.builder(allocator, location);
    String ca = optional(args, 3);
    if (ca != null) {
      try (InputStream pem = new FileInputStream(ca)) {
        builder.trustedCertificates(pem);
        flight = builder.build(); // reads the certificates: before the stream closes
      }
    } else {
      flight = builder.build();
    }
    client = new FlightSqlClient(flight);
    auth = new CallOption[0];
    if (!args.get(1).equals(NULL)) {
      auth = new CallOption[] {flight.authenticateBasicToken(args.get(1), args.get(2))
          .orElseThrow(() -> new IllegalStateException("the handshake returned no bearer token"))};
    }
    client.getTableTypes(auth); // a connection is lazy: ask for something so a bad one fails here
    return 0;
  }

  private long run(String name, String kind, List<String> args) throws Exception {
    Path out = outDir.resolve(name + ".arrows");
    switch (kind) {
      case "statement":
        return fetch(client.execute(args.get(0), auth), out, auth);
      case "prepared":
        try (FlightSqlClient.PreparedStatement prepared = client.prepare(args.get(0), auth);
             VectorSchemaRoot parameters = VectorSchemaRoot.create(prepared.getParameterSchema(), allocator)) {
          bind(parameters, args.subList(1, args.size()));
          prepared.setParameters(parameters);
          return fetch(prepared.execute(auth), out, auth);
        }
      case "catalogs":
        return fetch(client.getCatalogs(auth), out, auth);
      case "schemas":
        return fetch(client.getSchemas(optional(args, 0), optional(args, 1), auth), out, auth);
      case "tables":
        String types = optional(args, 3);
        return fetch(client.getTables(optional(args, 0), optional(args, 1), optional(args, 2),
            types == null ? null : List.of(types.split(",")), args.size() > 4 && args.get(4).equals("true"), auth),
            out, auth);
      case "table_types":
        return fetch(client.getTableTypes(auth), out, auth);
      case "primary_keys":
        return fetch(client.getPrimaryKeys(tableRef(args), auth), out, auth);
      case "exported_keys":
        return fetch(client.getExportedKeys(tableRef(args), auth), out, auth);
      case "imported_keys":
        return fetch(client.getImportedKeys(tableRef(args), auth), out, auth);
      case "xdbc_type_info":
        String dataType = optional(args, 0);
        return fetch(dataType == null ? client.getXdbcTypeInfo(auth)
            : client.getXdbcTypeInfo(Integer.parseInt(dataType), auth), out, auth);
      case "sql_info":
        return fetch(client.getSqlInfo(args.stream().mapToInt(Integer::parseInt).toArray(), auth), out, auth);
      case "cancel":
        return cancel(args.get(0), out);
      case "session_options":
        return sessionOption(args.get(0), args.get(1));
      case "timeout":
        FlightInfo info = client.execute(args.get(0), auth);
        CallOption[] timed = Arrays.copyOf(auth, auth.length + 1);
        timed[auth.length] = CallOptions.timeout(Long.parseLong(args.get(1)), TimeUnit.MILLISECONDS);
        fetch(info, out, timed);
        throw new IllegalStateException("the query finished before its deadline");
      default:
        throw new IllegalArgumentException("unknown scenario kind " + kind);
    }
  }

  private long cancel(String query, Path out) throws Exception {
    FlightInfo info = client.execute(query, auth);
    ExecutorService reader = Executors.newSingleThreadExecutor();
    try {
      Future<Long> reading = reader.submit(() -> fetch(info, out, auth));
      Thread.sleep(500);
      CancelFlightInfoResult result = client.cancelFlightInfo(new CancelFlightInfoRequest(info), auth);
      try {
        reading.get(60, TimeUnit.SECONDS);
      } catch (java.util.concurrent.ExecutionException e) {
        if (e.getCause() instanceof FlightRuntimeException flightError) {
          throw flightError;
        }
        throw e;
      }
      throw new IllegalStateException("the cancelled query finished (cancel status " + result.getStatus() + ")");
    } finally {
      reader.shutdownNow();
    }
  }

  /** Set one session option, read all back, and keep the value the server now holds for it. */
  private long sessionOption(String name, String wanted) {
    SetSessionOptionsResult set = client.setSessionOptions(
        new SetSessionOptionsRequest(Map.of(name, SessionOptionValueFactory.makeSessionOptionValue(wanted))), auth);
    if (set.hasErrors()) {
      throw new IllegalStateException("option " + name + " refused: " + set.getErrors().get(name).value);
    }
    SessionOptionValue held = client.getSessionOptions(new GetSessionOptionsRequest(), auth)
        .getSessionOptions().get(name);
    value = held == null ? null : held.acceptVisitor(new NoOpSessionOptionValueVisitor<String>() {
      @Override
      public String visit(String text) {
        return text;
      }
    });
    return 0;
  }

  private static TableRef tableRef(List<String> args) {
    return TableRef.of(optional(args, 0), optional(args, 1), args.get(2));
  }

  private long fetch(FlightInfo info, Path out, CallOption[] options) throws Exception {
    long rows = 0;
    try (OutputStream file = new FileOutputStream(out.toFile())) {
      ArrowStreamWriter writer = null;
      for (var endpoint : info.getEndpoints()) {
        try (FlightStream stream = client.getStream(endpoint.getTicket(), options)) {
          VectorSchemaRoot root = stream.getRoot();
          writer = writer != null ? writer : new ArrowStreamWriter(root, null, file);
          writer.start();
          while (stream.next()) {
            rows += root.getRowCount();
            writer.writeBatch();
          }
        }
      }
      if (writer != null) {
        writer.end();
      }
    }
    return rows;
  }

  /** One row of parameters from text, in the types of the server's parameter schema. */
  private static void bind(VectorSchemaRoot root, List<String> values) {
    List<FieldVector> vectors = new ArrayList<>(root.getFieldVectors());
    for (int i = 0; i < vectors.size(); i++) {
      FieldVector vector = vectors.get(i);
      String value = values.get(i);
      vector.allocateNew();
      if (value.equals(NULL)) {
        vector.setNull(0);
      } else if (vector instanceof BigIntVector v) {
        v.setSafe(0, Long.parseLong(value));
      } else if (vector instanceof IntVector v) {
        v.setSafe(0, Integer.parseInt(value));
      } else if (vector instanceof SmallIntVector v) {
        v.setSafe(0, Short.parseShort(value));
      } else if (vector instanceof Float8Vector v) {
        v.setSafe(0, Double.parseDouble(value));
      } else if (vector instanceof Float4Vector v) {
        v.setSafe(0, Float.parseFloat(value));
      } else if (vector instanceof BitVector v) {
        v.setSafe(0, Boolean.parseBoolean(value) ? 1 : 0);
      } else if (vector instanceof DateDayVector v) {
        v.setSafe(0, (int) LocalDate.parse(value).toEpochDay());
      } else if (vector instanceof DecimalVector v) {
        v.setSafe(0, new BigDecimal(value).setScale(v.getScale()));
      } else if (vector instanceof TimeStampMicroVector v) {
        v.setSafe(0, micros(value));
      } else if (vector instanceof TimeStampMicroTZVector v) {
        v.setSafe(0, micros(value));
      } else if (vector instanceof VarCharVector v) {
        v.setSafe(0, value.getBytes(StandardCharsets.UTF_8));
      } else {
        throw new IllegalArgumentException("no binding for parameter type " + vector.getField().getType());
      }
    }
    root.setRowCount(1);
  }

  private static long micros(String value) {
    LocalDateTime time = LocalDateTime.parse(value.replace(' ', 'T'));
    return time.toEpochSecond(ZoneOffset.UTC) * 1_000_000L + time.getNano() / 1_000;
  }
}
