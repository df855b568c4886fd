//! Runs the scenarios of a scenario file against a Flight SQL server with the `arrow-flight` crate's
//! `FlightSqlServiceClient`, and reports each one as a JSON line on stdout.
//!
//! Usage: `flightsql-rust-client SCENARIOS OUT_DIR`. Each scenario line is tab-separated:
//! `name kind args...` (see tests/clients/scenarios.py for the kinds). A result table is written to
//! `OUT_DIR/<name>.arrows` as an Arrow IPC stream so the tests compare it, types and all, with ADBC's answer.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetTables, CommandGetXdbcTypeInfo, SqlInfo,
};
use arrow_flight::{Action, CancelFlightInfoRequest, FlightInfo};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{Schema, SchemaRef};
use futures::TryStreamExt;
use prost::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

type Client = FlightSqlServiceClient<Channel>;
type Outcome = Result<Option<(SchemaRef, Vec<RecordBatch>)>, FlightError>;

const NULL: &str = "\\N";

fn opt(value: Option<&String>) -> Option<String> {
    value.filter(|v| v.as_str() != NULL).cloned()
}

async fn connect(args: &[String]) -> Result<Client, FlightError> {
    let (uri, user, password) = (&args[0], &args[1], &args[2]);
    let mut endpoint = Endpoint::from_shared(uri.replace("grpc+tls://", "https://").replace("grpc://", "http://"))
        .map_err(|e| FlightError::ExternalError(Box::new(e)))?
        .connect_timeout(Duration::from_secs(10));
    if let Some(ca) = opt(args.get(3)) {
        let pem = std::fs::read_to_string(ca).map_err(|e| FlightError::ExternalError(Box::new(e)))?;
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)).domain_name("localhost");
        endpoint = endpoint.tls_config(tls).map_err(|e| FlightError::ExternalError(Box::new(e)))?;
    }
    let channel = endpoint.connect().await.map_err(|e| FlightError::ExternalError(Box::new(e)))?;
    let mut client = FlightSqlServiceClient::new(channel);
    if user.as_str() != NULL {
        client.handshake(user, password).await?;
        if client.token().is_none() {
            return Err(FlightError::protocol("the handshake returned no bearer token"));
        }
    }
    Ok(client)
}

async fn fetch(client: &mut Client, info: FlightInfo) -> Outcome {
    let schema = Arc::new(info.clone().try_decode_schema()?);
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.ok_or_else(|| FlightError::protocol("endpoint without a ticket"))?;
        let mut stream = client.do_get(ticket).await?;
        while let Some(batch) = stream.try_next().await? {
            batches.push(batch);
        }
    }
    Ok(Some((schema, batches)))
}

