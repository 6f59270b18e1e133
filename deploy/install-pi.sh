#!/usr/bin/env bash
# Install the spinesense edge service on Raspberry Pi OS (bookworm). Safe to run again:
# every step checks first and only changes what is missing or out of date.
#
#   sudo deploy/install-pi.sh              # install, enable and start the edge service
#   deploy/install-pi.sh --dry-run         # print the steps, change nothing
#   deploy/install-pi.sh --root DIR        # install into DIR (an image, or a test)
#
# Steps: apt packages; the `spinesense` system user in the i2c and gpio groups; a venv in
# /opt/spinesense/venv with spinesense[pi]; /etc/spinesense/spinesense.toml (only if
# absent); I2C on (raspi-config, else dtparam in config.txt); the systemd unit, enabled.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: install-pi.sh [--dry-run] [--root DIR] [--skip-pip] [--collector] [--no-start]
                     [--source DIR]
  --dry-run     print each step and what it would change; change nothing
  --root DIR    install under DIR instead of / (no apt-get, no service start; users and
                groups go to DIR/etc, the unit is enabled with systemctl --root)
  --skip-pip    create the venv but do not pip-install spinesense into it
  --collector   also install and enable spinesense-collector.service
  --no-start    enable the unit but do not (re)start it now
  --source DIR  the spinesense source tree to install (default: this script's repository)
EOF
}

