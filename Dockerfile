# Nexus Flight serving the embedded TPC-H demo and whatever sources its catalog holds.
#   docker build -t nexus-flight .
#   docker build --build-arg EXTRAS=postgres,mysql -t nexus-flight .     # the backend families you serve
#   docker run -p 31337:31337 -p 9090:9090 -v nexus-data:/data nexus-flight
# The catalog (sources, sealed credentials, query history) lives in /data: keep it on a volume, or it goes with
# the container. NEXUS_FLIGHT_MASTER_KEY must be given (-e or a secret) once sources have credentials.
FROM python:3.11-slim

# The optional backend families to install, comma-separated (README "Installing"): postgres, mysql, sqlite,
# snowflake, flightsql, clickhouse, bigquery, objectstore, lake …; none by default (DuckDB and files need none).
ARG EXTRAS=""

WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY backends ./backends
COPY catalog ./catalog
COPY core ./core
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --create-home --uid 10001 nexus \
    && mkdir -p /data && chown nexus /data
USER nexus

# Generate the demo data at build time so containers start serving at once.
RUN python -c "from pathlib import Path; from nexus_flight.server.app.demo import demo_database; demo_database(Path('/data'), 0.01)"
VOLUME /data

# 31337: Flight SQL. 9090: /healthz, /readyz and /metrics (HTTP).
EXPOSE 31337 9090
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=2)"
# SIGTERM (docker stop) drains: new queries are refused, running ones get drain_seconds (30 s; docker stop waits
# 10 s unless given --time, so pass --time 35 or lower --drain-seconds).
STOPSIGNAL SIGTERM
# A secure deployment (README "Security") mounts a configuration with TLS and [server.auth] enabled = true and
# passes the master key, then needs no special flag to listen beyond loopback:
#   docker run -e NEXUS_FLIGHT_MASTER_KEY=... -v /srv/nexus:/etc/nexus-flight:ro -v nexus-data:/data -p 31337:31337 \
#     nexus-flight nexus-flight serve --config /etc/nexus-flight/gateway.toml --data-dir /data --http-port 9090
#   docker exec -it <container> nexus-flight users add ops --role admin --password - --data-dir /data
# The default below serves the demo without authentication: a container must listen beyond loopback, which the
# gateway refuses unless told explicitly. Publish the port only on a trusted network.
CMD ["nexus-flight", "serve", "--host", "0.0.0.0", "--port", "31337", "--http-port", "9090", "--data-dir", "/data", "--log-format", "json", "--allow-unauthenticated-remote"]
