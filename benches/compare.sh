#!/usr/bin/env bash
# Side-by-side benchmark: Debian's Dovecot 2.3 vs our `mailserver`, on copies of one
# deterministic corpus, loopback only, every run bounded in time.
#
# Targets, run in alternation each round (A B A B ...):
#   dovecot-default  Dovecot, shipped process model (a login process per connection)
#   dovecot-hp       Dovecot, `service_count = 0` for imap-login and pop3-login
#   dovecot-hp-rawlog  dovecot-hp with rawlog on for every session (Dovecot's full transcript:
#                    `rawlog_dir` after login, `imap-login -R`/`pop3-login -R` before it);
#                    not in the default TARGETS
#   mailserver-l0    target/release/mailserver, protocol logging level 0
#   mailserver-l5    target/release/mailserver, protocol logging level 5 (full transcript)
#   mailserver-l0-metrics  as mailserver-l0 with [metrics] on, scraped every 1 s by curl
#                    during the run (not in the default TARGETS: TARGETS="mailserver-l0
#                    mailserver-l0-metrics" WORKLOADS="pop3-retrieve imap-fetch")
# The mailserver targets are skipped with a message if it does not start within 10 s.
#
# Workloads: mailbench's (pop3-retrieve imap-fetch imap-append login-storm-pop3
# login-storm-imap idle-hold lmtp-deliver) and imap-resync (benches/resync.py). lmtp-deliver
# (LMTP_CLIENTS clients delivering LMTP_SIZE-byte messages to bench1..benchN over LMTP,
# Dovecot's `lmtp` against our [lmtp] listener) is not in the default list: it grows the
# INBOXes the other workloads read. Run it alone: WORKLOADS=lmtp-deliver.
#
# Settings (environment): ROUNDS=3 DURATION=10 CLIENTS=4 USERS=8 MESSAGES=200 SEED=1
#   LMTP_CLIENTS=20 LMTP_SIZE=20480
#   IDLE_CONNS=100 IDLE_HOLD=5 TLS=0 COMPRESS=0 PORT_BASE=21100 WORKLOADS="..." TARGETS="..."
#   COMPRESS=1: every IMAP workload turns on COMPRESS=DEFLATE (RFC 4978) after LOGIN, and
#   Dovecot loads its imap_zlib plugin; the results carry wire_bytes_in/out
#   RESYNC_SAMPLES=20 (imap-resync: resyncs per target and round, benches/resync.py)
#   SORT_SAMPLES=10 (imap-sort: warm SORTs and THREADs per target and round, benches/sort.py;
#   each round also restarts the target with the folder's cache deleted before each cold
#   SORT and each cold THREAD: COLD_SAMPLES=3 of each; the round's figure is their median)
#   MAILBENCH=path (default: build target/release/mailbench) MAILSERVER=path
#   WORK=dir (scratch, default mktemp, removed at the end unless KEEP_WORK=1) OUT=dir (raw results + charts, default benches/results)
#   REPORT=file (default BENCHMARKS.md at the repository root)
# See benches/README.md.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-4}
USERS=${USERS:-8}
MESSAGES=${MESSAGES:-200}
SEED=${SEED:-1}
IDLE_CONNS=${IDLE_CONNS:-100}
IDLE_HOLD=${IDLE_HOLD:-5}
TLS=${TLS:-0}
COMPRESS=${COMPRESS:-0}
PORT_BASE=${PORT_BASE:-21100}
WORKLOADS=${WORKLOADS:-"pop3-retrieve imap-fetch imap-append login-storm-pop3 login-storm-imap idle-hold imap-resync imap-sort"}
RESYNC_SAMPLES=${RESYNC_SAMPLES:-20}
SORT_SAMPLES=${SORT_SAMPLES:-10}
COLD_SAMPLES=${COLD_SAMPLES:-3}
LMTP_CLIENTS=${LMTP_CLIENTS:-20}
LMTP_SIZE=${LMTP_SIZE:-20480}
TARGETS=${TARGETS:-"dovecot-default mailserver-l0 dovecot-hp mailserver-l5"}
PASS=benchpass
OUT=${OUT:-$REPO/benches/results}
REPORT=${REPORT:-$REPO/BENCHMARKS.md}
WORK_MADE=0
if [ -z "${WORK:-}" ]; then WORK=$(mktemp -d /tmp/mailbench.XXXXXX); WORK_MADE=1; fi
# The scratch directory (corpus copies, level-5 protocol logs: several GB) goes when the runs
# end, unless it was given as WORK= or KEEP_WORK=1.
remove_work() { if [ "$WORK_MADE" = 1 ] && [ "${KEEP_WORK:-0}" != 1 ]; then rm -rf "$WORK"; fi; }

log() { printf '[compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (Dovecot needs mail_uid switching; see DOVECOT.md)"
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 50 ] || die "ROUNDS must be 1..50"
[ "$DURATION" -ge 1 ] && [ "$DURATION" -le 3600 ] || die "DURATION must be 1..3600 s"