/// Parameter values arrive as text and are cast to the types of the server's parameter schema.
fn parameters(schema: &Schema, values: &[String]) -> Result<RecordBatch, FlightError> {
    let columns = schema
        .fields()
        .iter()
        .zip(values)
        .map(|(field, value)| {
            let text: ArrayRef = Arc::new(StringArray::from(vec![(value.as_str() != NULL).then_some(value.as_str())]));
            arrow_cast::cast(&text, field.data_type()).map_err(FlightError::Arrow)
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::new(schema.clone()), columns).map_err(FlightError::Arrow)
}

fn patterns(args: &[String]) -> (Option<String>, Option<String>, Option<String>) {
    (opt(args.first()), opt(args.get(1)), opt(args.get(2)))
}

async fn run(client: &mut Client, kind: &str, args: &[String]) -> Outcome {
    match kind {
        "statement" => {
            let info = client.execute(args[0].clone(), None).await?;
            fetch(client, info).await
        }
        "prepared" => {
            let mut prepared = client.prepare(args[0].clone(), None).await?;
            let batch = parameters(prepared.parameter_schema()?, &args[1..])?;
            prepared.set_parameters(batch)?;
            let info = prepared.execute().await?;
            let result = fetch(client, info).await;
            prepared.close().await?;
            result
        }
        "catalogs" => {
            let info = client.get_catalogs().await?;
            fetch(client, info).await
        }
        "schemas" => {
            let (catalog, db_schema_filter_pattern, _) = patterns(args);
            let info = client.get_db_schemas(CommandGetDbSchemas { catalog, db_schema_filter_pattern }).await?;
            fetch(client, info).await
        }
        "tables" => {
            let (catalog, db_schema_filter_pattern, table_name_filter_pattern) = patterns(args);
            let table_types = opt(args.get(3)).map(|t| t.split(',').map(String::from).collect()).unwrap_or_default();
            let include_schema = args.get(4).map(|v| v == "true").unwrap_or(false);
            let request = CommandGetTables {
                catalog, db_schema_filter_pattern, table_name_filter_pattern, table_types, include_schema,
            };
            let info = client.get_tables(request).await?;
            fetch(client, info).await
        }
        "table_types" => {
            let info = client.get_table_types().await?;
            fetch(client, info).await
        }
        "primary_keys" | "exported_keys" | "imported_keys" => {
            let (catalog, db_schema, table) = patterns(args);
            let table = table.unwrap_or_default();
            let info = match kind {
                "primary_keys" => client.get_primary_keys(CommandGetPrimaryKeys { catalog, db_schema, table }).await?,
                "exported_keys" => client.get_exported_keys(CommandGetExportedKeys { catalog, db_schema, table }).await?,
                _ => client.get_imported_keys(CommandGetImportedKeys { catalog, db_schema, table }).await?,
            };
            fetch(client, info).await
        }
        "xdbc_type_info" => {
            let data_type = opt(args.first()).map(|v| v.parse::<i32>().unwrap_or(0));
            let info = client.get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type }).await?;
            fetch(client, info).await
        }
        "sql_info" => {
            let ids = args
                .iter()
                .filter_map(|v| v.parse::<i32>().ok())
                .filter_map(|v| SqlInfo::try_from(v).ok())
                .collect();
            let info = client.get_sql_info(ids).await?;
            fetch(client, info).await
        }
        "cancel" => {
            // Start reading a slow result, then cancel it through the generic action call.
            let info = client.execute(args[0].clone(), None).await?;
            let ticket = info.endpoint[0].ticket.clone().ok_or_else(|| FlightError::protocol("no ticket"))?;
            let mut reader = client.clone();
            let read = tokio::spawn(async move {
                let mut stream = reader.do_get(ticket).await?;
                while stream.try_next().await?.is_some() {}
                Ok::<(), FlightError>(())
            });
            tokio::time::sleep(Duration::from_millis(500)).await;
            let body = CancelFlightInfoRequest::new(info).encode_to_vec();
            let mut results = client.do_action(Action::new("CancelFlightInfo", body)).await?;
            while results.message().await?.is_some() {}
            read.await.map_err(|e| FlightError::ExternalError(Box::new(e)))??;
            Err(FlightError::protocol("the cancelled query finished"))
        }
        "timeout" => {
            // The deadline travels with the DoGet call as grpc-timeout.
            let info = client.execute(args[0].clone(), None).await?;
            let ticket = info.endpoint[0].ticket.clone().ok_or_else(|| FlightError::protocol("no ticket"))?;
            let mut request = tonic::Request::new(ticket);
            request.set_timeout(Duration::from_millis(args[1].parse().unwrap_or(1000)));
            let mut stream = client.do_get(request).await?;
            while stream.try_next().await?.is_some() {}
            Err(FlightError::protocol("the query finished before its deadline"))
        }
        other => Err(FlightError::NotYetImplemented(format!("scenario kind {other}"))),
    }
}

fn status_of(error: &FlightError) -> (String, String) {
    match error {
        FlightError::Tonic(status) => (format!("{:?}", status.code()), status.message().to_string()),
        other => ("CLIENT".to_string(), other.to_string()),
    }
}

fn json_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_result(path: &str, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<(), FlightError> {
    let file = File::create(path).map_err(|e| FlightError::ExternalError(Box::new(e)))?;
    let mut writer = StreamWriter::try_new(file, schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(())
}

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let scenarios = std::fs::read_to_string(&argv[1]).expect("scenario file");
    let out_dir = &argv[2];
    let mut client: Option<Client> = None;
    for line in scenarios.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<String> = line.split('\t').map(String::from).collect();
        let (name, kind, args) = (&fields[0], fields[1].as_str(), &fields[2..]);
        let outcome = if kind == "connect" {
            connect(args).await.map(|c| {
                client = Some(c);
                None
            })
        } else {
            match client.as_mut() {
                Some(c) => run(c, kind, args).await,
                None => Err(FlightError::protocol("not connected")),
            }
        };
        let line = match outcome {
            Ok(result) => {
                let rows = match &result {
                    Some((schema, batches)) => {
                        let path = format!("{out_dir}/{name}.arrows");
                        if let Err(e) = write_result(&path, schema, batches) {
                            eprintln!("{name}: cannot write the result: {e}");
                        }
                        batches.iter().map(|b| b.num_rows()).sum::<usize>()
                    }
                    None => 0,
                };
                format!("{{\"name\":{},\"ok\":true,\"rows\":{rows}}}", json_string(name))
            }
            Err(error) => {
                let (code, message) = status_of(&error);
                format!(
                    "{{\"name\":{},\"ok\":false,\"code\":{},\"message\":{}}}",
                    json_string(name), json_string(&code), json_string(&message)
                )
            }
        };
        println!("{line}");
    }
}
