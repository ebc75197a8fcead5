#!/usr/bin/env bash
# ejabberd.sh - run a private ejabberd (Debian 12: ejabberd 23.01, Erlang/OTP 25) from a state dir.
# The one ejabberd script of the project: the interop/firmware tests (test/interop/support/peers.ts)
# and the benchmarks (bench/lib/servers.ts) both start their peer through it, in a profile.
# It does NOT use /usr/sbin/ejabberdctl (that one insists on su'ing to the 'ejabberd' user and
# uses /etc/ejabberd + epmd); it starts erl directly, as the calling user, with:
#   - its own Erlang cookie in DIR, no epmd (fixed distribution port, bound to 127.0.0.1)
#   - its own inetrc (ERL_INETRC): static host table, NO resolv.conf => the Erlang DNS client
#     (used for the s2s SRV lookups) has no nameserver: SRV => nxdomain at once, no packet sent
#   - BUT ejabberd 23.01 (p1_xmpp 1.6.1) resolves the s2s A/AAAA records with
#     net:getaddrinfo(), i.e. glibc (/etc/hosts, then the nameserver of /etc/resolv.conf).
#     So with s2s on, the server runs in a private MOUNT namespace (unshare -m as root,
#     unshare -r -m otherwise) where DIR/etc/hosts and DIR/etc/resolv.conf ("nameserver
#     127.0.0.1") are bind-mounted over /etc/hosts and /etc/resolv.conf. Nothing on the host is
#     modified and no DNS query can leave loopback. EJABBERD_NS=none disables this; then the
#     peer names MUST be in the real /etc/hosts (see peerlab-hosts.sh), or glibc asks the real DNS.
#   - ACME disabled (23.01 would otherwise try Let's Encrypt for hosts without a valid cert)
#
# Usage:
#   ejabberd.sh start    DIR
#   ejabberd.sh stop     DIR
#   ejabberd.sh status   DIR                 # prints "running pid N (...)", exit 0 if running
#   ejabberd.sh register DIR USER PASSWORD   # one account, through ejabberd_ctl (idempotent)
#   ejabberd.sh clone    DIR PREFIX FROM TO  # copies PREFIX0's stored record to PREFIX<FROM..TO>
#   ejabberd.sh count    DIR                 # number of accounts
#   ejabberd.sh ctl      DIR <ejabberdctl command...>   e.g. connected_users, stats onlineusers
#   ejabberd.sh config   DIR
#   ejabberd.sh log      DIR
#
# Environment (defaults in brackets: lab profile / bench profile):
#   PEER_PROFILE        [lab]    lab   => the peer lab: s2s (dialback) on, in-band registration,
#                                         plain stored passwords
#                                bench => load tests: c2s only, SCRAM-SHA-256 stored verifiers,
#                                         large port/process tables
#   EJABBERD_DOMAIN     [peer-ejabberd.test / ejabberd.bench.test]
#   EJABBERD_IP         [127.0.0.3 / 127.0.1.3]
#   EJABBERD_C2S_PORT   [5222 / 25222]
#   EJABBERD_DIST_PORT  [4370 / 24370]  Erlang distribution port (127.0.0.1), unique per instance
#   EJABBERD_NODE       [peerejd / benchejd]  node name (-sname NAME@localhost)
#   EJABBERD_LOGLEVEL   [info / warning]  none|emergency|alert|critical|error|warning|notice|info|debug
#   EJABBERD_C2S_REQUIRE_TLS [0 / 1]    1 => starttls_required on c2s
#   EJABBERD_MAX_PORTS  [32000 / 262144]  Erlang port (socket) table size
#   EJABBERD_S2S        [1 / 0]      0 => no s2s listener, no dialback, no mount namespace
#   EJABBERD_S2S_PORT   [5269]
#   EJABBERD_S2S_STARTTLS [optional]  false|optional|required
#   EJABBERD_NS         [auto]   auto|root|user|none  mount-namespace mode (see above)
#   PEERLAB_HOSTS       ["peer-prosody.test=127.0.0.2 peer-ejabberd.test=127.0.0.3 broker.test=127.0.0.1"]
#
# Needs: apt-get install ejabberd openssl
#
# Copied from the peer lab (../shared/lab/) so a clone of Hanse can run its interop tests and
# benchmarks with their own addresses, ports and state dirs.
set -u

