#!/usr/bin/env python3
"""Server-side SORT and THREAD of a 10,000-message folder (issue 16).

Run by compare.sh's `imap-sort` workload against one target; prints JSON rows in
mailbench's shape (`workload`, `label`, `ops`, `ops_per_sec`, `p50_ms`, `p99_ms`, `errors`):

  imap-sort-warm     UID SORT (REVERSE DATE) UTF-8 ALL, repeated on a selected folder
  imap-thread-warm   UID THREAD REFERENCES UTF-8 ALL, likewise
  imap-sort-cold     (--cold sort) one UID SORT right after the server was restarted with
                     its per-folder cache deleted (ours: mailserver.cache; Dovecot:
                     dovecot.index.cache and dovecot.index.thread): every message file is
                     read. The OS page cache stays warm: "cold" is the server's cache.
  imap-thread-cold   (--cold thread) likewise for UID THREAD REFERENCES

Each row carries `answer`, a digest of the `* SORT` / `* THREAD` line: equal digests on
every target mean the servers gave the same answer over the whole folder.

Each timing is from the command sent to its tagged OK, on a session that already selected
the folder. The folder (`Sorted` of the user) is filled with APPEND on first use, the same
deterministic messages on every server: dates over two years in several zones (some
missing or unparsable), subjects from a pool with Re:/Fwd:/[list] decorations, and six
replies in ten referencing an earlier message (References chains, some only In-Reply-To).
Standard library only; loopback; every socket read is bounded in time.
"""
import argparse, hashlib, json, random, statistics, sys, time

MESSAGES = 10_000
TIMEOUT = 120
FOLDER = "Sorted"


class Conn:
    def __init__(self, port):
        import socket
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""
        self.n = 0
        self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError("server closed the connection")
            self.buf += d
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def cmd(self, text):
        self.n += 1
        tag = b"s%d" % self.n
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


def login(port, user, password):
    c = Conn(port)
    c.cmd(f"LOGIN {user} {password}")
    return c


MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
DAYS = "Mon Tue Wed Thu Fri Sat Sun".split()


