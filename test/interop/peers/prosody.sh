#!/usr/bin/env bash
# prosody.sh - run a private Prosody (Debian 12: prosody 0.12.3) from a state dir.
# The one Prosody script of the project: the interop/firmware tests (test/interop/support/peers.ts)
# and the benchmarks (bench/lib/servers.ts) both start their peer through it, in a profile.
#
# Usage:
#   prosody.sh start    DIR     # write config + self-signed cert, start, wait for ports
#   prosody.sh stop     DIR     # TERM (then KILL after 10 s) the pid we started
#   prosody.sh status   DIR     # prints "running pid N (...)" and exits 0 if running
#   prosody.sh register DIR USER PASSWORD   # create/overwrite an account (prosodyctl)
#   prosody.sh config   DIR     # only (re)write config/certs, print config path
#   prosody.sh log      DIR     # tail the log
#
# Environment (defaults in brackets: lab profile / bench profile):
#   PEER_PROFILE        [lab]   lab   => the peer lab: s2s (dialback) on, in-band registration,
#                                        SASL PLAIN allowed on plain TCP when TLS is not required
#                               bench => load tests: c2s only, epoll, SCRAM-SHA-256 verifiers
#                                        (bench/lib/servers.ts writes accounts into DIR/data)
#   PROSODY_DOMAIN      [peer-prosody.test / prosody.bench.test]
#   PROSODY_IP          [127.0.0.2 / 127.0.1.2]   any 127.0.0.0/8 address works without ip-addr setup
#   PROSODY_C2S_PORT    [5222 / 25222]
#   PROSODY_LOGLEVEL    [info / warn]   debug | info | warn | error
#   PROSODY_C2S_REQUIRE_TLS [0 / 1]     1 => c2s_require_encryption, no PLAIN without TLS
#   PROSODY_S2S         [1 / 0]         0 => no s2s listener, no s2s module, no name resolution
#   PROSODY_S2S_PORT    [5269]
#   PROSODY_S2S_REQUIRE_TLS [1]         0 => allow plaintext s2s
#   PROSODY_S2S_SECURE_AUTH [0]         1 => require CA-valid certs on s2s (breaks self-signed)
#   PEERLAB_HOSTS       ["peer-prosody.test=127.0.0.2 peer-ejabberd.test=127.0.0.3 broker.test=127.0.0.1"]
#                       static name->IP map used for s2s resolution (written to DIR/etc/hosts,
#                       read by libunbound; no DNS packet leaves the machine: unbound serves the
#                       whole "test." zone locally, SRV lookups get NXDOMAIN, A comes from hosts).
#
# Needs: apt-get install prosody lua-unbound openssl
#   (lua-unbound is REQUIRED for s2s: without it Prosody's fallback resolver ignores hosts
#    files and asks the nameserver in /etc/resolv.conf; the bench profile does without it)
#
# Copied from the peer lab (../shared/lab/) so a clone of Hanse can run its interop tests and
# benchmarks with their own addresses, ports and state dirs.
set -u

die() { echo "prosody.sh: ERROR: $*" >&2; exit 1; }
log() { echo "prosody.sh: $*" >&2; }

CMD=${1:-}
DIR=${2:-}
[ -n "$CMD" ] && [ -n "$DIR" ] || { sed -n '2,33p' "$0" >&2; exit 2; }
command -v prosody >/dev/null || die "prosody not installed (apt-get install prosody lua-unbound)"

PROFILE=${PEER_PROFILE:-lab}
case "$PROFILE" in
  lab) def_domain=peer-prosody.test def_ip=127.0.0.2 def_port=5222 def_log=info def_tls=0 def_s2s=1 ;;
  bench) def_domain=prosody.bench.test def_ip=127.0.1.2 def_port=25222 def_log=warn def_tls=1 def_s2s=0 ;;
  *) die "PEER_PROFILE must be lab|bench" ;;
esac

mkdir -p "$DIR" || die "cannot create $DIR"
DIR=$(cd "$DIR" && pwd -P)