# --- prerequisites -----------------------------------------------------------------------
if ! command -v dovecot >/dev/null || ! [ -x /usr/lib/dovecot/imap ] || ! [ -x /usr/lib/dovecot/pop3 ] || ! [ -x /usr/lib/dovecot/lmtp ]; then
  log "installing Debian's dovecot-imapd dovecot-pop3d dovecot-lmtpd"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y --no-install-recommends dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd
fi
command -v openssl >/dev/null || die "openssl is needed for the test certificate"

cd "$REPO"
if [ -z "${MAILBENCH:-}" ]; then
  log "building mailbench (release)"
  cargo build --release --bin mailbench >&2
  MAILBENCH=$REPO/target/release/mailbench
fi
[ -x "$MAILBENCH" ] || die "no mailbench binary at $MAILBENCH"
if [ -z "${MAILSERVER:-}" ] && [ ! -x "$REPO/target/release/mailserver" ]; then
  log "building mailserver (release)"
  cargo build --release --bin mailserver >&2 || log "mailserver does not build: its half will be skipped"
fi
MAILSERVER=${MAILSERVER:-$REPO/target/release/mailserver}

# idle-hold opens IDLE_CONNS sockets; Dovecot started from here inherits the limit too.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -gt $((IDLE_CONNS * 2 + 100)) ] || log "warning: ulimit -n $(ulimit -n) is low for IDLE_CONNS=$IDLE_CONNS"
inotify_max=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 0)
[ "$inotify_max" -ge "$IDLE_CONNS" ] || log "note: fs.inotify.max_user_instances=$inotify_max < IDLE_CONNS: Dovecot's IDLE falls back to polling for the rest (its log says so)"
mkdir -p "$WORK" "$OUT"
chmod 755 "$WORK"   # Dovecot's mail processes (uid mail) must traverse it
RESULTS=$OUT/results.jsonl
COMMANDS=$OUT/commands.txt
: >"$RESULTS"
: >"$COMMANDS"
rm -f "$OUT/rawlog-check.txt"
log "scratch $WORK, results $OUT"

# --- corpus and two copies -----------------------------------------------------------------
CMD=("$MAILBENCH" corpus --seed "$SEED" --out "$WORK/corpus" --users "$USERS" --messages "$MESSAGES" --password "$PASS")
echo "${CMD[*]}" >>"$COMMANDS"
rm -rf "$WORK/corpus"
"${CMD[@]}"
install -m 644 "$WORK/corpus/users" "$WORK/users"
rm -rf "$WORK/dovecot-mail" "$WORK/ms"
mkdir -p "$WORK/dovecot-mail" "$WORK/ms/mail"
for u in $(seq 1 "$USERS"); do
  cp -a "$WORK/corpus/bench$u" "$WORK/dovecot-mail/"   # copy A
  cp -a "$WORK/corpus/bench$u" "$WORK/ms/mail/"        # copy B
done
chown -R mail:mail "$WORK/dovecot-mail"

mkdir -p "$WORK/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=bench.example \
  -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >/dev/null 2>&1
chmod 644 "$WORK/tls/"*.pem

# --- ports -------------------------------------------------------------------------------
DC_IMAP=$((PORT_BASE + 0)); DC_IMAPS=$((PORT_BASE + 1)); DC_POP3=$((PORT_BASE + 2)); DC_POP3S=$((PORT_BASE + 3))
MS_IMAP=$((PORT_BASE + 10)); MS_IMAPS=$((PORT_BASE + 11)); MS_POP3=$((PORT_BASE + 12)); MS_POP3S=$((PORT_BASE + 13))
DC_LMTP=$((PORT_BASE + 4)); MS_LMTP=$((PORT_BASE + 14)); MS_METRICS=$((PORT_BASE + 15))

wait_port() { # port seconds [pid] -> 0 when something accepts on 127.0.0.1:port
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then return 1; fi  # it exited
    sleep 0.1
  done
  return 1
}

# --- Dovecot -------------------------------------------------------------------------------
DC_DIR=""
dovecot_conf() { # mode -> writes $DC_DIR/dovecot.conf
  local mode=$1 login_extra="" imap_login_extra="" pop3_login_extra="" rawlog_conf=""
  case $mode in hp | hp-rawlog) login_extra="service_count = 0" ;; esac
  if [ "$mode" = hp-rawlog ]; then
    # Every byte of every session, Dovecot 2.3's way (doc.dovecot.org, "Rawlog"): the
    # post-login imap/pop3 processes write <date>-<pid>.in/.out into rawlog_dir (v2.2.26+);
    # the login processes write the pre-login part into $base_dir/login/rawlogs (-R,
    # v2.3.2+). start_dovecot makes both directories, stop_dovecot counts the files.
    imap_login_extra="executable = imap-login -R rawlogs"
    pop3_login_extra="executable = pop3-login -R rawlogs"
    rawlog_conf="rawlog_dir = $DC_DIR/rawlog"
  fi
  local zlib_conf=""
  # shellcheck disable=SC2016 # Dovecot's own $mail_plugins, not a shell variable.
  [ "$COMPRESS" = 1 ] && zlib_conf='protocol imap {
  mail_plugins = $mail_plugins imap_zlib
}'
  cat >"$DC_DIR/dovecot.conf" <<EOF
