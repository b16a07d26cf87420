#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] [TARGET...]: builds every fuzz target (each [[bin]] of Cargo.toml:
# imap_command, pop3_command, lmtp_command, mime, config, reg_import, protolog_escape,
# protolog_record, admin_request, proxy_header, cluster_payload, sort_thread) with
# the stable toolchain and runs each (or the named ones) for SECONDS (default 30), one after
# the other. Exits non-zero on the first crash, panic, leak or input slower than 1 s; the
# input is left in fuzz/artifacts/TARGET/. New inputs go to fuzz/target/corpus/TARGET (not
# committed); the committed seeds in fuzz/corpus/TARGET are read, never written. Summary:
# fuzz/target/logs/.
#
# cargo fuzz passes nightly flags (-Z); RUSTC_BOOTSTRAP=1 lets the stable compiler take
# them (CI has no nightly). `-s none`: no AddressSanitizer (fuzz/README.md says why).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
[ $# -gt 0 ] && shift
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/target"
fuzz=(cargo +stable fuzz)

if ! cargo +stable fuzz --version >/dev/null 2>&1; then
  cargo +stable install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <("${fuzz[@]}" list)
fi

"${fuzz[@]}" build -s none
mkdir -p target/logs
for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t" "artifacts/$t"
  dict=()
  [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  echo "== fuzz $t for ${secs}s"
  if ! "${fuzz[@]}" run -s none "$t" "target/corpus/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=1 -rss_limit_mb=2048 -print_final_stats=1 \
      "${dict[@]}" >"target/logs/$t.log" 2>&1; then
    # libFuzzer's timeout is wall-clock time: on a loaded machine a process that was not
    # scheduled for a second looks like a slow input. A timeout counts only if the input is
    # slow again, alone, three times out of three.
    slow=$(sed -n 's/.*Test unit written to \(.*timeout-[0-9a-f]*\)$/\1/p' "target/logs/$t.log")
    if [ -n "$slow" ] && [ -f "$slow" ]; then
      again=0
      for _ in 1 2 3; do
        "target/x86_64-unknown-linux-gnu/release/$t" -timeout=1 "$slow" >/dev/null 2>&1 \
          || again=$((again + 1))
      done
      if [ "$again" -eq 0 ]; then
        echo "   $t: timeout not reproduced (machine load); input kept as ${slow}.unconfirmed"
        mv "$slow" "${slow}.unconfirmed"
        continue
      fi
    fi
    tail -n 60 "target/logs/$t.log"
    echo "fuzz target $t FAILED: see fuzz/artifacts/$t/ and fuzz/target/logs/$t.log"
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "target/logs/$t.log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "target/logs/$t.log")
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "target/logs/$t.log" | tail -n 1)
  echo "   $t: $execs executions, $rate exec/s, ${corp:-corp: ?}, no crash"
done
