#!/usr/bin/env python3
"""Reconnect-and-resync of a 10,000-message folder after 10 flag changes (issue 15).

Run by compare.sh's `imap-resync` workload against one target; prints two JSON rows in
mailbench's shape (`workload`, `label`, `ops`, `ops_per_sec`, `p50_ms`, `p99_ms`,
`errors`) plus `bytes_per_op`, the octets the server sent per resync:

  imap-resync-qresync  LOGIN, ENABLE QRESYNC, SELECT (QRESYNC (uidvalidity modseq)) with
                       the values of the previous resync: the 10 FETCHes come back
  imap-resync-full     a client without QRESYNC: LOGIN, SELECT, UID FETCH 1:* (FLAGS)

Each sample: a second session changes 10 flags (UID STORE +/-\\Flagged on 10 random
UIDs, each toggled), then the two clients reconnect in turn, each timed from connect to the end of
its sync. The folder (`Resync` of the user) is filled with APPEND on first use, the same way
on every server. Standard library only; loopback; every socket read is bounded in time.
"""
import argparse, json, random, re, socket, statistics, sys, time

MESSAGES = 10_000
TIMEOUT = 60


class Conn:
    """A minimal IMAP client that counts the octets the server sends."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""
        self.octets = 0
        self.n = 0
        self.line()  # greeting

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("server closed the connection")
            self.octets += len(d)
            self.buf += d
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def cmd(self, text):
        self.n += 1
        tag = b"r%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        out = []
        for _ in range(10 * MESSAGES + 100):
            l = self.line()
            if l.startswith(tag + b" "):
                if not l[len(tag) + 1:].startswith(b"OK"):
                    raise RuntimeError(f"{text[:60]} -> {l!r}")
                return out
            out.append(l)
        raise RuntimeError("no tagged reply")

    def close(self):
        try:
            self.cmd("LOGOUT")
        except Exception:
            pass
        self.s.close()


def number_after(lines, key):
    for l in lines:
        i = l.find(key)
        if i >= 0:
            m = re.match(rb"\d+", l[i + len(key):])
            if m:
                return int(m.group(0))
    return None


def login(port, user, password):
    c = Conn(port)
    c.cmd(f"LOGIN {user} {password}")
    return c


def fill(port, user, password):
    c = login(port, user, password)
    st = c.cmd("LIST \"\" Resync")
    if not st:
        c.cmd("CREATE Resync")
    have = number_after(c.cmd("STATUS Resync (MESSAGES)"), b"MESSAGES ")
    msg = b"From: a@example.org\r\nSubject: resync %d\r\n\r\nbody\r\n"
    batch = []
    for i in range(have or 0, MESSAGES):
        m = msg % i
        c.n += 1
        batch.append(b"r%d" % c.n)
        c.s.sendall(b"r%d APPEND Resync {%d+}\r\n" % (c.n, len(m)) + m + b"\r\n")
        if len(batch) == 200 or i == MESSAGES - 1:
            left = set(batch)
            while left:
                l = c.line()
                t = l.split(b" ")[0]
                if t in left:
                    if b" OK" not in l:
                        raise RuntimeError(l)
                    left.discard(t)
            batch = []
    c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--label", required=True)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    fill(a.port, a.user, a.password)
    # Where client A starts: one full sync, remembering (UIDVALIDITY, HIGHESTMODSEQ).
    c = login(a.port, a.user, a.password)
    c.cmd("ENABLE QRESYNC")
    sel = c.cmd("SELECT Resync")
    v, h = number_after(sel, b"UIDVALIDITY "), number_after(sel, b"HIGHESTMODSEQ ")
    c.close()
    b = login(a.port, a.user, a.password)
    b.cmd("SELECT Resync")
    # What an earlier run left flagged, so every toggle below is a change.
    found = b.cmd("UID SEARCH FLAGGED")
    times = {"qresync": [], "full": []}
    octets = {"qresync": [], "full": []}
    errors = 0
    flagged = {int(u) for l in found if l.startswith(b"* SEARCH") for u in l.split()[2:]}
    for i in range(a.samples):
        # 10 changes: flag the unflagged ones, unflag the flagged ones.
        uids = rnd.sample(range(1, MESSAGES + 1), 10)
        for sign, part in (("+", [u for u in uids if u not in flagged]),
                           ("-", [u for u in uids if u in flagged])):
            if part:
                b.cmd(f"UID STORE {','.join(map(str, part))} {sign}FLAGS.SILENT (\\Flagged)")
        flagged ^= set(uids)
        try:
            t0 = time.perf_counter()
            c = Conn(a.port)
            c.cmd(f"LOGIN {a.user} {a.password}")
            c.cmd("ENABLE QRESYNC")
            sel = c.cmd(f"SELECT Resync (QRESYNC ({v} {h}))")
            times["qresync"].append((time.perf_counter() - t0) * 1000)
            octets["qresync"].append(c.octets)
            fetches = sum(1 for l in sel if b" FETCH (" in l)
            if fetches > 10:
                errors += 1
            h = number_after(sel, b"HIGHESTMODSEQ ")
            c.close()
            t0 = time.perf_counter()
            c = Conn(a.port)
            c.cmd(f"LOGIN {a.user} {a.password}")
            c.cmd("SELECT Resync")
            c.cmd("UID FETCH 1:* (FLAGS)")
            times["full"].append((time.perf_counter() - t0) * 1000)
            octets["full"].append(c.octets)
            c.close()
        except Exception as e:  # counted, reported in the row
            errors += 1
            print(f"resync sample {i}: {e}", flush=True, file=sys.stderr)
    b.close()
    for kind in ("qresync", "full"):
        ts = sorted(times[kind])
        if not ts:
            continue
        p50 = statistics.median(ts)
        print(json.dumps({
            "workload": f"imap-resync-{kind}",
            "label": a.label,
            "ops": len(ts),
            "ops_per_sec": 1000.0 / p50,
            "p50_ms": p50,
            "p99_ms": ts[min(len(ts) - 1, int(len(ts) * 0.99))],
            "bytes_per_op": statistics.median(octets[kind]),
            "errors": errors,
        }))


if __name__ == "__main__":
    main()