# Written by benches/compare.sh: private loopback instance ($mode process model).
instance_name = mailbench-$mode
base_dir = $DC_DIR/run
state_dir = $DC_DIR/state
log_path = $DC_DIR/dovecot.log
listen = 127.0.0.1
protocols = imap pop3 lmtp
ssl = yes
ssl_cert = <$WORK/tls/cert.pem
ssl_key = <$WORK/tls/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_uid = mail
mail_gid = mail
first_valid_uid = $(id -u mail)
first_valid_gid = $(id -g mail)
mail_location = maildir:$WORK/dovecot-mail/%u
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $WORK/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $WORK/users
  default_fields = home=$WORK/dovecot-mail/%u
}
pop3_uidl_format = %08Xu%08Xv
# LMTP recipients are bench1@bench.test; the users file has bare names (as our
# [lmtp] strips the domain when the users file does).
auth_username_format = %Ln
$zlib_conf
$rawlog_conf
mail_max_userip_connections = 100000
default_process_limit = 5000
default_client_limit = 50000
service imap-login {
  inet_listener imap {
    port = $DC_IMAP
  }
  inet_listener imaps {
    port = $DC_IMAPS
  }
  $login_extra
  $imap_login_extra
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $DC_LMTP
  }
}
service pop3-login {
  inet_listener pop3 {
    port = $DC_POP3
  }
  inet_listener pop3s {
    port = $DC_POP3S
  }
  $login_extra
  $pop3_login_extra
}
EOF
}

