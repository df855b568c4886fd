# Nexus Flight serving the embedded TPC-H demo.
#   docker build -t nexus-flight .
#   docker run --rm -p 31337:31337 nexus-flight
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY backends ./backends
COPY catalog ./catalog
COPY core ./core
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 nexus \
    && mkdir -p /data && chown nexus /data
USER nexus

# Generate the demo data at build time so containers start serving at once.
RUN python -c "from pathlib import Path; from nexus_flight.server.app.demo import demo_database; demo_database(Path('/data'), 0.01)"

EXPOSE 31337
# A secure deployment (README "Security") mounts a configuration with TLS and [server.auth] enabled = true and
# passes the master key, then needs no special flag to listen beyond loopback:
#   docker run -e NEXUS_FLIGHT_MASTER_KEY=... -v /srv/nexus:/etc/nexus-flight:ro -v nexus-data:/data -p 31337:31337 \
#     nexus-flight nexus-flight serve --config /etc/nexus-flight/gateway.toml --data-dir /data
#   docker exec -it <container> nexus-flight users add ops --role admin --password - --data-dir /data
# The default below serves the demo without authentication: a container must listen beyond loopback, which the
# gateway refuses unless told explicitly. Publish the port only on a trusted network.
CMD ["nexus-flight", "serve", "--host", "0.0.0.0", "--port", "31337", "--data-dir", "/data", "--allow-unauthenticated-remote"]
