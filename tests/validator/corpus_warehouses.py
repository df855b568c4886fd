"""Attacks in the two warehouse dialects, ClickHouse and BigQuery: ``(rule, sql)`` per dialect.

Every entry is refused by the validator with its rule (``tests/validator/test_warehouse_attacks.py``), and every
entry is also sent with the validator off to ClickHouse's engine behind the stand-in or to bqemulator, where it
must change nothing. ``{OUT}`` is a directory an attack would write a file into (the tests fill it in and check it
stays empty). The tables named are the TPC-H tables the warehouse fixtures load (database / dataset ``tpch``).
"""

CLICKHOUSE_ATTACKS: list[tuple[str, str]] = [
    # table functions reaching files, URLs, other servers and programs
    ("QV-005", "SELECT * FROM url('http://127.0.0.1:1/x.csv', CSV, 'a String')"),
    ("QV-005", "SELECT * FROM urlCluster('default', 'http://127.0.0.1:1/x.csv', CSV, 'a String')"),
    ("QV-005", "SELECT * FROM file('/etc/passwd', 'LineAsString')"),
    ("QV-005", "SELECT * FROM fileCluster('default', '/etc/passwd', 'LineAsString')"),
    ("QV-005", "INSERT INTO FUNCTION file('{OUT}/written.csv', 'CSV', 'a Int32') SELECT 1"),
    ("QV-005", "SELECT * FROM s3('http://127.0.0.1:1/nexus-bucket/x.csv', 'CSV', 'a String')"),
    ("QV-005", "SELECT * FROM remote('127.0.0.1:9000', system.one)"),
    ("QV-005", "SELECT * FROM remoteSecure('127.0.0.1:9440', system.one)"),
    ("QV-005", "SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'root', '')"),
    ("QV-005", "SELECT * FROM postgresql('127.0.0.1:5432', 'db', 't', 'postgres', '')"),
    ("QV-005", "SELECT * FROM jdbc('jdbc:mysql://127.0.0.1/db', 't')"),
    ("QV-005", "SELECT * FROM input('a Int32')"),
    ("QV-004", "SELECT * FROM executable('touch.sh', 'CSV', 'a Int32')"),
    ("QV-004", "SELECT * FROM executablePool('touch.sh', 'CSV', 'a Int32')"),
    # dictionaries load from sources of their own
    ("QV-005", "SELECT dictGet('nexus_dictionary', 'v', toUInt64(1))"),
    ("QV-005", "SELECT dictGetOrDefault('nexus_dictionary', 'v', toUInt64(1), 'x')"),
    ("QV-005", "SELECT dictGetString('nexus_dictionary', 'v', toUInt64(1))"),
    ("QV-005", "SELECT dictHas('nexus_dictionary', toUInt64(1))"),
    ("QV-005", "SELECT * FROM dictionary('nexus_dictionary')"),
    # SYSTEM, OPTIMIZE, KILL
    ("QV-003", "SYSTEM SHUTDOWN"),
    ("QV-003", "SYSTEM RELOAD DICTIONARIES"),
    ("QV-003", "SYSTEM DROP MARK CACHE"),
    ("QV-003", "SYSTEM STOP MERGES tpch.region"),
    ("QV-003", "OPTIMIZE TABLE tpch.region FINAL"),
    ("QV-004", "KILL QUERY WHERE 1"),
    ("QV-004", "KILL MUTATION WHERE 1"),
    # SETTINGS that would lift the gateway's limits
    ("QV-006", "SELECT count() FROM tpch.lineitem SETTINGS max_execution_time = 0"),
    ("QV-006", "SELECT 1 SETTINGS readonly = 0"),
    ("QV-006", "SELECT count() FROM tpch.lineitem SETTINGS max_memory_usage = 0"),
    ("QV-006", "WITH x AS (SELECT 1) SELECT * FROM x SETTINGS readonly = 2"),
    ("QV-006", "SET readonly = 0"),
    # files written by the query itself
    ("QV-005", "SELECT * FROM tpch.region INTO OUTFILE '{OUT}/outfile.csv'"),
    ("QV-005", "SELECT * FROM tpch.region INTO OUTFILE '{OUT}/outfile.tsv' FORMAT TSV"),
    ("QV-005", "SELECT 1 INTO OUTFILE '{OUT}/truncated.csv' TRUNCATE"),
    ("QV-005", "BACKUP TABLE tpch.region TO File('{OUT}/backup.zip')"),
    # writes and schema changes
    ("QV-002", "INSERT INTO tpch.region VALUES (9, 'ATLANTIS', 'x')"),
    ("QV-003", "ALTER TABLE tpch.region DELETE WHERE 1"),
    ("QV-003", "ALTER TABLE tpch.region UPDATE r_name = 'X' WHERE 1"),
    ("QV-003", "TRUNCATE TABLE tpch.region"),
    ("QV-003", "DROP TABLE tpch.region"),
    ("QV-003", "CREATE TABLE tpch.nexus_evil (a Int8) ENGINE = Memory"),
    ("QV-003", "RENAME TABLE tpch.region TO tpch.region_gone"),
    ("QV-006", "DETACH TABLE tpch.region"),
]