SERVER_PID=""
start_dovecot() { # mode
  DC_DIR=$WORK/dovecot-$1
  mkdir -p "$DC_DIR/run" "$DC_DIR/state"
  if [ "$1" = hp-rawlog ]; then
    # rawlog_dir is written by the mail user, the -R logs by the login user (dovenull).
    mkdir -p "$DC_DIR/rawlog" "$DC_DIR/run/login/rawlogs"
    chown mail:mail "$DC_DIR/rawlog"
    chown dovenull "$DC_DIR/run/login/rawlogs"
    chmod 0700 "$DC_DIR/run/login/rawlogs"
  fi
  dovecot_conf "$1"
  echo "dovecot -c $DC_DIR/dovecot.conf" >>"$COMMANDS"
  dovecot -c "$DC_DIR/dovecot.conf" >"$DC_DIR/stdout" 2>&1 || { cat "$DC_DIR/stdout" >&2; return 1; }
  # The daemonized master writes master.pid a moment after `dovecot` returns: wait for it.
  local i
  for ((i = 0; i < 100; i++)); do
    [ -s "$DC_DIR/run/master.pid" ] && break
    sleep 0.1
  done
  SERVER_PID=$(cat "$DC_DIR/run/master.pid" 2>/dev/null || true)
  [ -n "$SERVER_PID" ] || { log "dovecot wrote no master.pid"; tail "$DC_DIR/dovecot.log" >&2; return 1; }
  wait_port "$DC_IMAP" 10 "$SERVER_PID" && wait_port "$DC_POP3" 10 "$SERVER_PID" \
    && wait_port "$DC_LMTP" 10 "$SERVER_PID" \
    || { tail "$DC_DIR/dovecot.log" >&2; return 1; }
  IMAP_PORT=$DC_IMAP; POP3_PORT=$DC_POP3; PLAIN_IMAP_PORT=$DC_IMAP; LMTP_PORT=$DC_LMTP
  [ "$TLS" = 1 ] && { IMAP_PORT=$DC_IMAPS; POP3_PORT=$DC_POP3S; }
  return 0
}
stop_dovecot() {
  [ -n "$DC_DIR" ] && [ -f "$DC_DIR/dovecot.conf" ] || return 0
  if [ -d "$DC_DIR/rawlog" ] && [ -n "$SERVER_PID" ]; then
    # Proof that rawlog was on: the files this run's sessions left; then they go (a
    # run writes GBs, as level 5 does: see stop_mailserver).
    local post pre mb
    post=$(find "$DC_DIR/rawlog" -type f | wc -l)
    pre=$(find "$DC_DIR/run/login/rawlogs" -type f 2>/dev/null | wc -l)
    mb=$(du -sm "$DC_DIR/rawlog" "$DC_DIR/run/login/rawlogs" 2>/dev/null | awk '{s += $1} END {print s + 0}')
    log "dovecot-hp-rawlog: $post post-login rawlog files, $pre pre-login, $mb MB"
    echo "dovecot-hp-rawlog run ending $(date -u +%H:%M:%S): $post post-login rawlog files, $pre pre-login, $mb MB" >>"$OUT/rawlog-check.txt"
    [ "$post" -gt 0 ] || log "WARNING: dovecot-hp-rawlog wrote no rawlog files"
    find "$DC_DIR/rawlog" "$DC_DIR/run/login/rawlogs" -type f -delete 2>/dev/null || true
  fi
  doveadm -c "$DC_DIR/dovecot.conf" stop >/dev/null 2>&1 || true
  local i
  for ((i = 0; i < 100; i++)); do
    [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  # Its login/mail processes may linger a moment with the listening sockets.
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$DC_IMAP") 2>/dev/null || break
    sleep 0.1
  done
  SERVER_PID=""
}

# --- mailserver ----------------------------------------------------------------------------
MS_PID=""
MS_OK=1
mailserver_conf() { # level [metrics: 1 = on]
  # Its own directory: the daemon watches the directory that holds its config (ARCHITECTURE.md, "Configuration and reload").
  mkdir -p "$WORK/ms-logs" "$WORK/ms-etc"
  cat >"$WORK/ms-etc/mailserver.toml" <<EOF
# Written by benches/compare.sh (see README.md, "Configuration").
[server]
hostname = "bench.example"
data_dir = "$WORK/ms"

[imap]
listen = ["127.0.0.1:$MS_IMAP"]
tls_listen = ["127.0.0.1:$MS_IMAPS"]

[pop3]
listen = ["127.0.0.1:$MS_POP3"]
tls_listen = ["127.0.0.1:$MS_POP3S"]

[lmtp]
listen = ["127.0.0.1:$MS_LMTP"]

[tls]
cert = "$WORK/tls/cert.pem"
key = "$WORK/tls/key.pem"

[auth]
users_file = "$WORK/users"
allow_plaintext = true

[limits]
max_connections = 50000
max_connections_per_ip = 50000

[ParametersSystem]
"POP3 Protocol Logging Level" = $1
"POP3 Protocol Log Path" = "$WORK/ms-logs"
"IMAP Protocol Logging Level" = $1
"IMAP Protocol Log Path" = "$WORK/ms-logs"
"LMTP Protocol Logging Level" = $1
"LMTP Protocol Log Path" = "$WORK/ms-logs"
EOF
  if [ "${2:-0}" = 1 ]; then
    printf '\n[metrics]\nlisten = "127.0.0.1:%s"\n' "$MS_METRICS" >>"$WORK/ms-etc/mailserver.toml"
  fi
}
start_mailserver() { # level [binary] [metrics: 1 = on, scraped every 1 s]
  [ "$MS_OK" = 1 ] || return 1
  local bin=${2:-$MAILSERVER}
  if [ ! -x "$bin" ]; then
    log "SKIP mailserver: no binary at $bin"; MS_OK=0; return 1
  fi
  mailserver_conf "$1" "${3:-0}"
  echo "$bin --config $WORK/ms-etc/mailserver.toml run" >>"$COMMANDS"
  "$bin" --config "$WORK/ms-etc/mailserver.toml" run >"$WORK/mailserver.log" 2>&1 &
  MS_PID=$!
  if ! wait_port "$MS_IMAP" 10 "$MS_PID" || ! wait_port "$MS_POP3" 1 "$MS_PID" || ! wait_port "$MS_LMTP" 1 "$MS_PID"; then
    log "SKIP mailserver: it exited or was not listening within 10 s (log: $WORK/mailserver.log)"
    tail -5 "$WORK/mailserver.log" >&2 || true
    stop_mailserver
    MS_OK=0
    return 1
  fi
  SERVER_PID=$MS_PID
  if [ "${3:-0}" = 1 ]; then
    # A Prometheus-like scraper: one GET /metrics a second while the server runs (bounded:
    # the loop ends with the server). Each answer's status is kept for the log.
    : >"$WORK/scrapes.txt"
    (while kill -0 "$MS_PID" 2>/dev/null; do
       curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 "http://127.0.0.1:$MS_METRICS/metrics" >>"$WORK/scrapes.txt" || true
       sleep 1
     done) &
    SCRAPER_PID=$!
  fi
  IMAP_PORT=$MS_IMAP; POP3_PORT=$MS_POP3; PLAIN_IMAP_PORT=$MS_IMAP; LMTP_PORT=$MS_LMTP
  [ "$TLS" = 1 ] && { IMAP_PORT=$MS_IMAPS; POP3_PORT=$MS_POP3S; }
  return 0
}
SCRAPER_PID=""
stop_mailserver() {
  if [ -n "$SCRAPER_PID" ]; then
    kill "$SCRAPER_PID" 2>/dev/null || true
    wait "$SCRAPER_PID" 2>/dev/null || true
    SCRAPER_PID=""
    log "metrics scrapes: $(grep -c '^200$' "$WORK/scrapes.txt" || true) answered 200, $(grep -vc '^200$' "$WORK/scrapes.txt" || true) not"
  fi
  [ -n "$MS_PID" ] || return 0
  # Level-5 logs of a run are GBs: count them, then remove them so that rounds do not fill
  # the disk (the next run starts a new L???????.log anyway).
  local mb
  mb=$(du -sm "$WORK/ms-logs" 2>/dev/null | awk '{print $1 + 0}')
  if [ "${mb:-0}" -gt 0 ]; then
    echo "mailserver run ending $(date -u +%H:%M:%S): protocol logs $mb MB" >>"$OUT/rawlog-check.txt"
  fi
  kill -TERM "$MS_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$MS_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$MS_PID" 2>/dev/null || true
  wait "$MS_PID" 2>/dev/null || true
  MS_PID=""; SERVER_PID=""
  rm -f "$WORK"/ms-logs/L*.log
}

cleanup() { stop_dovecot; stop_mailserver; remove_work; }
trap cleanup EXIT

start_target() {
  case $1 in
    dovecot-default) start_dovecot default ;;
    dovecot-hp) start_dovecot hp ;;
    dovecot-hp-rawlog) start_dovecot hp-rawlog ;;
    mailserver-l0) start_mailserver 0 ;;
    mailserver-l5) start_mailserver 5 ;;
    mailserver-l0-metrics) start_mailserver 0 "$MAILSERVER" 1 ;;
    # A static musl build (MAILSERVER_MUSL=), level 0: why the image ships static glibc instead.
    mailserver-musl) start_mailserver 0 "${MAILSERVER_MUSL:-$REPO/target/x86_64-unknown-linux-musl/release/mailserver}" ;;
    *) die "unknown target $1" ;;
  esac
}
stop_target() { case $1 in dovecot-*) stop_dovecot ;; mailserver-*) stop_mailserver ;; esac; }

