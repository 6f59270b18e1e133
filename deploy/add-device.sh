#!/usr/bin/env bash
# Create MQTT credentials for a device (or the collector) and print its config snippet.
#
#   deploy/add-device.sh [--passwd FILE] [--host HOST] [--port PORT] [--ca CA_FILE] NAME
#   deploy/add-device.sh --collector [--passwd FILE] ...
#
# NAME is the device id (1-64 of A-Z a-z 0-9 _ -): it becomes the MQTT user name, the
# topic segment (the ACL's %u) and the InfluxDB device tag. A random password is made,
# added with mosquitto_passwd, and printed once inside the TOML snippet for that device's
# config. Reload the broker afterwards (systemctl reload mosquitto, or
# `docker compose kill -s HUP mosquitto`).
set -euo pipefail
passwd_file=${SPINESENSE_PASSWD_FILE:-deploy/mosquitto/secrets/passwd}
host=${SPINESENSE_MQTT_HOST:-mqtt.example.org}
port=8883
ca=/etc/spinesense/ca.crt
role=device
name=""
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --passwd) passwd_file=$2; shift 2 ;;
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --ca) ca=$2; shift 2 ;;
    --collector) role=collector; name=collector.spinesense; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "add-device.sh: unknown option $1" >&2; usage ;;
    *) name=$1; shift ;;
  esac
done
[ -n "$name" ] || { echo "add-device.sh: give a device id (e.g. alice)" >&2; usage; }
if [ "$role" = device ] && ! [[ "$name" =~ ^[A-Za-z0-9_-]{1,64}$ ]]; then
  echo "add-device.sh: '$name' is not a valid device id; use 1-64 letters, digits, '-' or '_'" >&2
  exit 2
fi
command -v mosquitto_passwd >/dev/null || {
  echo "add-device.sh: mosquitto_passwd not found; install it: sudo apt-get install mosquitto" >&2
  exit 1; }
password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 28)
mkdir -p "$(dirname "$passwd_file")"
if [ -f "$passwd_file" ]; then
  if grep -q "^${name}:" "$passwd_file"; then
    echo "add-device.sh: note: '$name' already exists in $passwd_file; its password is replaced" >&2
  fi
  mosquitto_passwd -b "$passwd_file" "$name" "$password"
else
  (umask 027; touch "$passwd_file")
  mosquitto_passwd -b "$passwd_file" "$name" "$password"
fi
chmod 640 "$passwd_file" 2>/dev/null || true
echo "# added '$name' to $passwd_file; reload the broker to apply" >&2
if [ "$role" = collector ]; then
  cat <<TOML
# collector config (e.g. /etc/spinesense/collector.toml)
[mqtt]
host = "127.0.0.1"
port = 1883
username = "$name"
password = "$password"
TOML
else
  cat <<TOML
# spinesense config for device '$name' (e.g. /etc/spinesense/config.toml on its Pi)
[device]
id = "$name"

[mqtt]
host = "$host"
port = $port
username = "$name"
password = "$password"
tls = true
ca_file = "$ca"
TOML
fi