def messages(seed):
    """The corpus, deterministic for `seed`."""
    r = random.Random(seed)
    words = ["alpha", "build", "cache", "deploy", "error", "fix", "graph", "hello", "index",
             "join", "kernel", "lunch", "merge", "notes", "offsite", "patch", "query",
             "release", "server", "test", "update", "vacation", "weekly", "xml", "yearly"]
    subjects = [" ".join(r.sample(words, 3)) for _ in range(600)]
    people = [(f"{r.choice(['Ann','Bob','Cy','Dee','Eve','Fay','Gus','Hal'])} {r.choice(['Smith','Jones','Ng','Okafor','Ruiz'])}",
               f"user{i}@example.org") for i in range(200)]
    refs = []  # (message-id, references, subject) of each message so far
    out = []
    for i in range(MESSAGES):
        mid = f"{i}.{seed}@bench.example"
        name, addr = r.choice(people)
        to = r.choice(people)
        headers = [f"From: {name} <{addr}>", f"To: {to[0]} <{to[1]}>"]
        if r.random() < 0.6 and refs:
            pid, prefs, psubj = refs[r.randrange(max(0, len(refs) - 300), len(refs))]
            chain = (prefs + [pid])[-10:]
            subj = r.choice(["Re: ", "RE: ", "Re: [list] ", "Fwd: "]) + psubj
            if r.random() < 0.8:
                headers.append("References: " + " ".join(f"<{x}>" for x in chain))
            headers.append(f"In-Reply-To: <{pid}>")
            base = psubj
        else:
            chain = []
            base = r.choice(subjects)
            subj = base if r.random() < 0.9 else f"[list] {base} (fwd)"
        headers.append(f"Subject: {subj}")
        t = 1_700_000_000 + i * 6000 + r.randrange(-50_000, 50_000)
        roll = r.random()
        if roll < 0.02:
            pass  # no Date:
        elif roll < 0.03:
            headers.append("Date: sometime last week")
        else:
            zone = r.choice([0, 100, -500, 530, -800])
            off = (abs(zone) // 100 * 3600 + abs(zone) % 100 * 60) * (1 if zone >= 0 else -1)
            tm = time.gmtime(t + off)
            headers.append("Date: %s, %02d %s %d %02d:%02d:%02d %s%04d" % (
                DAYS[tm.tm_wday], tm.tm_mday, MONTHS[tm.tm_mon - 1], tm.tm_year,
                tm.tm_hour, tm.tm_min, tm.tm_sec, "+" if zone >= 0 else "-", abs(zone)))
        headers.append(f"Message-ID: <{mid}>")
        body = "line of text\r\n" * r.randrange(2, 40)
        out.append(("\r\n".join(headers) + "\r\n\r\n" + body).encode())
        refs.append((mid, chain, base))
    return out


def fill(port, user, password, seed):
    c = login(port, user, password)
    if not c.cmd(f'LIST "" {FOLDER}'):
        c.cmd(f"CREATE {FOLDER}")
    st = c.cmd(f"STATUS {FOLDER} (MESSAGES)")
    have = int(st[0].split(b"MESSAGES ")[1].split(b")")[0]) if st else 0
    msgs = messages(seed)
    batch = []
    for i in range(have, MESSAGES):
        m = msgs[i]
        c.n += 1
        batch.append(b"s%d" % c.n)
        # A fixed INTERNALDATE per message (one minute apart): a message without a usable
        # Date: sorts by it, so it must not depend on when the folder was filled.
        tm = time.gmtime(1_600_000_000 + i * 60)
        idate = "%02d-%s-%d %02d:%02d:%02d +0000" % (
            tm.tm_mday, MONTHS[tm.tm_mon - 1], tm.tm_year, tm.tm_hour, tm.tm_min, tm.tm_sec)
        c.s.sendall(b"s%d APPEND %s \"%s\" {%d+}\r\n" % (c.n, FOLDER.encode(), idate.encode(), len(m))
                    + m + b"\r\n")
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


SORT = "UID SORT (REVERSE DATE) UTF-8 ALL"
THREAD = "UID THREAD REFERENCES UTF-8 ALL"


ANSWERS = {}


def timed(c, command):
    t0 = time.perf_counter()
    lines = c.cmd(command)
    ms = (time.perf_counter() - t0) * 1000
    want = b"* SORT" if "SORT" in command else b"* THREAD"
    got = [l for l in lines if l.startswith(want)]
    if not got:
        raise RuntimeError(f"{command}: no {want!r} line")
    ANSWERS[command] = hashlib.sha256(got[0]).hexdigest()[:16]
    return ms


def row(workload, label, times, errors):
    ts = sorted(times)
    if not ts:
        return
    p50 = statistics.median(ts)
    print(json.dumps({
        "workload": workload,
        "label": label,
        "ops": len(ts),
        "ops_per_sec": 1000.0 / p50,
        "p50_ms": p50,
        "p99_ms": ts[min(len(ts) - 1, int(len(ts) * 0.99))],
        "errors": errors,
        # The answer's digest: equal across targets when the servers agree.
        "answer": ANSWERS.get(SORT if "sort" in workload else THREAD),
    }), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--label", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fill-only", action="store_true")
    ap.add_argument("--cold", choices=["sort", "thread"])
    a = ap.parse_args()
    fill(a.port, a.user, a.password, a.seed)
    if a.fill_only:
        return
    c = login(a.port, a.user, a.password)
    c.cmd(f"SELECT {FOLDER}")
    if a.cold:
        command = SORT if a.cold == "sort" else THREAD
        try:
            row(f"imap-{a.cold}-cold", a.label, [timed(c, command)], 0)
        except Exception as e:
            print(f"cold {a.cold}: {e}", file=sys.stderr)
            row(f"imap-{a.cold}-cold", a.label, [], 1)
        c.close()
        return
    for command in (SORT, THREAD):  # warming, untimed
        c.cmd(command)
    for name, command in (("imap-sort-warm", SORT), ("imap-thread-warm", THREAD)):
        times, errors = [], 0
        for i in range(a.samples):
            try:
                times.append(timed(c, command))
            except Exception as e:
                errors += 1
                print(f"{name} sample {i}: {e}", file=sys.stderr)
        row(name, a.label, times, errors)
    c.close()


if __name__ == "__main__":
    main()
