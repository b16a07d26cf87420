#!/usr/bin/env bash
# Cluster figures (BENCHMARKS.md, "Run 10" and "Run 11"): failover time (kill -9 of a node → first
# successful LOGIN + SELECT of a user it owned, through HAProxy), CPU per 1,000 operations
# per node (/proc/PID/stat) and the proxy hop's cost (logins/s and RETR MB/s through the
# non-owner against the owner directly). Runs the harness of the cluster tests
# (tests/common/ha_cluster.rs: two nodes on 127.0.0.11/.12, NATS, HAProxy from
# deploy/haproxy/haproxy-cluster.cfg) through the ignored test `cluster_figures`.
# Loopback only, bounded in time. Needs root (bindfs), haproxy, nats-server.
#
#   bash benches/cluster.sh [REPORT.md]     # KILLS=6 OPS=1000 BUILD=debug|release
#
# Failover time does not depend on the build (it is the detection and the reconnect); the
# CPU and hop figures do: say which build was measured (the report does).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benches/results/cluster/report.md}
mkdir -p "$(dirname "$out")"
profile=()
[ "${BUILD:-debug}" = release ] && profile=(--release)
KILLS=${KILLS:-6} OPS=${OPS:-1000} CLUSTER_BENCH_OUT="$(realpath -m "$out")" \
  timeout 1200 cargo test "${profile[@]}" --test cluster_failover -- --ignored --nocapture \
  --exact cluster_figures
echo "wrote $out"
