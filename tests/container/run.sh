#!/usr/bin/env bash
# tests/container/run.sh: the container image (ARCHITECTURE.md, "Server"), built and run for
# real with Podman.
#
# What it proves, each step against the real image and real clients:
#   1. `podman build --target runtime` of the repository's Dockerfile, with the static
#      binary built here standing in for the builder stage's /out/ (no base image can be
#      pulled here; see /work/shared/CONTAINERS.md), prints the image size;
#   2. on the host network, with a test config (the image's own etc/container.toml with only
#      the listen addresses moved to free loopback ports) in a mounted config DIRECTORY, and
#      mounted data and log volumes owned by the image's uid: POP3 and POP3S logins (Python
#      poplib, curl) retrieve a message delivered into the data volume's mail/demo/new/;
#   3. hot reload from inside the container: the host renames a new config into the mounted
#      directory, the daemon logs the change, the next POP3 session creates L0000001.log in the
#      log volume with `#Service: POP3` first and the password as `***`;
#   3b. `podman exec … mailserver who` inside the container lists an open IMAP session (the
#      admin socket in the data volume is 0600 and the image's uid's);
#   4. `podman stop` while a POP3 session (with a DELE) is open: exit code 0 within the
#      grace period, the session's `-` record flushed to the log, the DELE not applied;
#   5. ports below 1024 as uid 10001: the image's own config (0.0.0.0:110/143/993/995) in a
#      private network namespace with `--sysctl net.ipv4.ip_unprivileged_port_start=0` binds
#      all four and serves POP3/POP3S (clients run in that namespace via nsenter); without
#      the sysctl the daemon exits 1 with "Permission denied" (the approach is what makes it
#      work, not luck).
#
# Usage: bash tests/container/run.sh   (as root, as CI runs; installs podman/runc if missing)
# Env:   MAILSERVER_KEEP_IMAGE=1 keeps the mailserver:test image afterwards.
set -Eeuo pipefail
cd "$(dirname "$0")/../.."

IMAGE=localhost/mailserver:test
NAME=mailserver-ctest-$$          # every container this script starts has this prefix
BIN=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/mailserver
UID_IMAGE=10001                   # the Dockerfile's USER
PASSWORD='c0ntainer-Secret'
started=()

say() { printf '== [%3ss] %s\n' "$SECONDS" "$*"; }
passed=0
ok() {
  passed=$((passed + 1))
  printf '   ok: %s\n' "$*"
}

work=$(mktemp -d /tmp/mailserver-ctest.XXXXXX)
cleanup() {
  local c
  # -v: also the anonymous volumes podman made for the image's VOLUMEs.
  for c in "${started[@]}"; do podman rm -f -v -t 0 "$c" >/dev/null 2>&1 || true; done
  if [ "${MAILSERVER_KEEP_IMAGE:-0}" != 1 ]; then podman rmi -f "$IMAGE" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  printf '   FAIL: %s\n' "$*"
  local c
  for c in "${started[@]}"; do
    echo "--- podman logs $c (last 40 lines)"
    podman logs "$c" 2>&1 | tail -40 || true
  done
  exit 1
}
# Any other failing command (a client's assertion, podman, curl) also shows the daemon logs.
trap 'fail "line $LINENO: $BASH_COMMAND"' ERR

# wait_until DESC SECONDS CMD...: runs CMD every 0.2 s until it succeeds, at most SECONDS.
wait_until() {
  local desc=$1 limit=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${limit}s waiting for: $desc"
    sleep 0.2
  done
}

