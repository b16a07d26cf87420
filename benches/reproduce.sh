#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: the seven compare.sh runs it reports, then the file itself
# (benches/SUMMARY.md — the hand-written reading of the numbers against the targets — followed
# by each run's generated report). Needs root (Dovecot); installs Dovecot when missing; about
# 30 minutes on 2 cores. Loopback only, every run bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build --release --bin mailserver --bin mailbench
run() { # name, then settings for compare.sh
  local name=$1; shift
  rm -rf "benches/results/$name"
  env "$@" REPORT="$tmp/$name.md" OUT="benches/results/$name" bash benches/compare.sh
}
run dovecot TARGETS="dovecot-default mailserver-l0 dovecot-hp" ROUNDS=3 DURATION=8 CLIENTS=50 \
  USERS=50 MESSAGES=40 IDLE_CONNS=5000 IDLE_HOLD=5
run mailbox-10k TARGETS="dovecot-default mailserver-l0 dovecot-hp" ROUNDS=3 DURATION=8 CLIENTS=1 \
  USERS=1 MESSAGES=10000 WORKLOADS="imap-fetch"
run protolog TARGETS="mailserver-l0 mailserver-l5" ROUNDS=3 DURATION=8 CLIENTS=50 USERS=50 \
  MESSAGES=40 WORKLOADS="pop3-retrieve imap-fetch login-storm-pop3 login-storm-imap"
run imap-resync TARGETS="dovecot-default mailserver-l0" ROUNDS=5 RESYNC_SAMPLES=40 \
  WORKLOADS="imap-resync"
run imap-sort TARGETS="dovecot-default mailserver-l0" ROUNDS=5 USERS=1 MESSAGES=10 SORT_SAMPLES=10 \
  WORKLOADS="imap-sort"
run lmtp TARGETS="dovecot-default mailserver-l0" ROUNDS=5 DURATION=10 WORKLOADS="lmtp-deliver"
run rawlog TARGETS="mailserver-l0 mailserver-l5 dovecot-hp dovecot-hp-rawlog" ROUNDS=3 DURATION=8 \
  CLIENTS=50 USERS=50 MESSAGES=40 WORKLOADS="pop3-retrieve imap-fetch"
run metrics TARGETS="mailserver-l0 mailserver-l0-metrics" ROUNDS=5 DURATION=8 CLIENTS=50 USERS=50 \
  MESSAGES=40 WORKLOADS="pop3-retrieve imap-fetch"
run imap-sort-cold TARGETS="dovecot-default mailserver-l0" ROUNDS=5 USERS=1 MESSAGES=10 \
  SORT_SAMPLES=10 COLD_SAMPLES=3 WORKLOADS="imap-sort"
# Cluster figures (two nodes, NATS, HAProxy; release build): each node on its own bindfs
# mount of the store, then both on the store directory itself (the proxy hop unhidden).
BUILD=release bash benches/cluster.sh "$tmp/cluster.md"
CLUSTER_TEST_FUSE=0 BUILD=release bash benches/cluster.sh "$tmp/cluster-direct.md"
cp "$tmp/cluster.md" benches/results/cluster/report.md
cp "$tmp/cluster-direct.md" benches/results/cluster/report-direct.md
section() { # title, run name: the run's report with its headings one level down
  printf '\n## %s\n\n' "$1"
  tail -n +2 "$tmp/$2.md" | sed -e 's/^\(#\+\) /#\1 /' \
    -e "s#](\([^)]*/\)\{0,1\}\([a-z0-9-]*\.png\))#](benches/results/$2/\2)#" \
    -e 's#/tmp/mailbench\.[A-Za-z0-9]*#WORK#g'
}
{
  cat benches/SUMMARY.md
  section "Run 1: every workload against Dovecot (50 clients, 5,000 idle connections)" dovecot
  section "Run 2: one client on a 10,000-message mailbox" mailbox-10k
  section "Run 3: protocol-log cost, level 5 against level 0" protolog
  section "Run 4: reconnect-and-resync of a 10,000-message folder (QRESYNC)" imap-resync
  section "Run 5: SORT and THREAD of a 10,000-message folder" imap-sort
  section "Run 6: LMTP deliveries, 20 KB messages from 20 clients" lmtp
  section "Run 7: full transcripts, level 5 against Dovecot's rawlog" rawlog
  section "Run 8: metrics cost, scraped every second against off" metrics
  section "Run 9: cold SORT and THREAD, three cold samples per round" imap-sort-cold
  section "Run 10: cluster failover, CPU per operation and the proxy hop (bindfs mounts)" cluster
  section "Run 11: the cluster on the store directory itself" cluster-direct
} >BENCHMARKS.md
echo "wrote BENCHMARKS.md"