DOMAIN=${PROSODY_DOMAIN:-$def_domain}
IP=${PROSODY_IP:-$def_ip}
C2S_PORT=${PROSODY_C2S_PORT:-$def_port}
LOGLEVEL=${PROSODY_LOGLEVEL:-$def_log}
C2S_TLS=${PROSODY_C2S_REQUIRE_TLS:-$def_tls}
S2S=${PROSODY_S2S:-$def_s2s}
S2S_PORT=${PROSODY_S2S_PORT:-5269}
S2S_TLS=${PROSODY_S2S_REQUIRE_TLS:-1}
S2S_SECURE=${PROSODY_S2S_SECURE_AUTH:-0}
HOSTS_MAP=${PEERLAB_HOSTS:-"peer-prosody.test=127.0.0.2 peer-ejabberd.test=127.0.0.3 broker.test=127.0.0.1"}

# the ports start() checks and waits for
PORTS=("$C2S_PORT"); [ "$S2S" = 1 ] && PORTS+=("$S2S_PORT")
ADDRS="$DOMAIN c2s $IP:$C2S_PORT"; [ "$S2S" = 1 ] && ADDRS+=" s2s $IP:$S2S_PORT"

CFG="$DIR/etc/prosody.cfg.lua"
PIDFILE="$DIR/run/prosody.pid"
LOGFILE="$DIR/log/prosody.log"

bool() { [ "$1" = 1 ] && echo true || echo false; }

is_running() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # make sure the pid really is *our* prosody (pid reuse)
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$CFG" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# RFC 6120 §13.7 / XEP-0220: s2s over TLS with self-signed certs, authenticated by dialback;
# names resolve from DIR/etc/hosts only.
s2s_config() {
  if [ "$S2S" = 1 ]; then
    cat <<CONF
s2s_ports = { $S2S_PORT }
-- name resolution for s2s without DNS (needs lua-unbound)
unbound = { resolvconf = "$DIR/etc/resolv.conf"; hoststxt = "$DIR/etc/hosts" }
s2s_require_encryption = $(bool "$S2S_TLS")
s2s_secure_auth = $(bool "$S2S_SECURE")
CONF
  else
    echo 's2s_ports = { }'
  fi
}

# What differs between a lab peer and a load-test peer besides s2s.
profile_config() {
  if [ "$PROFILE" = bench ]; then
    cat <<CONF
network_backend = "epoll"
-- SCRAM-SHA-256 verifiers, as bench/lib/servers.ts writes them; no in-band registration
password_hash = "SHA-256"
default_iteration_count = 4096
allow_unencrypted_plain_auth = false
CONF
  else
    local plain_ok=true; [ "$C2S_TLS" = 1 ] && plain_ok=false
    cat <<CONF
-- in-band registration (XEP-0077), unthrottled, loopback only
allow_registration = true
registration_allowlist = { "127.0.0.0/8", "::1" }
-- lab default: SASL PLAIN on plain TCP on loopback (STARTTLS still offered)
allow_unencrypted_plain_auth = $plain_ok
CONF
  fi
}

modules() {
  local m='"roster"; "saslauth"; "tls"; "disco"; "carbons"; "pep"; "private";
  "blocklist"; "vcard4"; "vcard_legacy"; "version"; "uptime"; "time"; "ping";
  "posix"; "smacks"; "csi_simple";'
  [ "$S2S" = 1 ] && m+=' "dialback"; "s2s_bidi";'
  [ "$PROFILE" = lab ] && m+=' "register"; "admin_adhoc";'
  echo "modules_enabled = {
  $m
}"
  if [ "$S2S" = 1 ]; then echo 'modules_disabled = { }'; else echo 'modules_disabled = { "s2s"; }'; fi
}