die() { echo "ejabberd.sh: ERROR: $*" >&2; exit 1; }
log() { echo "ejabberd.sh: $*" >&2; }

CMD=${1:-}
DIR=${2:-}
[ -n "$CMD" ] && [ -n "$DIR" ] || { sed -n '19,47p' "$0" >&2; exit 2; }
[ -n "$(ls -d /usr/lib/*/ejabberd-* 2>/dev/null)" ] && command -v erl >/dev/null \
  || die "ejabberd not installed (apt-get install ejabberd)"

PROFILE=${PEER_PROFILE:-lab}
case "$PROFILE" in
  lab) def_domain=peer-ejabberd.test def_ip=127.0.0.3 def_port=5222 def_dist=4370 def_node=peerejd
       def_log=info def_tls=0 def_ports=32000 def_procs=250000 def_s2s=1 ;;
  bench) def_domain=ejabberd.bench.test def_ip=127.0.1.3 def_port=25222 def_dist=24370 def_node=benchejd
         def_log=warning def_tls=1 def_ports=262144 def_procs=1000000 def_s2s=0 ;;
  *) die "PEER_PROFILE must be lab|bench" ;;
esac

mkdir -p "$DIR" || die "cannot create $DIR"
DIR=$(cd "$DIR" && pwd -P)

DOMAIN=${EJABBERD_DOMAIN:-$def_domain}
IP=${EJABBERD_IP:-$def_ip}
C2S_PORT=${EJABBERD_C2S_PORT:-$def_port}
DIST_PORT=${EJABBERD_DIST_PORT:-$def_dist}
NODE=${EJABBERD_NODE:-$def_node}@localhost
LOGLEVEL=${EJABBERD_LOGLEVEL:-$def_log}
C2S_TLS=${EJABBERD_C2S_REQUIRE_TLS:-$def_tls}
S2S=${EJABBERD_S2S:-$def_s2s}
S2S_PORT=${EJABBERD_S2S_PORT:-5269}
S2S_STARTTLS=${EJABBERD_S2S_STARTTLS:-optional}
NS_MODE=${EJABBERD_NS:-auto}
HOSTS_MAP=${PEERLAB_HOSTS:-"peer-prosody.test=127.0.0.2 peer-ejabberd.test=127.0.0.3 broker.test=127.0.0.1"}
# without s2s nothing is resolved: the Erlang host table knows localhost only
[ "$S2S" = 1 ] || HOSTS_MAP=""

# the ports start() checks and waits for
PORTS=("$C2S_PORT"); [ "$S2S" = 1 ] && PORTS+=("$S2S_PORT")
ADDRS="$DOMAIN c2s $IP:$C2S_PORT"; [ "$S2S" = 1 ] && ADDRS+=" s2s $IP:$S2S_PORT"

CFG="$DIR/etc/ejabberd.yml"
PIDFILE="$DIR/run/ejabberd.pid"
LOGFILE="$DIR/log/ejabberd.log"

# environment shared by the server and ctl nodes
export HOME="$DIR"                       # => $DIR/.erlang.cookie
export ERL_LIBS=$(dirname "$(ls -d /usr/lib/*/ejabberd-* | head -n1)")
export EJABBERD_CONFIG_PATH="$CFG"
export EJABBERD_LOG_PATH="$LOGFILE"
export ERL_INETRC="$DIR/etc/inetrc"
export ERL_CRASH_DUMP="$DIR/log/erl_crash.dump"
export ERL_MAX_PORTS=${EJABBERD_MAX_PORTS:-$def_ports} ERL_MAX_ETS_TABLES=1400
unset ERL_EPMD_ADDRESS

is_running() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$DIR/db" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

ports_open() {
  local p
  for p in "${PORTS[@]}"; do port_open "$IP" "$p" || return 1; done
}