# --- workloads -------------------------------------------------------------------------------
POP3_CLIENTS=$((CLIENTS < USERS ? CLIENTS : USERS))   # one POP3 session per maildrop
tls_flag=()
[ "$TLS" = 1 ] && tls_flag=(--tls)
zip_flag=()
[ "$COMPRESS" = 1 ] && zip_flag=(--compress)

# The per-folder cache of bench1's `Sorted` folder (benches/sort.py), deleted for a cold
# SORT/THREAD: ours is mailserver.cache; Dovecot's dovecot.index.cache and .thread (its
# dovecot.index keeps the UIDs, as our dovecot-uidlist does).
clear_sort_cache() { # target
  case $1 in
    dovecot-*) rm -f "$WORK/dovecot-mail/bench1/.Sorted/dovecot.index.cache" "$WORK/dovecot-mail/bench1/.Sorted/dovecot.index.thread" ;;
    mailserver-*) rm -f "$WORK/ms/mail/bench1/.Sorted/mailserver.cache" ;;
  esac
}

run_workload() { # target round workload [duration]
  local target=$1 round=$2 wl=$3 dur=${4:-$DURATION} args
  local tlsf=("${tls_flag[@]}")
  [ "$wl" = lmtp-deliver ] && tlsf=()
  local common=(--users-file-prefix bench --users "$USERS" --pass "$PASS" "${tlsf[@]}" --quiet --json)
  case $wl in
    pop3-retrieve) args=(pop3-retrieve --port "$POP3_PORT" --clients "$POP3_CLIENTS") ;;
    imap-fetch) args=(imap-fetch --port "$IMAP_PORT" --clients "$CLIENTS" "${zip_flag[@]}") ;;
    imap-append) args=(imap-append --port "$IMAP_PORT" --clients "$CLIENTS" --mailbox Archive --seed "$SEED" "${zip_flag[@]}") ;;
    login-storm-pop3) args=(login-storm --proto pop3 --port "$POP3_PORT" --clients "$POP3_CLIENTS") ;;
    login-storm-imap) args=(login-storm --proto imap --port "$IMAP_PORT" --clients "$CLIENTS" "${zip_flag[@]}") ;;
    # Plain LMTP always (it has no implicit-TLS port).
    lmtp-deliver) args=(lmtp-deliver --port "$LMTP_PORT" --clients "$LMTP_CLIENTS" --size "$LMTP_SIZE" --domain bench.test --seed "$SEED") ;;
    idle-hold) args=(idle-hold --port "$IMAP_PORT" --clients "$IDLE_CONNS" --hold "$IDLE_HOLD" "${zip_flag[@]}") ;;
    imap-resync)
      # Not mailbench: benches/resync.py (reconnect-and-resync of a 10,000-message folder
      # after 10 changes, with QRESYNC and without it; two JSON rows). Plain IMAP only.
      [ "$round" = warmup ] && return 0
      local cmd=(python3 "$REPO/benches/resync.py" --port "${PLAIN_IMAP_PORT:-$IMAP_PORT}" --user bench1
                 --password "$PASS" --samples "$RESYNC_SAMPLES" --seed "$SEED" --label "$target/r$round")
      echo "${cmd[*]}" >>"$COMMANDS"
      local rows
      if rows=$(timeout 900 "${cmd[@]}"); then
        echo "$rows" >>"$RESULTS"
        log "$target r$round $wl: $(echo "$rows" | grep -o '"workload": "[a-z-]*"\|"p50_ms": [0-9.]*\|"bytes_per_op": [0-9.]*' | tr '\n' ' ')"
      else
        log "$target r$round $wl: resync.py failed"
      fi
      return 0 ;;
    imap-sort)
      # Not mailbench: benches/sort.py (UID SORT (REVERSE DATE) and UID THREAD REFERENCES
      # of a 10,000-message folder). Warm: repeated on a running server. Cold: the target
      # restarted with the folder's cache files deleted, one command each. Plain IMAP only.
      [ "$round" = warmup ] && return 0
      local rows kind sortcmd
      sortcmd=(python3 "$REPO/benches/sort.py" --user bench1 --password "$PASS" --seed "$SEED"
               --label "$target/r$round")
      echo "${sortcmd[*]} --port ${PLAIN_IMAP_PORT:-$IMAP_PORT} --samples $SORT_SAMPLES" >>"$COMMANDS"
      if rows=$(timeout 1800 "${sortcmd[@]}" --port "${PLAIN_IMAP_PORT:-$IMAP_PORT}" --samples "$SORT_SAMPLES"); then
        echo "$rows" >>"$RESULTS"
        log "$target r$round $wl: $(echo "$rows" | grep -o '"workload": "[a-z-]*"\|"p50_ms": [0-9.]*' | tr '\n' ' ')"
      else
        log "$target r$round $wl: sort.py failed"
      fi
      for kind in $(for k in sort thread; do for _ in $(seq 1 "$COLD_SAMPLES"); do echo $k; done; done); do
        stop_target "$target"
        clear_sort_cache "$target"
        start_target "$target" || { log "$target did not restart"; return 0; }
        echo "${sortcmd[*]} --port ${PLAIN_IMAP_PORT:-$IMAP_PORT} --cold $kind" >>"$COMMANDS"
        if rows=$(timeout 900 "${sortcmd[@]}" --port "${PLAIN_IMAP_PORT:-$IMAP_PORT}" --cold "$kind"); then
          echo "$rows" >>"$RESULTS"
          log "$target r$round $wl cold $kind: $(echo "$rows" | grep -o '"p50_ms": [0-9.]*')"
        else
          log "$target r$round $wl: sort.py --cold $kind failed"
        fi
      done
      return 0 ;;
    *) die "unknown workload $wl" ;;
  esac
  [ -n "$SERVER_PID" ] || die "no server PID for $target"
  args+=(--duration "$dur" --server-pid "$SERVER_PID" --label "$target/r$round" "${common[@]}")
  echo "$(basename "$MAILBENCH") ${args[*]}" >>"$COMMANDS"
  local line
  if line=$(timeout $((dur + IDLE_HOLD + 180)) "$MAILBENCH" "${args[@]}"); then
    if [ "$round" != warmup ]; then echo "$line" >>"$RESULTS"; fi
    log "$target r$round $wl: $(echo "$line" | grep -o '"ops_per_sec":[0-9.]*\|"wire_bytes_in":[0-9]*\|"pss_kb_per_conn":[-0-9.]*\|"errors":[0-9]*' | tr '\n' ' ')"
  else
    log "$target r$round $wl: mailbench failed"
  fi
}

