#!/usr/bin/env bash
# Builds the real Flight SQL clients tests/clients runs against the gateway: the Arrow Flight SQL JDBC driver and
# Java FlightSqlClient (Maven Central, into ~/.m2), a Go program on arrow-go's flightsql client (Go module proxy)
# and a Rust program on the arrow-flight crate (crates.io). Everything is fetched and compiled here, once, into
# $NEXUS_FLIGHT_CLIENTS_DIR (default ~/.cache/nexus-flight/clients); the tests download nothing.
# A part whose sources and toolchain have not changed since its last build is skipped (a stamp file per part).
set -euo pipefail
cd "$(dirname "$0")/clients"
out="${NEXUS_FLIGHT_CLIENTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nexus-flight/clients}"
mkdir -p "$out"

# stamp PART FILES... : true when PART was built from exactly these files with the same toolchain.
fingerprint() { { cat "$@"; "${tool_version[@]}" 2>&1; } | sha256sum | cut -d' ' -f1; }
up_to_date() { local part=$1; shift; [ -f "$out/$part.stamp" ] && [ "$(cat "$out/$part.stamp")" = "$(fingerprint "$@")" ]; }
stamp() { local part=$1; shift; fingerprint "$@" > "$out/$part.stamp"; }
missing_tool() { echo "install-clients: $1 not found; the $2 client tests will skip (fail under CI=true)" >&2; }

# Java: the JDBC driver and FlightSqlClient; classes and classpath.txt under $out/java.
if command -v mvn >/dev/null && command -v javac >/dev/null; then
    tool_version=(javac -version)
    java_files=(java/pom.xml java/src/main/java/nexusflight/clients/*.java)
    if ! up_to_date java "${java_files[@]}"; then
        echo "install-clients: Java clients (Maven resolves the driver into ~/.m2)"
        mvn -q -B -f java/pom.xml -Dclients.build.dir="$out/java" compile
        stamp java "${java_files[@]}"
    fi
else
    missing_tool "mvn/javac" "JDBC and Java"
fi

# Go: one static binary.
if command -v go >/dev/null; then
    tool_version=(go version)
    go_files=(go/go.mod go/go.sum go/main.go)
    if ! up_to_date go "${go_files[@]}"; then
        echo "install-clients: Go client"
        (cd go && go build -o "$out/flightsql-go-client" .)
        stamp go "${go_files[@]}"
    fi
else
    missing_tool "go" "Go"
fi

# Rust: the slowest part on two cores (minutes the first time); Cargo.lock pins every crate.
if command -v cargo >/dev/null; then
    tool_version=(cargo --version)
    rust_files=(rust/Cargo.toml rust/Cargo.lock rust/src/main.rs)
    if ! up_to_date rust "${rust_files[@]}"; then
        echo "install-clients: Rust client (first build takes several minutes)"
        CARGO_TARGET_DIR="$out/rust-target" cargo build -q --locked --manifest-path rust/Cargo.toml
        stamp rust "${rust_files[@]}"
    fi
else
    missing_tool "cargo" "Rust"
fi
