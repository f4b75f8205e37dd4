#!/bin/sh
# A self-signed certificate for trying the compose stack (browsers will warn); never for production.
set -eu
dir="$(dirname "$0")/certs"
mkdir -p "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=${1:-localhost}" \
    -keyout "$dir/tls.key" -out "$dir/tls.crt"
echo "wrote $dir/tls.crt and $dir/tls.key (self-signed, 30 days)"