for round in $(seq 1 "$ROUNDS"); do
  for target in $TARGETS; do
    case $target in mailserver-*) [ "$MS_OK" = 1 ] || continue ;; esac
    if ! start_target "$target"; then
      log "$target did not start"
      continue
    fi
    if [ "$round" = 1 ]; then
      # Untimed pass so both servers build their indexes/uidlists before measurement.
      run_workload "$target" warmup imap-fetch 2
      run_workload "$target" warmup pop3-retrieve 2
    fi
    for wl in $WORKLOADS; do
      run_workload "$target" "$round" "$wl"
    done
    stop_target "$target"
  done
done
trap - EXIT
cleanup

# --- report --------------------------------------------------------------------------------
MACHINE=$OUT/machine.txt
{
  echo "nproc: $(nproc)"
  lscpu | grep -E '^(Model name|Architecture|CPU\(s\)|Thread|Core|Socket|CPU max MHz)' || true
  free -m
  uname -srm
  dovecot --version | sed 's/^/dovecot /'
} >"$MACHINE" 2>&1

PY=python3
if ! $PY -c 'import matplotlib' 2>/dev/null; then
  log "installing matplotlib with pip (for the charts)"
  $PY -m pip install --quiet matplotlib >&2 || log "matplotlib install failed: charts will be skipped"
fi
SETTINGS="ROUNDS=$ROUNDS DURATION=$DURATION CLIENTS=$CLIENTS LMTP_CLIENTS=$LMTP_CLIENTS LMTP_SIZE=$LMTP_SIZE USERS=$USERS MESSAGES=$MESSAGES SEED=$SEED IDLE_CONNS=$IDLE_CONNS IDLE_HOLD=$IDLE_HOLD TLS=$TLS SORT_SAMPLES=$SORT_SAMPLES COLD_SAMPLES=$COLD_SAMPLES"
$PY - "$RESULTS" "$MACHINE" "$COMMANDS" "$OUT" "$REPORT" "$SETTINGS" "$MS_OK" <<'PYEOF'
import json, os, statistics, sys
results, machine, commands, out, report, settings, ms_ok = sys.argv[1:8]
rows = [json.loads(l) for l in open(results) if l.strip()]
for r in rows:
    r["target"], r["round"] = r["label"].split("/")