DRY=0 ROOT="" SKIP_PIP=0 COLLECTOR=0 NO_START=0
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --root) ROOT=$(realpath -m "${2:?--root needs a directory}"); shift ;;
    --root=*) ROOT=$(realpath -m "${1#--root=}") ;;
    --skip-pip) SKIP_PIP=1 ;;
    --collector) COLLECTOR=1 ;;
    --no-start) NO_START=1 ;;
    --source) SRC=$(realpath "${2:?--source needs a directory}"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-pi.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

USER_NAME=spinesense
GROUPS_NEEDED=(i2c gpio)
VENV=/opt/spinesense/venv
CONF_DIR=/etc/spinesense
STATE_DIR=/var/lib/spinesense
UNIT_DIR=/etc/systemd/system
CHANGED=0

say() { echo "install-pi: $*"; }
die() { echo "install-pi: error: $*" >&2; exit 1; }
p() { printf '%s%s' "$ROOT" "$1"; }            # a system path under --root
run() {                                         # show, then do (unless --dry-run)
  echo "+ $*"
  CHANGED=1
  [ "$DRY" = 1 ] || "$@"
}

[ -f "$SRC/pyproject.toml" ] && [ -d "$SRC/deploy/systemd" ] \
  || die "$SRC is not a spinesense source tree; pass --source DIR"
if [ "$DRY" = 0 ] && [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo $0), or try --dry-run first"
fi
if [ -n "$ROOT" ]; then
  [ -d "$ROOT" ] || die "--root $ROOT does not exist"
  for f in passwd group shadow gshadow; do
    [ -f "$ROOT/etc/$f" ] || [ "$DRY" = 1 ] || die "--root needs $ROOT/etc/$f (useradd --prefix)"
  done
fi
say "installing from $SRC${ROOT:+ into $ROOT}$([ "$DRY" = 1 ] && echo ' (dry run)')"

# 1. System packages --------------------------------------------------------------------
say "1/6 system packages"
PKGS=(python3-venv python3-pip i2c-tools)
case "$(uname -m)" in aarch64|armv7l|armv6l) PKGS+=(python3-lgpio) ;; esac  # gpiozero's pins
MISSING=()
for pkg in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || MISSING+=("$pkg")
done
if [ ${#MISSING[@]} -eq 0 ]; then
  say "   all present: ${PKGS[*]}"
elif [ -n "$ROOT" ]; then
  say "   --root: not running apt-get; the image needs: ${MISSING[*]}"
else
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${MISSING[@]}"
fi

# 2. User and groups ---------------------------------------------------------------------
say "2/6 user $USER_NAME in groups ${GROUPS_NEEDED[*]}"
PREFIX=()
[ -n "$ROOT" ] && PREFIX=(--prefix "$ROOT")
has_group() { grep -q "^$1:" "$(p /etc/group)" 2>/dev/null; }
in_group() { grep "^$1:" "$(p /etc/group)" 2>/dev/null | cut -d: -f4 | tr , '\n' | grep -qx "$USER_NAME"; }
for g in "${GROUPS_NEEDED[@]}"; do
  has_group "$g" || run groupadd "${PREFIX[@]}" --system "$g"
done
if grep -q "^$USER_NAME:" "$(p /etc/passwd)" 2>/dev/null; then
  say "   user $USER_NAME exists"
else
  run useradd "${PREFIX[@]}" --system --user-group --home-dir "$STATE_DIR" --no-create-home \
    --shell /usr/sbin/nologin --comment "spinesense edge service" "$USER_NAME"
fi
for g in "${GROUPS_NEEDED[@]}"; do
  in_group "$g" || run usermod "${PREFIX[@]}" -a -G "$g" "$USER_NAME"
done
own() {  # chown by name only where the name resolves (not for --root)
  if [ -z "$ROOT" ]; then run chown "$@"; else say "   --root: would chown $*"; fi
}

# 3. Virtual environment -------------------------------------------------------------------
say "3/6 venv $VENV"
if [ -x "$(p $VENV)/bin/python" ]; then
  say "   venv exists"
else
  # system site packages: python3-lgpio from apt is gpiozero's pin backend on bookworm
  run python3 -m venv --system-site-packages "$(p $VENV)"
fi
if [ "$SKIP_PIP" = 1 ]; then
  say "   --skip-pip: not installing spinesense into the venv"
else
  run "$(p $VENV)/bin/pip" install --quiet --upgrade "$SRC[pi]"
fi
if [ -f "$SRC/docs/edge-service.md" ] \
    && ! cmp -s "$SRC/docs/edge-service.md" "$(p /opt/spinesense/docs/edge-service.md)" 2>/dev/null; then
  run install -D -m 0644 "$SRC/docs/edge-service.md" "$(p /opt/spinesense/docs/edge-service.md)"
fi

# 4. Config and state ---------------------------------------------------------------------
say "4/6 config $CONF_DIR/spinesense.toml and state $STATE_DIR"
CFG=$(p $CONF_DIR/spinesense.toml)
if [ -f "$CFG" ]; then
  say "   keeping the existing config"
else
  run install -d -m 0755 "$(p $CONF_DIR)"
  DEVICE_ID=$(hostname | tr -c 'A-Za-z0-9_\n-' '_')
  if [ "$DRY" = 1 ]; then
    echo "+ write $CFG (device.id = \"$DEVICE_ID\", state_dir = \"$STATE_DIR\")"
  else
    umask 027
    cat > "$CFG" <<EOF
# spinesense config; every key is documented in /opt/spinesense/docs and by
# \`spinesense config show\`. Secrets: put SPINESENSE_MQTT_PASSWORD=... in
# $CONF_DIR/edge.env (mode 0600) instead of this file.
[device]
id = "$DEVICE_ID"
state_dir = "$STATE_DIR"

[sensor]
bus = 1
chip = "auto"

[mqtt]
host = "localhost"
port = 1883

[haptics]
enabled = false
pin = 18
EOF
    umask 022
  fi
  own root:"$USER_NAME" "$CFG"
fi
if [ -d "$(p $STATE_DIR)" ]; then
  say "   state directory exists"
else
  run install -d -m 0750 "$(p $STATE_DIR)"
  own "$USER_NAME:$USER_NAME" "$(p $STATE_DIR)"
fi

# 5. I2C ------------------------------------------------------------------------------------
say "5/6 I2C"
if [ -z "$ROOT" ] && command -v raspi-config >/dev/null 2>&1; then
  if [ "$(raspi-config nonint get_i2c)" = 0 ]; then
    say "   I2C already enabled"
  else
    run raspi-config nonint do_i2c 0
  fi
else
  CONFIG_TXT=""
  for c in /boot/firmware/config.txt /boot/config.txt; do
    [ -f "$(p $c)" ] && { CONFIG_TXT=$(p $c); break; }
  done
  if [ -z "$CONFIG_TXT" ]; then
    say "   no config.txt found (not a Raspberry Pi?): enable I2C yourself"
  elif grep -q '^dtparam=i2c_arm=on' "$CONFIG_TXT"; then
    say "   dtparam=i2c_arm=on already in $CONFIG_TXT"
  elif grep -Eq '^#?[[:space:]]*dtparam=i2c_arm=' "$CONFIG_TXT"; then
    run sed -i -E 's/^#?[[:space:]]*dtparam=i2c_arm=.*/dtparam=i2c_arm=on/' "$CONFIG_TXT"
    say "   reboot for I2C to come up"
  else
    if [ "$DRY" = 1 ]; then echo "+ append dtparam=i2c_arm=on to $CONFIG_TXT"
    else echo "dtparam=i2c_arm=on" >> "$CONFIG_TXT"; fi
    CHANGED=1
    say "   reboot for I2C to come up"
  fi
  MOD=$(p /etc/modules-load.d/spinesense-i2c.conf)
  if [ -f "$MOD" ] && grep -qx 'i2c-dev' "$MOD"; then
    say "   i2c-dev already loaded at boot"
  elif [ "$DRY" = 1 ]; then
    echo "+ write i2c-dev to $MOD"
  else
    mkdir -p "$(dirname "$MOD")" && echo "i2c-dev" > "$MOD" && CHANGED=1
  fi
fi

# 6. systemd units ----------------------------------------------------------------------------
say "6/6 systemd"
UNITS=(spinesense-edge.service)
[ "$COLLECTOR" = 1 ] && UNITS+=(spinesense-collector.service)
for unit in "${UNITS[@]}"; do
  dest=$(p $UNIT_DIR/$unit)
  fresh=0
  if cmp -s "$SRC/deploy/systemd/$unit" "$dest"; then
    say "   $unit up to date"
  else
    run install -D -m 0644 "$SRC/deploy/systemd/$unit" "$dest"
    fresh=1
  fi
  if [ -n "$ROOT" ]; then
    [ -L "$(p /etc/systemd/system/multi-user.target.wants/$unit)" ] \
      || run systemctl --root="$ROOT" enable "$unit"
  else
    [ "$fresh" = 1 ] && run systemctl daemon-reload
    systemctl is-enabled --quiet "$unit" 2>/dev/null || run systemctl enable "$unit"
    if [ "$NO_START" = 0 ] && { [ "$CHANGED" = 1 ] || ! systemctl is-active --quiet "$unit"; }; then
      run systemctl restart "$unit"
    fi
  fi
done

if [ "$CHANGED" = 0 ]; then
  say "nothing to do: already installed"
else
  say "done. Logs: journalctl -u spinesense-edge -f; config: $CONF_DIR/spinesense.toml"
fi
