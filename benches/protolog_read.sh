#!/usr/bin/env bash
# benches/protolog_read.sh [MB...]: time and peak memory of `mailserver protolog show` over
# level-5 protocol logs of each size (default: 100 1000 MB), against GNU `sort -m` doing the
# same k-way merge of the same files by date-time and `cat` (the read floor), alternated
# A B C A B C for ROUNDS rounds (default 3). Release build (`cargo build --release`).
#
# The logs are generated under $TMPDIR (default /tmp) by benches/protolog_read_gen.py: level-5
# POP3 and IMAP4 sessions (greeting, login, a RETR or FETCH of a 16 KB message line by line,
# logout) replicated with fresh session ids and advancing times into 4 files (2 per service)
# whose sessions interleave in time; they are deleted at the end.
#
# Prints one line per run: what, size, elapsed seconds, CPU seconds (user + system), peak RSS
# (KiB), records per CPU second. On a shared machine elapsed time is mostly waiting for a
# core; the CPU time is the figure to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(100 1000)
rounds=${ROUNDS:-3}
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release/mailserver}
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin missing)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/protolog-read-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

measure() { # label size-mb records cmd...
  local label=$1 mb=$2 recs=$3
  shift 3
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >/dev/null
  read -r secs user sys rss <"$work/time"
  awk -v l="$label" -v m="$mb" -v s="$secs" -v u="$user" -v y="$sys" -v r="$rss" -v n="$recs" \
    'BEGIN { c = u + y; printf "%-28s %5d MB %7.2f s elapsed %6.2f s CPU %8d KiB %10.0f records/CPU-s\n", l, m, s, c, r, (c > 0 ? n / c : 0) }'
}

for mb in "${sizes[@]}"; do
  dir="$work/logs-$mb"
  python3 benches/protolog_read_gen.py "$dir" "$mb"
  recs=$(grep -hvc '^#' "$dir"/L*.log | awk '{ s += $1 } END { print s }')
  echo "== $mb MB: $(du -sm "$dir" | cut -f1) MB on disk, $recs records, machine shared with other jobs"
  for r in $(seq 1 "$rounds"); do
    measure "protolog show (round $r)" "$mb" "$recs" "$bin" protolog show "$dir"
    measure "sort -m (round $r)" "$mb" "$recs" \
      env LC_ALL=C sort -m -s -t, -k1,1 "$dir"/L0000001.log "$dir"/L0000002.log \
      "$dir"/L0000003.log "$dir"/L0000004.log
    measure "cat (round $r)" "$mb" "$recs" cat "$dir"/L0000001.log "$dir"/L0000002.log \
      "$dir"/L0000003.log "$dir"/L0000004.log
  done
  measure "protolog show --json" "$mb" "$recs" "$bin" protolog show --json "$dir"
  measure "protolog show --user" "$mb" "$recs" "$bin" protolog show --user user7 "$dir"
  measure "protolog stats" "$mb" "$recs" "$bin" protolog stats "$dir"
  rm -rf "$dir"
done