# Primary metric per workload and whether higher is better.
def metric(wl):
    return ("pss_kb_per_conn", False) if wl == "idle-hold" else ("ops_per_sec", True)

workloads = list(dict.fromkeys(r["workload"] for r in rows))
targets = list(dict.fromkeys(r["target"] for r in rows))
def vals(wl, t, key):
    return [r[key] for r in rows if r["workload"] == wl and r["target"] == t and r.get(key) is not None]
def by_round(wl, t, key):
    # Runs with errors (or no operation at all) are not compared: a rate of a broken run
    # measures the failure, not the server.
    # Several rows of one round (imap-sort's cold samples): the round's median.
    per = {}
    for r in rows:
        if (r["workload"] == wl and r["target"] == t and r.get(key) is not None
                and r.get("errors", 0) == 0 and r.get("ops", 1) != 0):
            per.setdefault(r["round"], []).append(r[key])
    return {k: statistics.median(v) for k, v in per.items()}
def fmt(x, nd=1):
    return "-" if x is None else f"{x:,.{nd}f}"
def med(xs):
    return statistics.median(xs) if xs else None

L = []
L.append("# Benchmarks: mailserver vs Dovecot 2.3\n")
L.append("Generated by `benches/compare.sh` (see `benches/README.md`). Loopback only; client and "
         "servers share the machine, so absolute numbers are machine-bound; the ratios are the result.\n")
if ms_ok != "1":
    L.append("**mailserver was skipped**: it exited or was not listening within 10 s (or no binary); only Dovecot rows are shown.\n")
L.append(f"Settings: `{settings}`\n")
L.append("## Machine\n\n```\n" + open(machine).read().strip() + "\n```\n")
L.append("## Results (median over rounds; min..max in brackets)\n")
for wl in workloads:
    key, higher = metric(wl)
    L.append(f"### {wl}\n")
    if wl == "idle-hold":
        L.append("| target | PSS KiB/conn | RSS KiB/conn | connections | errors |\n|---|---|---|---|---|")
        for t in targets:
            p = vals(wl, t, "pss_kb_per_conn")
            if not p: continue
            L.append(f"| {t} | {fmt(med(p))} [{fmt(min(p))}..{fmt(max(p))}] | {fmt(med(vals(wl,t,'rss_kb_per_conn')))} | "
                     f"{fmt(med(vals(wl,t,'connections')),0)} | {sum(vals(wl,t,'errors'))} |")
    else:
        L.append("| target | ops/s | MB/s | p50 ms | p99 ms | server CPU ms/op | errors |\n|---|---|---|---|---|---|---|")
        for t in targets:
            o = vals(wl, t, "ops_per_sec")
            if not o: continue
            L.append(f"| {t} | {fmt(med(o))} [{fmt(min(o))}..{fmt(max(o))}] | {fmt(med(vals(wl,t,'mb_per_sec')),2)} | "
                     f"{fmt(med(vals(wl,t,'p50_ms')),2)} | {fmt(med(vals(wl,t,'p99_ms')),2)} | "
                     f"{fmt(med(vals(wl,t,'server_cpu_ms_per_op')),3)} | {sum(vals(wl,t,'errors'))} |")
    L.append("")

# imap-resync: octets on the wire per resync, QRESYNC vs a client without it (issue 15).
if any(w.startswith("imap-resync-") for w in workloads):
    L.append("### imap-resync: octets per resync (median)\n")
    L.append("Reconnect-and-resync of a 10,000-message folder after 10 flag changes "
             "(`benches/resync.py`).\n")
    L.append("| target | QRESYNC octets | full FETCH octets | full / QRESYNC | QRESYNC p50 ms | full p50 ms |\n|---|---|---|---|---|---|")
    for t in targets:
        q, f = vals("imap-resync-qresync", t, "bytes_per_op"), vals("imap-resync-full", t, "bytes_per_op")
        if not q or not f: continue
        L.append(f"| {t} | {fmt(med(q),0)} | {fmt(med(f),0)} | {med(f)/med(q):.0f}x | "
                 f"{fmt(med(vals('imap-resync-qresync', t, 'p50_ms')),2)} | {fmt(med(vals('imap-resync-full', t, 'p50_ms')),2)} |")
    L.append("")

