#!/usr/bin/env bash
# A/B benchmark of two mailserver builds: the same mailbench workloads against each, in
# alternation (A B A B ...), on copies of one deterministic corpus, loopback only, every run
# bounded in time. For "did this change cost throughput?" (compare.sh is the side-by-side
# with Dovecot).
#
#   benches/ab.sh BASE_BINARY NEW_BINARY
#
# Settings (environment): ROUNDS=4 DURATION=8 CLIENTS=4 USERS=8 MESSAGES=200 BIG=10000
#   LEVEL=0 (protocol-logging level of both) PORT_BASE=22100 MAILBENCH=path
#   (default: build target/release/mailbench) WORK=dir (scratch, removed at the end)
# Workloads: pop3-retrieve; imap-fetch with 50 x FETCH n BODY[] per session; imap-fetch
# with only FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE) on a BIG-message INBOX; imap-append.
# Prints one line per run (JSON from mailbench) and, at the end, new/base ratios per
# workload: the median over the rounds with the min and max.
set -euo pipefail

[ $# -eq 2 ] || { sed -n 2,16p "$0"; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
A=$(readlink -f "$1")
B=$(readlink -f "$2")
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-8}
CLIENTS=${CLIENTS:-4}
USERS=${USERS:-8}
MESSAGES=${MESSAGES:-200}
BIG=${BIG:-10000}
LEVEL=${LEVEL:-0}
PORT_BASE=${PORT_BASE:-22100}
IMAP=$PORT_BASE
POP3=$((PORT_BASE + 10))
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] || { echo "ROUNDS must be 1..20"; exit 2; }
[ "$DURATION" -ge 1 ] && [ "$DURATION" -le 600 ] || { echo "DURATION must be 1..600"; exit 2; }

if [ -z "${MAILBENCH:-}" ]; then
  (cd "$REPO" && cargo build --release --bin mailbench >&2)
  MAILBENCH=$REPO/target/release/mailbench
fi
WORK_MADE=0
if [ -z "${WORK:-}" ]; then WORK=$(mktemp -d /tmp/mailserver-ab.XXXXXX); WORK_MADE=1; fi
PID=
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  if [ "$WORK_MADE" = 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

log() { printf '[ab %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

log "corpora: $USERS users x $MESSAGES messages; 1 user x $BIG messages"
"$MAILBENCH" corpus --seed 1 --out "$WORK/corpus-small" --users "$USERS" --messages "$MESSAGES" >/dev/null
"$MAILBENCH" corpus --seed 1 --out "$WORK/corpus-big" --users 1 --messages "$BIG" >/dev/null

# start NAME BINARY CORPUS: a fresh copy of the corpus, a private config, the daemon.
start() {
  local name=$1 bin=$2 corpus=$3 dir=$WORK/$1
  rm -rf "$dir"
  mkdir -p "$dir/data/mail" "$dir/logs"
  cp -a "$WORK/corpus-$corpus"/bench* "$dir/data/mail/"
  cat >"$dir/mailserver.toml" <<EOT
[server]
hostname = "bench.example"
data_dir = "$dir/data"
[imap]
listen = ["127.0.0.1:$IMAP"]
[pop3]
listen = ["127.0.0.1:$POP3"]
[auth]
users_file = "$WORK/corpus-$corpus/users"
allow_plaintext = true
[limits]
max_connections = 50000
max_connections_per_ip = 50000
[ParametersSystem]
"POP3 Protocol Logging Level" = $LEVEL
"POP3 Protocol Log Path" = "$dir/logs"
"IMAP Protocol Logging Level" = $LEVEL
"IMAP Protocol Log Path" = "$dir/logs"
EOT
  "$bin" --config "$dir/mailserver.toml" run >"$dir/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$IMAP") 2>/dev/null && return 0
    sleep 0.1
  done
  log "server $name did not start:"; tail "$dir/server.log" >&2; exit 1
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

# run WORKLOAD LABEL: one bounded mailbench run against the server started last.
run() {
  local w=$1 label=$2
  local common=(--users-file-prefix bench --pass benchpass --server-pid "$PID"
    --duration "$DURATION" --label "$label" --quiet --json)
  case $w in
    pop3-retrieve) timeout $((DURATION + 120)) "$MAILBENCH" pop3-retrieve --port "$POP3" \
      --users "$USERS" --clients "$CLIENTS" "${common[@]}" ;;
    fetch-body) timeout $((DURATION + 120)) "$MAILBENCH" imap-fetch --port "$IMAP" \
      --users "$USERS" --clients "$CLIENTS" --per-session 50 "${common[@]}" ;;
    fetch-envelope) timeout $((DURATION + 120)) "$MAILBENCH" imap-fetch --port "$IMAP" \
      --users 1 --clients 1 --per-session 0 "${common[@]}" ;;
    imap-append) timeout $((DURATION + 120)) "$MAILBENCH" imap-append --port "$IMAP" \
      --users "$USERS" --clients "$CLIENTS" --mailbox Archive "${common[@]}" ;;
  esac
}

RESULTS=$WORK/results.jsonl
: >"$RESULTS"
for w in pop3-retrieve fetch-body fetch-envelope imap-append; do
  corpus=small
  [ "$w" = fetch-envelope ] && corpus=big
  for side in base new; do # warm-up: page cache, first-open caches
    bin=$A; [ "$side" = new ] && bin=$B
    start "$side" "$bin" "$corpus"; run "$w" warmup >/dev/null; stop
  done
  for r in $(seq "$ROUNDS"); do
    for side in base new; do
      bin=$A; [ "$side" = new ] && bin=$B
      start "$side" "$bin" "$corpus"
      line=$(run "$w" "$w/$side/$r")
      stop
      echo "$line" | tee -a "$RESULTS"
    done
  done
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    w, side, rnd = r["label"].split("/")
    by.setdefault(w, {}).setdefault(rnd, {})[side] = r
print()
print("| workload | metric | new/base median | min-max | rounds |")
print("|---|---|---|---|---|")
for w, rounds in by.items():
    metrics = [("ops_per_sec", "ops/s (higher is better)"),
               ("server_cpu_ms_per_op", "server CPU ms/op (lower is better)")]
    if w == "fetch-envelope":
        metrics = [("fetch_all_p50_ms", "FETCH 1:* p50 ms (lower is better)"),
                   ("server_cpu_ms_per_op", "server CPU ms/op (lower is better)")]
    for key, name in metrics:
        ratios = [rd["new"][key] / rd["base"][key] for rd in rounds.values()
                  if "new" in rd and "base" in rd and rd["base"].get(key)]
        if ratios:
            print(f"| {w} | {name} | {statistics.median(ratios):.3f} | "
                  f"{min(ratios):.3f}-{max(ratios):.3f} | {len(ratios)} |")
EOF