BIGQUERY_ATTACKS: list[tuple[str, str]] = [
    # scripting
    ("QV-004", "DECLARE x INT64 DEFAULT 1"),
    ("QV-001", "DECLARE x INT64 DEFAULT 1; SELECT x"),
    ("QV-001", "BEGIN SELECT 1; END"),
    ("QV-001", "BEGIN\n  DELETE FROM tpch.region WHERE true;\nEND"),
    ("QV-007", "BEGIN TRANSACTION"),
    ("QV-007", "COMMIT TRANSACTION"),
    ("QV-004", "EXECUTE IMMEDIATE 'DELETE FROM tpch.region WHERE true'"),
    ("QV-004", "EXECUTE IMMEDIATE 'SELECT 1'"),
    ("QV-004", "CALL tpch.nexus_procedure()"),
    # data leaving or entering BigQuery
    ("QV-005", "EXPORT DATA OPTIONS (uri = 'gs://nexus-bucket/region-*.csv', format = 'CSV') AS "
               "SELECT * FROM tpch.region"),
    ("QV-002", "LOAD DATA INTO tpch.region FROM FILES (format = 'CSV', uris = ['gs://nexus-bucket/x.csv'])"),
    ("QV-002", "LOAD DATA OVERWRITE tpch.region FROM FILES (format = 'CSV', uris = ['gs://nexus-bucket/x.csv'])"),
    ("QV-005", "SELECT * FROM EXTERNAL_QUERY('nexus-connection', 'SELECT 1')"),
    # JavaScript and SQL functions
    ("QV-003", "CREATE TEMP FUNCTION f(x FLOAT64) RETURNS FLOAT64 LANGUAGE js AS 'return x * 2;'"),
    ("QV-001", "CREATE TEMP FUNCTION f(x FLOAT64) RETURNS FLOAT64 LANGUAGE js AS 'return x * 2;'; SELECT f(1)"),
    ("QV-003", "CREATE TEMPORARY FUNCTION g(x INT64) AS (x + 1)"),
    # session and writes
    ("QV-006", "SET @@query_label = 'nexus:x'"),
    ("QV-002", "INSERT INTO tpch.region (r_regionkey, r_name, r_comment) VALUES (9, 'ATLANTIS', 'x')"),
    ("QV-002", "DELETE FROM tpch.region WHERE true"),
    ("QV-002", "UPDATE tpch.region SET r_name = 'X' WHERE true"),
    ("QV-002", "MERGE tpch.region t USING tpch.nation s ON false WHEN NOT MATCHED THEN "
               "INSERT (r_regionkey, r_name, r_comment) VALUES (s.n_nationkey, s.n_name, s.n_comment)"),
    ("QV-003", "TRUNCATE TABLE tpch.region"),
    ("QV-003", "DROP TABLE tpch.region"),
    ("QV-003", "CREATE TABLE tpch.nexus_evil AS SELECT 1 AS a"),
    ("QV-003", "CREATE TEMP TABLE t AS SELECT 1 AS a"),
    ("QV-003", "ALTER TABLE tpch.region SET OPTIONS (description = 'pwned')"),
]

WAREHOUSE_ATTACKS: list[tuple[str, str, str]] = [
    *(("clickhouse", rule, sql) for rule, sql in CLICKHOUSE_ATTACKS),
    *(("bigquery", rule, sql) for rule, sql in BIGQUERY_ATTACKS),
]
