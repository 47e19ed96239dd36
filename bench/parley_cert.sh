#!/bin/bash
# Gives the benchmark's Parley host (servers/parley.sh, data in /tmp/xb-parley/data)
# the same kind of certificate the anchors use: self-signed RSA-2048 for localhost
# (servers/common.sh make_cert). The example host keeps a valid cert.pem/key.pem it
# finds in its data directory and otherwise makes an ECDSA P-256 one.
# Usage: parley_cert.sh rsa|ecdsa   (ecdsa: delete it, the host makes its own at start)
set -eu
D=${XB_PARLEY_DIR:-/tmp/xb-parley}/data
mkdir -p "$D"
case "${1:-rsa}" in
  rsa)
    openssl req -x509 -nodes -newkey rsa:2048 -days 365 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
      -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null
    chmod 600 "$D/key.pem" ;;
  ecdsa) rm -f "$D/key.pem" "$D/cert.pem" ;;
  *) echo "usage: $0 rsa|ecdsa"; exit 2 ;;
esac
openssl x509 -in "$D/cert.pem" -noout -text 2>/dev/null | grep -m1 'Public Key Algorithm' || echo "no cert (the host makes an ECDSA P-256 one at start)"