# imap-sort: time per SORT / THREAD of a 10,000-message folder (issue 16).
if any(w.startswith("imap-sort-") or w.startswith("imap-thread-") for w in workloads):
    L.append("### imap-sort: ms per command (median)\n")
    L.append("`UID SORT (REVERSE DATE) UTF-8 ALL` and `UID THREAD REFERENCES UTF-8 ALL` of a "
             "10,000-message folder (`benches/sort.py`); cold = the server restarted with the "
             "folder's cache deleted (the OS page cache stays warm), each cold command after its own "
             "restart, several per round (`COLD_SAMPLES`; ratios use each round's median).\n")
    L.append("| target | SORT warm | THREAD warm | SORT cold | THREAD cold |\n|---|---|---|---|---|")
    for t in targets:
        cells = [fmt(med(vals(w, t, "p50_ms")), 1) for w in
                 ("imap-sort-warm", "imap-thread-warm", "imap-sort-cold", "imap-thread-cold")]
        if all(c == "-" for c in cells): continue
        L.append(f"| {t} | " + " | ".join(cells) + " |")
    digests = {w: {r.get("answer") for r in rows if r["workload"] == w} for w in
               ("imap-sort-warm", "imap-thread-warm")}
    L.append("\nSame answers on every target (digest of the `* SORT` / `* THREAD` line): " +
             ", ".join(f"{w}: {'yes' if len(d) == 1 else 'NO ' + str(sorted(map(str, d)))}"
                       for w, d in digests.items()) + "\n")
    L.append("")

# Ratios, computed per round (same round = adjacent in time), then min/median/max.
pairs = [("mailserver-l0", "dovecot-default"), ("mailserver-l0", "dovecot-hp"),
         ("mailserver-l5", "mailserver-l0"), ("mailserver-l5", "dovecot-hp-rawlog"),
         ("dovecot-hp-rawlog", "dovecot-hp"), ("mailserver-musl", "mailserver-l0"),
         ("mailserver-l0-metrics", "mailserver-l0")]
L.append("## Ratios (per round, then min / median / max)\n")
L.append("For rates, ratio > 1 means the first target is faster; for idle-hold (PSS per connection), "
         "ratio < 1 means the first target uses less memory. `mailserver-l5 / mailserver-l0` is the "
         "cost of protocol logging at level 5, `mailserver-l0-metrics / mailserver-l0` the cost of metrics scraped every second; `mailserver-l5 / dovecot-hp-rawlog` compares full "
         "transcripts on both sides (issue #18's target: at least 1.5). Runs that had errors are left out of the ratios (see "
         "the errors column above); `rounds` counts the pairs used.\n")
L.append("| workload | ratio | min | median | max | rounds |\n|---|---|---|---|---|---|")
any_ratio = False
for wl in workloads:
    key, _ = metric(wl)
    for a, b in pairs:
        ra, rb = by_round(wl, a, key), by_round(wl, b, key)
        rs = [ra[k] / rb[k] for k in ra if k in rb and rb[k]]
        if not rs: continue
        any_ratio = True
        L.append(f"| {wl} | {a} / {b} | {min(rs):.2f} | {statistics.median(rs):.2f} | {max(rs):.2f} | {len(rs)} |")
if not any_ratio:
    L.append("| - | no error-free pairs measured | | | | |")
L.append("")

charts = []
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    for wl in workloads:
        key, higher = metric(wl)
        ts = [t for t in targets if vals(wl, t, key)]
        meds = [med(vals(wl, t, key)) for t in ts]
        lo = [m - min(vals(wl, t, key)) for m, t in zip(meds, ts)]
        hi = [max(vals(wl, t, key)) - m for m, t in zip(meds, ts)]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(ts, meds, yerr=[lo, hi], capsize=4, color=["#4c72b0" if t.startswith("dovecot") else "#dd8452" for t in ts])
        ax.set_title(f"{wl}: {key} ({'higher' if higher else 'lower'} is better)")
        ax.set_ylabel(key)
        plt.xticks(rotation=15)
        fig.tight_layout()
        path = os.path.join(out, f"{wl}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        charts.append(path)
except Exception as e:  # charts are optional
    L.append(f"_Charts skipped: {e}_\n")
if charts:
    L.append("## Charts (median, whiskers min..max)\n")
    for c in charts:
        L.append(f"![{os.path.basename(c)}]({os.path.relpath(c, os.path.dirname(os.path.abspath(report)))})")
    L.append("")
rawlog_check = os.path.join(out, "rawlog-check.txt")
if os.path.exists(rawlog_check):
    L.append("## Transcript files written\n")
    L.append("Counted when each run stopped, then deleted: dovecot-hp-rawlog's post-login "
             "`rawlog_dir` files and pre-login `-R` files, mailserver's protocol logs.\n")
    L.append("```\n" + open(rawlog_check).read().strip() + "\n```\n")
L.append("## Exact commands\n\n```\n" + open(commands).read().strip() + "\n```\n")
L.append(f"Raw results: `{os.path.relpath(results, os.path.dirname(os.path.abspath(report)))}` (one JSON object per run).\n")
open(report, "w").write("\n".join(L))
print(f"wrote {report} ({len(rows)} runs, {len(charts)} charts)", file=sys.stderr)
PYEOF
log "done: $REPORT"
