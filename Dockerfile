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
# A container must listen beyond loopback; without authentication configured the gateway refuses that unless
# told explicitly. Publish the port only on a trusted network.
CMD ["nexus-flight", "serve", "--host", "0.0.0.0", "--port", "31337", "--data-dir", "/data", "--allow-unauthenticated-remote"]
