#!/usr/bin/env bash
# Make a private CA and a server certificate for the broker's TLS listener.
#
#   ./make-certs.sh OUT_DIR SERVER_NAME [EXTRA_SAN ...]
#   e.g. (in deploy/) ./make-certs.sh mosquitto/secrets/certs mqtt.example.org IP:192.0.2.10
#
# Writes ca.crt/ca.key (keep ca.key offline), server.crt/server.key (for mosquitto.conf)
# and prints the line to put in each device's [mqtt] section. Devices trust ca.crt only.
# A certificate from a public CA (e.g. Let's Encrypt) works as well: then devices can
# leave ca_file empty and use the system store.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
out=$1; name=$2; shift 2
san="DNS:$name"
for extra in "$@"; do san="$san,$extra"; done
command -v openssl >/dev/null || { echo "make-certs.sh: install openssl" >&2; exit 1; }
mkdir -p "$out"
cd "$out"
if [ ! -f ca.key ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -keyout ca.key -out ca.crt -days 3650 \
    -subj "/CN=spinesense private CA" 2>/dev/null
fi
openssl req -newkey rsa:3072 -nodes -keyout server.key -out server.csr \
  -subj "/CN=$name" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -out server.crt -days 825 -extfile server.ext 2>/dev/null
rm -f server.csr server.ext
chmod 600 ca.key
chmod 644 server.key  # the broker (user mosquitto) must read it; keep the folder private
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && ! git check-ignore -q ca.key; then
  echo "make-certs.sh: warning: $out is inside a git work tree and not ignored; do not commit ca.key/server.key (use mosquitto/secrets/certs)" >&2
fi
echo "# certificates in $out; on each device: ca_file = \"/etc/spinesense/ca.crt\" (a copy of $out/ca.crt)" >&2