# A throw-away hidden node that talks to ours over the fixed dist port; bounded to 120 s
# (a bench clone of many accounts takes a while).
hidden() {
  timeout 120 erl -sname "ctl$$-$RANDOM@localhost" -hidden -noinput \
    -erl_epmd_port "$DIST_PORT" -start_epmd false -dist_listen false "$@"
}
ctl() { hidden -s ejabberd_ctl -extra "$NODE" "$@"; }

# Lines only the lab profile has: plain stored passwords, in-band registration (XEP-0077).
lab_only() { [ "$PROFILE" = lab ] && printf '%s\n' "$@"; }
# Lines only a peer with s2s has (RFC 6120 §13.7 / XEP-0220 dialback with self-signed certs).
s2s_only() { [ "$S2S" = 1 ] && printf '%s\n' "$@"; }

write_config() {
  mkdir -p "$DIR/etc" "$DIR/db" "$DIR/run" "$DIR/log" "$DIR/certs" || die "mkdir failed"
  local pem="$DIR/certs/$DOMAIN.pem"
  if [ ! -s "$pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$DOMAIN" \
      -addext "subjectAltName=DNS:$DOMAIN,DNS:*.$DOMAIN" \
      -keyout "$DIR/certs/$DOMAIN.key" -out "$DIR/certs/$DOMAIN.crt" >/dev/null 2>&1 || die "openssl failed"
    cat "$DIR/certs/$DOMAIN.crt" "$DIR/certs/$DOMAIN.key" > "$pem"
    chmod 600 "$pem" "$DIR/certs/$DOMAIN.key"
  fi
  if [ ! -s "$DIR/.erlang.cookie" ]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' > "$DIR/.erlang.cookie")
    chmod 400 "$DIR/.erlang.cookie"
  fi
  if [ "$S2S" = 1 ]; then
    # glibc view inside the mount namespace
    { echo "127.0.0.1 localhost"; echo "::1 localhost ip6-localhost";
      for kv in $HOSTS_MAP; do echo "${kv#*=} ${kv%%=*}"; done; } > "$DIR/etc/hosts"
    echo "nameserver 127.0.0.1" > "$DIR/etc/resolv.conf"
  fi
  # Erlang resolver: host table only, no resolv.conf, no /etc/hosts, no native (glibc) lookups
  {
    echo '{lookup, [file]}.'
    echo '{resolv_conf, ""}.'
    echo '{hosts_file, ""}.'
    # one {host,...} entry per IP: a later entry for the same IP REPLACES the earlier one
    { echo "127.0.0.1 localhost"; for kv in $HOSTS_MAP; do echo "${kv#*=} ${kv%%=*}"; done; } |
      awk '{ if (!($1 in n)) { order[++k] = $1; n[$1] = "\"" $2 "\"" } else n[$1] = n[$1] ", \"" $2 "\"" }
           END { for (i = 1; i <= k; i++) { ip = order[i]; gsub(/\./, ",", ip); print "{host, {" ip "}, [" n[order[i]] "]}." } }'
  } > "$ERL_INETRC"
  local c2s_tls=false; [ "$C2S_TLS" = 1 ] && c2s_tls=true

  cat > "$CFG" <<EOF
# Generated by ejabberd.sh (profile $PROFILE); rewritten on every start. Change env vars, not this file.
hosts:
  - "$DOMAIN"
loglevel: $LOGLEVEL
log_rotate_count: 0
$(lab_only "hide_sensitive_log_data: false")
certfiles:
  - "$pem"
acme:
  auto: false
  ca_url: "http://127.0.0.1:9/no-acme"
default_db: mnesia
auth_method: internal
$(if [ "$PROFILE" = lab ]; then
  printf '%s\n' "auth_password_format: plain" "registration_timeout: infinity"
else
  printf '%s\n' "auth_password_format: scram" "auth_scram_hash: sha256"
fi)
$(s2s_only "outgoing_s2s_families: [ipv4]" \
  "outgoing_s2s_ipv4_address: \"$IP\"" \
  "s2s_use_starttls: $S2S_STARTTLS" \
  "s2s_dns_timeout: 2" \
  "s2s_dns_retries: 1" \
  "# after a failed s2s connect ejabberd bounces everything for that domain for a random delay" \
  "# up to this value (default 5 min!) - keep it short so a peer started later is reached quickly" \
  "s2s_max_retry_delay: 5")
listen:
  -
    port: $C2S_PORT
    ip: "$IP"
    module: ejabberd_c2s
    max_stanza_size: 262144
    backlog: 1024
    shaper: none
    access: c2s
    starttls: true
    starttls_required: $c2s_tls
$(s2s_only "  -" \
  "    port: $S2S_PORT" \
  "    ip: \"$IP\"" \
  "    module: ejabberd_s2s_in" \
  "    max_stanza_size: 524288" \
  "    backlog: 1024")
acl:
  local:
    user_regexp: ""
  loopback:
    ip:
      - 127.0.0.0/8
$(lab_only "      - ::1/128")
access_rules:
  local:
    allow: local
  c2s:
    deny: blocked
    allow: all
$(lab_only "  register:" "    allow: all" "  trusted_network:" "    allow: loopback")
  announce:
    allow: loopback
  configure:
    allow: loopback
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 5000
  c2s_shaper: none
  s2s_shaper: none
# The lab's module set (a typical small deployment).
modules:
  mod_adhoc: {}
  mod_admin_extra: {}
  mod_blocking: {}
  mod_caps: {}
  mod_carboncopy: {}
  mod_client_state: {}
  mod_disco: {}
  mod_last: {}
$(lab_only "  mod_legacy_auth: {}")
  mod_offline: {}
  mod_ping: {}
  mod_privacy: {}
  mod_private: {}
  mod_pubsub:
    access_createnode: local
    plugins:
      - flat
      - pep
$(lab_only "  mod_register:" "    access: register" "    ip_access: trusted_network")
  mod_roster: {}
$(s2s_only "  mod_s2s_dialback: {}")
  mod_stream_mgmt: {}
  mod_vcard: {}
  mod_time: {}
  mod_version: {}
EOF
}

# Prints the mount-namespace mode and fills the global WRAP with the command prefix that puts
# the server in it (see the header); without s2s nothing is resolved, so no namespace.
WRAP=()
namespace() {
  local mode=$NS_MODE
  [ "$S2S" = 1 ] || mode=none
  if [ "$mode" = auto ]; then
    if [ "$(id -u)" = 0 ] && unshare --mount true 2>/dev/null; then mode=root
    elif unshare --user --map-root-user --mount true 2>/dev/null; then mode=user
    else mode=none; fi
  fi
  case "$mode" in
    root) WRAP=(unshare --mount --propagation private --) ;;
    user) WRAP=(unshare --user --map-root-user --mount --propagation private --) ;;
    none) for kv in $HOSTS_MAP; do
            grep -qE "^[[:space:]]*${kv#*=}[[:space:]].*\b${kv%%=*}\b" /etc/hosts \
              || log "WARNING: ${kv%%=*} not in /etc/hosts; ejabberd will ask the real DNS for it"
          done ;;
    *) die "EJABBERD_NS must be auto|root|user|none" ;;
  esac
  if [ ${#WRAP[@]} -gt 0 ]; then
    WRAP+=(sh -c 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"'
           sh "$DIR/etc/hosts" "$DIR/etc/resolv.conf")
  fi
  NS_USED=$mode
}

start() {
  local pid p
  if pid=$(is_running); then log "already running (pid $pid): $ADDRS"; return 0; fi
  for p in "${PORTS[@]}"; do
    port_open "$IP" "$p" && die "$IP:$p already in use by another process"
  done
  port_open 127.0.0.1 "$DIST_PORT" && die "127.0.0.1:$DIST_PORT (Erlang dist) in use; set EJABBERD_DIST_PORT"
  write_config
  namespace
  local t0; t0=$(date +%s%3N)
  ( cd "$DIR" && exec setsid "${WRAP[@]}" erl -sname "$NODE" -noinput +K true +P "$def_procs" \
      -env ERL_CRASH_DUMP_BYTES 0 \
      -erl_epmd_port "$DIST_PORT" -start_epmd false \
      -kernel inet_dist_use_interface '{127,0,0,1}' \
      -mnesia dir "\"$DIR/db\"" -s ejabberd \
      </dev/null >>"$DIR/log/stdout.log" 2>&1 ) &
  pid=$!
  echo "$pid" > "$PIDFILE"
  # bounded wait: 60 s (first start creates the mnesia schema)
  for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$DIR/log/stdout.log" "$LOGFILE" >&2 2>/dev/null
      rm -f "$PIDFILE"
      die "ejabberd exited during startup (see $LOGFILE)"
    fi
    if ports_open; then
      log "started pid $pid ($PROFILE), $ADDRS (node $NODE, dist 127.0.0.1:$DIST_PORT, ns=$NS_USED) in $(( $(date +%s%3N) - t0 )) ms"
      return 0
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null
  die "ejabberd did not open $ADDRS within 60 s (see $LOGFILE)"
}

stop() {
  local pid
  if ! pid=$(is_running); then log "not running"; rm -f "$PIDFILE"; return 0; fi
  kill -TERM "$pid" 2>/dev/null          # OTP: SIGTERM => init:stop(), clean mnesia shutdown
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored TERM for 15 s, sending KILL"; kill -KILL "$pid" 2>/dev/null; fi
  rm -f "$PIDFILE"
  log "stopped pid $pid"
}

register() {
  local user=${3:-} pass=${4:-}
  [ -n "$user" ] && [ -n "$pass" ] || die "usage: ejabberd.sh register DIR USER PASSWORD"
  is_running >/dev/null || die "ejabberd must be running for register (ejabberd.sh start $DIR)"
  local out rc
  out=$(ctl register "$user" "$DOMAIN" "$pass" 2>&1); rc=$?
  if [ $rc -ne 0 ]; then
    # already registered => just reset the password (idempotent)
    if echo "$out" | grep -qi "already registered"; then
      ctl change_password "$user" "$DOMAIN" "$pass" >/dev/null 2>&1 || die "change_password $user failed"
      log "user $user@$DOMAIN existed, password reset"; return 0
    fi
    echo "$out" >&2; die "register $user@$DOMAIN failed (rc $rc)"
  fi
  log "registered $user@$DOMAIN"
}

clone() {
  local prefix=${3:-} from=${4:-} to=${5:-}
  [ -n "$prefix" ] && [ -n "$from" ] && [ -n "$to" ] || die "usage: ejabberd.sh clone DIR PREFIX FROM TO"
  is_running >/dev/null || die "ejabberd must be running"
  # The stored record of PREFIX0 (a #passwd{} with SCRAM verifiers), copied under new names:
  # whatever its exact shape in this version, the copies are what register would have written.
  hidden -eval "
    N = '$NODE', H = <<\"$DOMAIN\">>,
    [R] = rpc:call(N, mnesia, dirty_read, [passwd, {<<\"${prefix}0\">>, H}]),
    F = fun(I) -> mnesia:dirty_write(setelement(2, R, {list_to_binary(\"$prefix\" ++ integer_to_list(I)), H})) end,
    ok = rpc:call(N, lists, foreach, [F, lists:seq($from, $to)]),
    halt()." || die "clone failed"
}

count() {
  is_running >/dev/null || die "ejabberd must be running"
  hidden -eval "io:format(\"~p~n\", [rpc:call('$NODE', mnesia, table_info, [passwd, size])]), halt()."
}

case "$CMD" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if pid=$(is_running); then echo "running pid $pid ($DOMAIN on $IP)"; else echo "stopped"; exit 1; fi ;;
  register) register "$@" ;;
  clone) clone "$@" ;;
  count) count ;;
  ctl) shift 2; is_running >/dev/null || die "not running"; ctl "$@" ;;
  config) write_config; echo "$CFG" ;;
  log) tail -n 50 "$LOGFILE" ;;
  *) die "unknown command '$CMD' (start|stop|restart|status|register|clone|count|ctl|config|log)" ;;
esac