write_config() {
  mkdir -p "$DIR/etc" "$DIR/data" "$DIR/run" "$DIR/log" "$DIR/certs" || die "mkdir failed"
  # self-signed cert (kept across restarts)
  local crt="$DIR/certs/$DOMAIN.crt" key="$DIR/certs/$DOMAIN.key"
  if [ ! -s "$crt" ] || [ ! -s "$key" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$DOMAIN" \
      -addext "subjectAltName=DNS:$DOMAIN,DNS:*.$DOMAIN" \
      -keyout "$key" -out "$crt" >/dev/null 2>&1 || die "openssl failed"
    chmod 600 "$key"
  fi
  if [ "$S2S" = 1 ]; then
    # private resolver inputs for libunbound
    { echo "127.0.0.1 localhost"; echo "::1 localhost";
      for kv in $HOSTS_MAP; do echo "${kv#*=} ${kv%%=*}"; done; } > "$DIR/etc/hosts"
    # nameserver on loopback only: anything outside hosts/"test." never leaves the box
    echo "nameserver 127.0.0.1" > "$DIR/etc/resolv.conf"
  fi

  local run_as_root=false
  [ "$(id -u)" = 0 ] && run_as_root=true

  cat > "$CFG" <<EOF
-- Generated by prosody.sh (profile $PROFILE); rewritten on every start. Change env vars, not this file.
run_as_root = $run_as_root
pidfile = "$PIDFILE"
certificates = "$DIR/certs"
data_path = "$DIR/data"
log = {
  { levels = { min = "$LOGLEVEL" }, to = "file", filename = "$LOGFILE" };
}

-- network: only the chosen loopback address
interfaces = { "$IP" }
c2s_ports = { $C2S_PORT }
c2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
component_ports = { }
$(s2s_config)

$(modules)

authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = $(bool "$C2S_TLS")
$(profile_config)

VirtualHost "$DOMAIN"
  ssl = { certificate = "$crt"; key = "$key"; }
EOF
}

ports_open() {
  local p
  for p in "${PORTS[@]}"; do port_open "$IP" "$p" || return 1; done
}

start() {
  local pid p
  if pid=$(is_running); then log "already running (pid $pid): $ADDRS"; return 0; fi
  for p in "${PORTS[@]}"; do
    port_open "$IP" "$p" && die "$IP:$p already in use by another process"
  done
  write_config
  rm -f "$PIDFILE"
  local t0; t0=$(date +%s%3N)
  ( cd "$DIR" && exec setsid prosody --config "$CFG" -F </dev/null >>"$DIR/log/stdout.log" 2>&1 ) &
  pid=$!
  echo "$pid" > "$PIDFILE.launch"
  # bounded wait: 20 s
  for _ in $(seq 1 200); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$DIR/log/stdout.log" "$LOGFILE" >&2 2>/dev/null
      die "prosody exited during startup (see $LOGFILE)"
    fi
    if ports_open; then
      [ -s "$PIDFILE" ] || echo "$pid" > "$PIDFILE"
      log "started pid $pid ($PROFILE), $ADDRS in $(( $(date +%s%3N) - t0 )) ms"
      return 0
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null
  die "prosody did not open $ADDRS within 20 s (see $LOGFILE)"
}

stop() {
  local pid
  if ! pid=$(is_running); then
    # fall back to the launch pid if the pidfile was never written
    pid=$(cat "$PIDFILE.launch" 2>/dev/null)
    if [ -z "$pid" ] || ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$CFG"; then
      log "not running"; rm -f "$PIDFILE" "$PIDFILE.launch"; return 0
    fi
  fi
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored TERM, sending KILL"; kill -KILL "$pid" 2>/dev/null; fi
  rm -f "$PIDFILE" "$PIDFILE.launch"
  log "stopped pid $pid"
}

register() {
  local user=${3:-} pass=${4:-}
  [ -n "$user" ] && [ -n "$pass" ] || die "usage: prosody.sh register DIR USER PASSWORD"
  [ -f "$CFG" ] || write_config
  # prosodyctl works whether or not the server runs (writes DIR/data directly)
  prosodyctl --config "$CFG" register "$user" "$DOMAIN" "$pass" >/dev/null 2>"$DIR/log/prosodyctl.err" \
    || { cat "$DIR/log/prosodyctl.err" >&2; die "register $user@$DOMAIN failed"; }
  log "registered $user@$DOMAIN"
}

case "$CMD" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if pid=$(is_running); then echo "running pid $pid ($DOMAIN on $IP)"; else echo "stopped"; exit 1; fi ;;
  register) register "$@" ;;
  config) write_config; echo "$CFG" ;;
  log) tail -n 50 "$LOGFILE" ;;
  *) die "unknown command '$CMD' (start|stop|restart|status|register|config|log)" ;;
esac
