#!/usr/bin/env bash
# A test CA, a server certificate it signs for localhost and 127.0.0.1, and a self-signed
# certificate it does not sign.   make_test_ca.sh OUTDIR
set -euo pipefail
out=$1
mkdir -p "$out"
cd "$out"
[[ -f server.pem && -f selfsigned.pem ]] && exit 0
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=dmscore-test-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile san.ext -out server.pem 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout selfsigned.key -out selfsigned.pem 2>/dev/null
chmod 600 ./*.key
