#!/usr/bin/env bash
# Makes a private CA, a server certificate for localhost/127.0.0.1 and a client certificate (for mTLS), all in
# this folder. For development and tests only: production certificates come from your own PKI.
#   certs/make-dev-certs.sh [extra-hostname ...]
set -euo pipefail
cd "$(dirname "$0")"
days=825
sans="DNS:localhost,IP:127.0.0.1"
for name in "$@"; do sans="$sans,DNS:$name"; done

openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days "$days" \
  -subj "/CN=Nexus Flight development CA" 2>/dev/null

openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days "$days" \
  -extfile <(printf "subjectAltName=%s\nextendedKeyUsage=serverAuth" "$sans") 2>/dev/null

openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=nexus-client" 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days "$days" \
  -extfile <(printf "extendedKeyUsage=clientAuth") 2>/dev/null

rm -f server.csr client.csr ca.srl
chmod 600 ./*.key
echo "wrote ca.pem, server.pem/server.key, client.pem/client.key in $(pwd)"