# (grep -q on a pipe would end it early: with pipefail, podman's SIGPIPE fails the check.)
logs_have() {
  local out
  out=$(podman logs "$1" 2>&1) && grep -qF -- "$2" <<<"$out"
}
running() { [ "$(podman inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
exited() { [ "$(podman inspect -f '{{.State.Status}}' "$1" 2>/dev/null)" = exited ]; }

# ---------------------------------------------------------------------------------------------
say "tools: podman, runc, curl, python3, nsenter"
have_pkg() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
need=()
for p in podman runc curl util-linux; do have_pkg "$p" || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y --no-install-recommends "${need[@]}"
fi
podman --version

# The runtime settings this machine needs (CONTAINERS.md): the sandbox refuses setrlimit, no
# systemd as init, crun rejects the hybrid cgroup layout.
cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
export CONTAINERS_CONF=$work/containers.conf

# ---------------------------------------------------------------------------------------------
say "static binary (the Dockerfile's build command; reused if already built)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --bin mailserver \
  --target x86_64-unknown-linux-gnu
"$BIN" --version
READY="$("$BIN" --version) ready" # the daemon's line once every listener is bound

say "image: podman build --build-context build=DIR --target runtime"
# DIR mirrors what the Dockerfile's `build` stage leaves under /out/ (keep the two in step).
ctx=$work/build-stage
mkdir -p "$ctx/out/rootfs/var/lib/mailserver" "$ctx/out/rootfs/var/log/mailserver"
cp "$BIN" "$ctx/out/mailserver"
podman build -q --build-context "build=$ctx" --target runtime -t "$IMAGE" . >/dev/null
[ "$(podman image inspect -f '{{.Config.User}}' "$IMAGE")" = "$UID_IMAGE:$UID_IMAGE" ] ||
  fail "image user is not $UID_IMAGE:$UID_IMAGE"
[ "$(podman image inspect -f '{{.Config.StopSignal}}' "$IMAGE")" = SIGTERM ] ||
  fail "image STOPSIGNAL is not SIGTERM"
size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
echo "image size: $(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1000000 }') MB"
[ "$size" -lt 15000000 ] || fail "image is $size bytes, over the 15 MB target"
ok "built $IMAGE"

# ---------------------------------------------------------------------------------------------
say "volumes, users, config, a delivered message"
# Four free loopback ports below the ephemeral range (so no client socket can take one).
ports=$(python3 - <<'EOF'
import socket
for base in range(24110, 29110, 250):
    socks = []
    try:
        for p in (base, base + 1, base + 2, base + 3):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base, base + 1, base + 2, base + 3)
    break
EOF
)
read -r P_POP3 P_POP3S P_IMAP P_IMAPS <<<"$ports"
[ -n "${P_IMAPS:-}" ] || fail "no four free loopback ports found in 24110-29109"
echo "   ports: pop3 $P_POP3, pop3s $P_POP3S, imap $P_IMAP, imaps $P_IMAPS"

etc=$work/etc data=$work/data logs=$work/logs
mkdir -p "$etc" "$data/mail/demo/new" "$data/mail/demo/cur" "$data/mail/demo/tmp" "$logs"
# The image's own config; only the listen addresses change (host network, loopback only:
# the IPv6 wildcard entries are dropped, the IPv4 ones moved to free loopback ports).
sed -e 's/, "\[::\]:[0-9]*"//' -e "s/\"0\.0\.0\.0:110\"/\"127.0.0.1:$P_POP3\"/" -e "s/\"0\.0\.0\.0:995\"/\"127.0.0.1:$P_POP3S\"/" \
  -e "s/\"0\.0\.0\.0:143\"/\"127.0.0.1:$P_IMAP\"/" -e "s/\"0\.0\.0\.0:993\"/\"127.0.0.1:$P_IMAPS\"/" \
  etc/container.toml >"$etc/mailserver.toml"
grep -Eq '^[^#]*(0\.0\.0\.0|\[::\])' "$etc/mailserver.toml" && fail "a listen address of etc/container.toml was not replaced"
printf 'demo:%s\n' "$(printf '%s' "$PASSWORD" | "$BIN" passwd --scheme SHA512-CRYPT)" >"$etc/users"
"$BIN" --config "$etc/mailserver.toml" check-config >/dev/null || fail "test config invalid"
msg="$data/mail/demo/new/1764270000.M1P$$.ctest"
printf '%s\n' 'From: Sender <sender@example.org>' 'To: demo@localhost' \
  'Subject: delivered into the volume' 'Message-ID: <ctest-1@example.org>' '' \
  'Hello from the host side of the data volume.' >"$msg"
chown -R "$UID_IMAGE:$UID_IMAGE" "$etc" "$data" "$logs"
chmod 600 "$etc/users"

say "run: --network host, config dir + data + log volumes"
c=$NAME-host
started+=("$c")
podman run -d --name "$c" --network host \
  -v "$etc:/etc/mailserver:ro" -v "$data:/var/lib/mailserver" -v "$logs:/var/log/mailserver" \
  "$IMAGE" >/dev/null
wait_until "the daemon's ready line" 30 logs_have "$c" "$READY"
running "$c" || fail "container not running"
ok "ready: $(podman logs "$c" 2>&1 | grep -c 'listening on') listeners"
[ "$(stat -c %u "$data/tls/key.pem")" = "$UID_IMAGE" ] ||
  fail "the generated TLS key in the data volume is not owned by uid $UID_IMAGE"
ok "self-signed TLS pair generated into the data volume as uid $UID_IMAGE"

# ---------------------------------------------------------------------------------------------
say "POP3 (poplib, plain on loopback) and POP3S (poplib, curl): retrieve the delivered message"
python3 - "$P_POP3" "$P_POP3S" "$PASSWORD" <<'EOF'
import poplib, ssl, sys
port, tls_port, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the generated self-signed certificate
for name, p in (("POP3", poplib.POP3("127.0.0.1", port, timeout=20)),
                ("POP3S", poplib.POP3_SSL("127.0.0.1", tls_port, context=ctx, timeout=20))):
    assert p.getwelcome().startswith(b"+OK"), p.getwelcome()
    p.user("demo")
    p.pass_(password)
    count, _ = p.stat()
    assert count == 1, f"{name}: STAT says {count} messages, want 1"
    _, lines, _ = p.retr(1)
    assert b"Subject: delivered into the volume" in lines, lines
    assert b"Hello from the host side of the data volume." in lines, lines
    p.quit()
EOF
ok "POP3 and POP3S (poplib): login as demo, STAT 1, RETR 1 is the delivered message"
out=$(curl -sS --max-time 20 -k "pop3s://127.0.0.1:$P_POP3S/1" -u "demo:$PASSWORD")
grep -q 'Subject: delivered into the volume' <<<"$out" || fail "curl pop3s RETR 1: $out"
ok "curl pop3s://…/1 retrieves it"
out=$(curl -sS --max-time 20 "pop3://127.0.0.1:$P_POP3/" -u "demo:$PASSWORD")
grep -Eq '^1 [0-9]+' <<<"$out" || fail "curl pop3 LIST: $out"
ok "curl pop3://… LIST: $(tr -d '\r' <<<"$out")"

# ---------------------------------------------------------------------------------------------
say "IMAP4 (imaplib plain and IMAPS, curl imap/imaps): the same message"
python3 - "$P_IMAP" "$P_IMAPS" "$PASSWORD" <<'EOF'
import imaplib, ssl, sys
port, tls_port, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the generated self-signed certificate
for name, m in (("IMAP", imaplib.IMAP4("127.0.0.1", port, timeout=20)),
                ("IMAPS", imaplib.IMAP4_SSL("127.0.0.1", tls_port, ssl_context=ctx, timeout=20))):
    m.login("demo", password)
    typ, data = m.select("INBOX", readonly=True)
    assert typ == "OK" and data[0] == b"1", f"{name}: SELECT {typ} {data}"
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK", (name, typ, data)
    body = data[0][1]
    assert b"Subject: delivered into the volume" in body, body
    m.logout()
EOF
ok "IMAP and IMAPS (imaplib): login as demo, SELECT INBOX has 1, FETCH 1 BODY[] is the delivered message"
out=$(curl -sS --max-time 20 "imap://127.0.0.1:$P_IMAP/INBOX" -u "demo:$PASSWORD" -X 'STATUS INBOX (MESSAGES)')
grep -q 'MESSAGES 1' <<<"$out" || fail "curl imap STATUS: $out"
ok "curl imap://… STATUS: $(tr -d '\r' <<<"$out")"
out=$(curl -sS --max-time 20 -k "imaps://127.0.0.1:$P_IMAPS/INBOX;MAILINDEX=1" -u "demo:$PASSWORD")
grep -q 'Subject: delivered into the volume' <<<"$out" || fail "curl imaps FETCH 1: $out"
ok "curl imaps://…/INBOX;MAILINDEX=1 retrieves it"

# ---------------------------------------------------------------------------------------------
say "mailserver who inside the container (admin socket data_dir/admin.sock, mode 0600)"
[ "$(stat -c %a:%u "$data/admin.sock")" = "600:$UID_IMAGE" ] ||
  fail "admin socket: $(stat -c %a:%u "$data/admin.sock" 2>&1), want 600:$UID_IMAGE"
python3 - "$P_IMAP" "$PASSWORD" "$c" <<'EOF'
import imaplib, json, subprocess, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
m.login("demo", sys.argv[2])
m.select("INBOX", readonly=True)
out = subprocess.run(["podman", "exec", sys.argv[3], "/usr/local/bin/mailserver", "who", "--json"],
                     capture_output=True, check=True, timeout=60).stdout
rows = json.loads(out)["sessions"]
assert any(r["user"] == "demo" and r["service"] == "imap" and r["state"] == "selected INBOX"
           for r in rows), rows
m.logout()
EOF
ok "podman exec … mailserver who --json lists the open IMAP session (selected INBOX)"

# ---------------------------------------------------------------------------------------------
say "protocol logging on by editing the mounted config (rename into place, as editors do)"
compgen -G "$logs/L*.log" >/dev/null && fail "a protocol log exists at level 0"
sed 's/^"POP3 Protocol Logging Level" = 0/"POP3 Protocol Logging Level" = 5/' \
  "$etc/mailserver.toml" >"$etc/.mailserver.toml.new"
grep -q '^"POP3 Protocol Logging Level" = 5' "$etc/.mailserver.toml.new" || fail "sed did not set level 5"
mv "$etc/.mailserver.toml.new" "$etc/mailserver.toml"
reload_line() {
  local out
  out=$(podman logs "$c" 2>&1) &&
    grep -F 'POP3 Protocol Logging Level' <<<"$out" | grep -F 'applies at the next session start'
}
wait_until "the reload line in podman logs" 20 reload_line
ok "reload seen inside the container: $(reload_line | sed 's/^.*INFO //')"
python3 - "$P_POP3" "$PASSWORD" <<'EOF'
import poplib, sys
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
p.user("demo"); p.pass_(sys.argv[2]); p.stat(); p.quit()
EOF
wait_until "L0000001.log in the log volume" 10 test -s "$logs/L0000001.log"
first=$(head -n 1 "$logs/L0000001.log")
[ "$first" = "#Service: POP3" ] || fail "first line of L0000001.log is '$first'"
[ "$(stat -c %u "$logs/L0000001.log")" = "$UID_IMAGE" ] || fail "L0000001.log not owned by uid $UID_IMAGE"
grep -qF -- "$PASSWORD" "$logs/L0000001.log" && fail "the password is in the protocol log"
wait_until "PASS *** record" 5 grep -qF ',<,PASS ***' "$logs/L0000001.log"
ok "L0000001.log: '#Service: POP3' first, owned by uid $UID_IMAGE, PASS logged as ***"

# ---------------------------------------------------------------------------------------------
say "podman stop with a POP3 session open (after DELE 1): exit 0, log flushed, DELE not applied"
python3 - "$P_POP3" "$PASSWORD" "$work/held" <<'EOF' &
import poplib, socket, sys
port, password, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
p = poplib.POP3("127.0.0.1", port, timeout=45)
p.user("demo"); p.pass_(password)
assert p.dele(1).startswith(b"+OK")
with open(out + ".tmp", "w") as f:
    f.write(str(p.sock.getsockname()[1]))
import os; os.rename(out + ".tmp", out)
try:  # the daemon closes the session at shutdown; reading sees EOF (or a final line, then EOF)
    while p.file.readline():
        pass
    result = "closed"
except (socket.timeout, OSError) as e:
    result = f"error {e!r}"
with open(out + ".result", "w") as f:
    f.write(result)
EOF
held_pid=$!
wait_until "the held session to log in and DELE" 20 test -s "$work/held"
held_port=$(cat "$work/held")
t0=$SECONDS
podman stop -t 30 "$c" >/dev/null
stop_secs=$((SECONDS - t0))
code=$(podman inspect -f '{{.State.ExitCode}}' "$c")
[ "$code" = 0 ] || fail "exit code after podman stop is $code (137 = killed after the timeout)"
ok "exit code 0 after ${stop_secs}s (grace 8 s, podman stop timeout 30 s)"
logs_have "$c" "SIGTERM: shutting down" || fail "no SIGTERM line in the daemon log"
wait_until "the held client to see the close" 10 test -s "$work/held.result"
wait "$held_pid" || fail "held client failed"
[ "$(cat "$work/held.result")" = closed ] || fail "held client: $(cat "$work/held.result")"
grep -qE ",127\.0\.0\.1:$held_port,-," "$logs/L0000001.log" ||
  fail "no '-' record of the session from port $held_port in L0000001.log"
ok "the open session's '-' record is in L0000001.log: $(grep -E ",127\.0\.0\.1:$held_port,-," "$logs/L0000001.log" | cut -d, -f6-)"
n=$(find "$data/mail/demo/new" "$data/mail/demo/cur" -type f | wc -l)
[ "$n" = 1 ] || fail "$n messages in the maildir after shutdown, want 1 (DELE applies only at QUIT)"
ok "the message is still there (DELE without QUIT not applied)"

# ---------------------------------------------------------------------------------------------
say "ports below 1024 as uid $UID_IMAGE: the image's own config, private netns + sysctl"
# No data or log mount here: podman makes anonymous volumes for the image's VOLUMEs, owned
# as the image's directories are (COPY --chown), so the daemon can write its TLS pair there.
c=$NAME-nobind
started+=("$c")
podman run -d --name "$c" --network none "$IMAGE" >/dev/null
wait_until "the unprivileged daemon to exit" 30 exited "$c"
code=$(podman inspect -f '{{.State.ExitCode}}' "$c")
[ "$code" = 1 ] || fail "without the sysctl: exit code $code, want 1"
nobind_line() {
  local out
  out=$(podman logs "$c" 2>&1) && grep -E 'cannot listen on 0\.0\.0\.0:(110|143|993|995): Permission denied' <<<"$out"
}
nobind_line >/dev/null || fail "without the sysctl: no 'cannot listen on 0.0.0.0:N: Permission denied' in the log"
ok "without the sysctl: exit 1, $(nobind_line | grep -o 'cannot listen on.*' | head -1)"

c=$NAME-lowports
started+=("$c")
podman run -d --name "$c" --network none --sysctl net.ipv4.ip_unprivileged_port_start=0 \
  -v "$etc/users:/etc/mailserver/users:ro" "$IMAGE" >/dev/null
wait_until "the daemon's ready line" 30 logs_have "$c" "$READY"
logs_have "$c" "generated a self-signed certificate" || fail "no TLS pair generated in the anonymous volume"
for l in "IMAP4 listening on 0.0.0.0:143" "IMAP4 listening on 0.0.0.0:993 (TLS)" \
  "POP3 listening on 0.0.0.0:110" "POP3 listening on 0.0.0.0:995 (TLS)"; do
  logs_have "$c" "$l" || fail "missing log line: $l"
done
pid=$(podman inspect -f '{{.State.Pid}}' "$c")
nsenter --net="/proc/$pid/ns/net" python3 - "$PASSWORD" <<'EOF' || fail "clients inside the container's network namespace"
import poplib, socket, ssl, sys
for port in (143, 993):
    socket.create_connection(("127.0.0.1", port), timeout=10).close()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for p in (poplib.POP3("127.0.0.1", 110, timeout=20),
          poplib.POP3_SSL("127.0.0.1", 995, context=ctx, timeout=20)):
    p.user("demo"); p.pass_(sys.argv[1])
    assert p.stat()[0] == 0
    p.quit()
EOF
ok "in the container's netns: POP3 on 110 and POP3S on 995 log in; 143 and 993 accept"
podman stop -t 30 "$c" >/dev/null
code=$(podman inspect -f '{{.State.ExitCode}}' "$c")
[ "$code" = 0 ] || fail "exit code after podman stop is $code"
ok "stopped, exit code 0"

say "done in ${SECONDS}s"
echo "container: $passed passed, 0 failed"
