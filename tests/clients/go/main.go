// Command flightsql-go-client runs the scenarios of a scenario file against a Flight SQL server with the Arrow Go
// module's flightsql.Client, and reports each one as a JSON line on stdout.
//
// Usage: flightsql-go-client SCENARIOS OUT_DIR. Each scenario line is tab-separated: name, kind, arguments (the
// kinds are listed in tests/clients/scenarios.py). A result table is written to OUT_DIR/<name>.arrows as an Arrow
// IPC stream so the tests compare it, types and all, with ADBC's answer.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const null = `\N`

type report struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Rows    int64  `json:"rows"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Value   string `json:"value,omitempty"`
}

type session struct {
	client *flightsql.Client
	ctx    context.Context // carries the bearer token after the handshake
}

func optional(args []string, i int) *string {
	if i >= len(args) || args[i] == null {
		return nil
	}
	return &args[i]
}

func connect(args []string) (*session, error) {
	target := strings.TrimPrefix(strings.TrimPrefix(args[0], "grpc+tls://"), "grpc://")
	creds := insecure.NewCredentials()
	if ca := optional(args, 3); ca != nil {
		tls, err := credentials.NewClientTLSFromFile(*ca, "localhost")
		if err != nil {
			return nil, err
		}
		creds = tls
	}
	client, err := flightsql.NewClient(target, nil, nil, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if args[1] != null {
		if ctx, err = client.Client.AuthenticateBasicToken(ctx, args[1], args[2]); err != nil {
			return nil, err
		}
	}
	return &session{client: client, ctx: ctx}, nil
}

// fetch reads every endpoint of a FlightInfo into one IPC stream file and counts the rows.
func (s *session) fetch(info *flight.FlightInfo, path string) (int64, error) {
	schema, err := flight.DeserializeSchema(info.Schema, memory.DefaultAllocator)
	if err != nil {
		return 0, err
	}
	file, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	writer := ipc.NewWriter(file, ipc.WithSchema(schema))
	defer writer.Close()
	var rows int64
	for _, endpoint := range info.Endpoint {
		reader, err := s.client.DoGet(s.ctx, endpoint.Ticket)
		if err != nil {
			return rows, err
		}
		for reader.Next() {
			rows += reader.RecordBatch().NumRows()
			if err := writer.Write(reader.RecordBatch()); err != nil {
				reader.Release()
				return rows, err
			}
		}
		err = reader.Err()
		reader.Release()
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// parameters builds one row of bound values from text, in the types of the server's parameter schema.
func parameters(schema *arrow.Schema, values []string) (arrow.RecordBatch, error) {
	items := make([]string, len(values))
	for i, field := range schema.Fields() {
		switch {
		case values[i] == null:
			items[i] = "null"
		case arrow.IsInteger(field.Type.ID()) || arrow.IsFloating(field.Type.ID()) || field.Type.ID() == arrow.BOOL:
			items[i] = values[i]
		default:
			quoted, _ := json.Marshal(values[i])
			items[i] = string(quoted)
		}
	}
	columns := make([]arrow.Array, len(items))
	for i, field := range schema.Fields() {
		column, _, err := array.FromJSON(memory.DefaultAllocator, field.Type, strings.NewReader("["+items[i]+"]"))
		if err != nil {
			return nil, fmt.Errorf("parameter %d (%s): %w", i+1, field.Type, err)
		}
		defer column.Release()
		columns[i] = column
	}
	return array.NewRecordBatch(schema, columns, 1), nil
}

func (s *session) run(kind string, args []string, path string) (int64, string, error) {
	ctx := s.ctx
	var info *flight.FlightInfo
	var err error
	switch kind {
	case "statement":
		info, err = s.client.Execute(ctx, args[0])
	case "prepared":
		var prepared *flightsql.PreparedStatement
		if prepared, err = s.client.Prepare(ctx, args[0]); err != nil {
			return 0, "", err
		}
		defer prepared.Close(ctx)
		batch, err := parameters(prepared.ParameterSchema(), args[1:])
		if err != nil {
			return 0, "", err
		}
		defer batch.Release()
		prepared.SetParameters(batch)
		info, err = prepared.Execute(ctx)
		if err != nil {
			return 0, "", err
		}
		rows, err := s.fetch(info, path)
		return rows, "", err
	case "catalogs":
		info, err = s.client.GetCatalogs(ctx)
	case "schemas":
		info, err = s.client.GetDBSchemas(ctx, &flightsql.GetDBSchemasOpts{
			Catalog: optional(args, 0), DbSchemaFilterPattern: optional(args, 1)})
	case "tables":
		opts := &flightsql.GetTablesOpts{Catalog: optional(args, 0), DbSchemaFilterPattern: optional(args, 1),
			TableNameFilterPattern: optional(args, 2), IncludeSchema: len(args) > 4 && args[4] == "true"}
		if types := optional(args, 3); types != nil {
			opts.TableTypes = strings.Split(*types, ",")
		}
		info, err = s.client.GetTables(ctx, opts)
	case "table_types":
		info, err = s.client.GetTableTypes(ctx)
	case "primary_keys", "exported_keys", "imported_keys":
		ref := flightsql.TableRef{Catalog: optional(args, 0), DBSchema: optional(args, 1), Table: args[2]}
		switch kind {
		case "primary_keys":
			info, err = s.client.GetPrimaryKeys(ctx, ref)
		case "exported_keys":
			info, err = s.client.GetExportedKeys(ctx, ref)
		default:
			info, err = s.client.GetImportedKeys(ctx, ref)
		}
	case "xdbc_type_info":
		var dataType *int32
		if value := optional(args, 0); value != nil {
			parsed, _ := strconv.Atoi(*value)
			code := int32(parsed)
			dataType = &code
		}
		info, err = s.client.GetXdbcTypeInfo(ctx, dataType)
	case "sql_info":
		ids := make([]flightsql.SqlInfo, 0, len(args))
		for _, arg := range args {
			id, _ := strconv.Atoi(arg)
			ids = append(ids, flightsql.SqlInfo(id))
		}
		info, err = s.client.GetSqlInfo(ctx, ids)
	case "cancel":
		if info, err = s.client.Execute(ctx, args[0]); err != nil {
			return 0, "", err
		}
		done := make(chan error, 1)
		go func() {
			_, err := s.fetch(info, path)
			done <- err
		}()
		time.Sleep(500 * time.Millisecond)
		result, err := s.client.CancelFlightInfo(ctx, &flight.CancelFlightInfoRequest{Info: info})
		if err != nil {
			return 0, "", err
		}
		if err := <-done; err != nil {
			return 0, result.Status.String(), err
		}
		return 0, result.Status.String(), errors.New("the cancelled query finished")
	case "timeout":
		if info, err = s.client.Execute(ctx, args[0]); err != nil {
			return 0, "", err
		}
		millis, _ := strconv.Atoi(args[1])
		deadline, cancel := context.WithTimeout(ctx, time.Duration(millis)*time.Millisecond)
		defer cancel()
		timed := &session{client: s.client, ctx: deadline}
		if _, err := timed.fetch(info, path); err != nil {
			return 0, "", err
		}
		return 0, "", errors.New("the query finished before its deadline")
	case "session_options":
		// Set one option, read every option back, and report the value the server now holds for it.
		value, err := flight.NewSessionOptionValue(args[1])
		if err != nil {
			return 0, "", err
		}
		request := &flight.SetSessionOptionsRequest{SessionOptions: map[string]*flight.SessionOptionValue{args[0]: &value}}
		set, err := s.client.SetSessionOptions(ctx, request)
		if err != nil {
			return 0, "", err
		}
		if problem, ok := set.Errors[args[0]]; ok {
			return 0, "", fmt.Errorf("option %s refused: %s", args[0], problem.Value)
		}
		got, err := s.client.GetSessionOptions(ctx, &flight.GetSessionOptionsRequest{})
		if err != nil {
			return 0, "", err
		}
		return 0, got.SessionOptions[args[0]].GetStringValue(), nil
	default:
		return 0, "", fmt.Errorf("unknown scenario kind %q", kind)
	}
	if err != nil {
		return 0, "", err
	}
	rows, err := s.fetch(info, path)
	return rows, "", err
}

func main() {
	file, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer file.Close()
	outDir := os.Args[2]
	var current *session
	out := json.NewEncoder(os.Stdout)
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		if strings.TrimSpace(scanner.Text()) == "" {
			continue
		}
		fields := strings.Split(scanner.Text(), "\t")
		name, kind, args := fields[0], fields[1], fields[2:]
		result := report{Name: name}
		var err error
		if kind == "connect" {
			var next *session
			if next, err = connect(args); err == nil {
				// Connecting is lazy in gRPC: ask for something so a bad connection fails here.
				if _, err = next.client.GetTableTypes(next.ctx); err == nil {
					current = next
				}
			}
		} else if current == nil {
			err = errors.New("not connected")
		} else {
			result.Rows, result.Value, err = current.run(kind, args, filepath.Join(outDir, name+".arrows"))
		}
		if err != nil {
			result.Code, result.Message = "CLIENT", err.Error()
			if s, ok := status.FromError(err); ok {
				result.Code, result.Message = s.Code().String(), s.Message()
			}
		} else {
			result.OK = true
		}
		out.Encode(result)
	}
}
