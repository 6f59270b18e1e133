#!/usr/bin/env bash
# Create MQTT credentials for a device or a collector and print its config snippet.
#
#   ./add-device.sh [--passwd FILE] [--host HOST] [--port PORT] [--ca CA_FILE] NAME
#   ./add-device.sh --collector [--passwd FILE] [--acl FILE] [NAME]
#
# NAME is the device id (1-64 of A-Z a-z 0-9 _ -): it becomes the MQTT user name, the
# topic segment (the ACL's %u), the MQTT client id (use_username_as_clientid) and the
# InfluxDB device tag. --collector makes the account collector.NAME (default NAME:
# spinesense) for one collector instance; every instance needs its own, and a new one
# gets the collector rules of the ACL. A random password is made, added with
# mosquitto_passwd and printed once inside the TOML snippet. Default files are next to
# this script: mosquitto/secrets/passwd (git-ignored) and mosquitto/acl. Reload the
# broker afterwards (systemctl reload mosquitto, or `docker compose kill -s HUP mosquitto`).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
passwd_file=${SPINESENSE_PASSWD_FILE:-$here/mosquitto/secrets/passwd}
acl_file=${SPINESENSE_ACL_FILE:-$here/mosquitto/acl}
host=${SPINESENSE_MQTT_HOST:-mqtt.example.org}
port=8883
ca=/etc/spinesense/ca.crt
role=device
name=""
usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
need() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "add-device.sh: $1 needs a value" >&2; usage; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --passwd) need "$@"; passwd_file=$2; shift 2 ;;
    --acl) need "$@"; acl_file=$2; shift 2 ;;
    --host) need "$@"; host=$2; shift 2 ;;
    --port) need "$@"; port=$2; shift 2 ;;
    --ca) need "$@"; ca=$2; shift 2 ;;
    --collector) role=collector; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "add-device.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$name" ] || { echo "add-device.sh: one NAME only (got '$name' and '$1')" >&2; usage; }
       name=$1; shift ;;
  esac
done
if [ "$role" = collector ]; then
  name=${name:-spinesense}
  name=${name#collector.}
elif [ -z "$name" ]; then
  echo "add-device.sh: give a device id (e.g. alice)" >&2; usage
fi
if ! [[ "$name" =~ ^[A-Za-z0-9_-]{1,64}$ ]]; then
  echo "add-device.sh: '$name' is not a valid name; use 1-64 letters, digits, '-' or '_'" >&2
  exit 2
fi
command -v mosquitto_passwd >/dev/null || {
  echo "add-device.sh: mosquitto_passwd not found; install it: sudo apt-get install mosquitto" >&2
  exit 1; }
user=$name
[ "$role" = collector ] && user=collector.$name

# warn when a secret would land in a git work tree without being ignored
warn_if_committable() {
  local dir; dir=$(dirname "$1")
  if git -C "$dir" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
     && ! git -C "$dir" check-ignore -q "$1" 2>/dev/null; then
    echo "add-device.sh: warning: $1 is inside a git work tree and not ignored; do not commit it" >&2
  fi
}

if [ "$role" = collector ] && ! grep -qx "user $user" "$acl_file" 2>/dev/null; then
  [ -f "$acl_file" ] || { echo "add-device.sh: ACL file $acl_file not found; pass --acl FILE" >&2; exit 2; }
  # copy the rules of the first collector account's block (up to the next blank line)
  rules=$(awk '/^user collector\./ && !on {on=1; next}
               on && (/^[[:space:]]*$/ || /^(user|pattern)[[:space:]]/) {exit}
               on && !/^#/' "$acl_file")
  [ -n "$rules" ] || { echo "add-device.sh: $acl_file has no 'user collector.…' block to copy" >&2; exit 2; }
  printf '\n# collector instance %s (added by add-device.sh --collector)\nuser %s\n%s\n' \
    "$name" "$user" "$rules" >> "$acl_file"
  echo "# added 'user $user' with the collector rules to $acl_file" >&2
fi

password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 28)
mkdir -p "$(dirname "$passwd_file")"
if [ -f "$passwd_file" ]; then
  if grep -q "^${user}:" "$passwd_file"; then
    echo "add-device.sh: note: '$user' already exists in $passwd_file; its password is replaced" >&2
  fi
else
  (umask 027; touch "$passwd_file")
fi
mosquitto_passwd -b "$passwd_file" "$user" "$password"
chmod 640 "$passwd_file" 2>/dev/null || true
warn_if_committable "$passwd_file"
echo "# added '$user' to $passwd_file; reload the broker to apply" >&2
if [ "$role" = collector ]; then
  cat <<TOML
# collector '$name': /etc/spinesense/spinesense.toml on its host, run with --instance $name
# (or put the password in SPINESENSE_MQTT_PASSWORD, e.g. SPINESENSE_COLLECTOR_MQTT_PASSWORD in deploy/.env)
[mqtt]
host = "127.0.0.1"
port = 1883
username = "$user"
password = "$password"
TOML
else
  cat <<TOML
# spinesense config for device '$name': /etc/spinesense/spinesense.toml on its Pi
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
