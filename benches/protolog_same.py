#!/usr/bin/env python3
"""Are two builds' protocol logs byte-identical? For refactors that must not change them.

    python3 benches/protolog_same.py OLD_BINARY NEW_BINARY

Runs each binary as a daemon on loopback (free ports, a private data_dir, both protocol
logging levels at 4, then at 5), drives the same scripted IMAP4 and POP3 sessions against
it over raw sockets (literals, FETCH of whole, partial and header-field sections, SEARCH,
STORE, COPY, EXPUNGE; POP3 USER/PASS, STAT, LIST, UIDL, TOP, RETR, DELE, QUIT), stops it
with SIGTERM, then compares the L*.log files of the two runs after blanking what differs by
nature between runs: timestamps, session ids, ports, durations, the APOP challenge,
UIDVALIDITY values and the UIDVALIDITY half of UIDLs. Prints the unified diff, if any, and
exits 0 when identical, 1 otherwise. Every wait is bounded.
"""

import difflib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

WAIT = 20.0

MESSAGES = [
    (
        "1700000001.M1P1.mta.test",
        "From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: first\n"
        "Date: Mon, 20 Nov 2023 10:00:00 +0000\nMessage-ID: <1@example.org>\n\n"
        "Hello Bob,\nthis is the first message.\n.\nA line with a dot above.\n",
    ),
    (
        "1700000002.M2P1.mta.test",
        "From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.org>\nTo: bob@example.org\n"
        "Subject: multipart\nDate: Tue, 21 Nov 2023 11:00:00 +0100\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\n'
        "Content-Type: text/plain; charset=utf-8\n\nPart one ä\n--b1\n"
        "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
        "AAECAwQFBgcICQ==\n--b1--\n",
    ),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Conn:
    def __init__(self, port):
        deadline = time.time() + WAIT
        while True:
            try:
                self.s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def take(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, data):
        self.s.sendall(data)

    def imap(self, tag, command, literal=None):
        """Sends a command (with one synchronizing literal after it, if given) and reads
        the response up to its tagged line, literals included."""
        if literal is None:
            self.send(f"{tag} {command}\r\n".encode())
        else:
            self.send(f"{tag} {command} {{{len(literal)}}}\r\n".encode())
            assert self.line().startswith(b"+")
            self.send(literal + b"\r\n")
        for _ in range(100000):
            line = self.line()
            m = re.search(rb"\{(\d+)\}$", line)
            if m:
                self.take(int(m.group(1)))
                continue
            if line.startswith(tag.encode() + b" "):
                return line
        raise RuntimeError("no tagged reply")

    def pop(self, command, multi=False):
        self.send(command.encode() + b"\r\n")
        status = self.line()
        if multi and status.startswith(b"+OK"):
            for _ in range(100000):
                if self.line() == b".":
                    break
        return status


def imap_script(port):
    c = Conn(port)
    c.line()
    c.imap("a1", "CAPABILITY")
    c.imap("a2", "LOGIN bob secret")
    c.imap("a3", 'LIST "" "*"')
    c.imap("a4", "SELECT INBOX")
    msg = b"From: c@example.org\r\nSubject: appended\r\n\r\nbody {5}\r\nline\r\n"
    c.imap("a5", 'APPEND INBOX (\\Flagged) "01-Jan-2024 00:00:00 +0000"', msg)
    # A large message (streamed into the store, read in pieces): every kind of line end,
    # CRLFs across the 64 KiB piece boundaries, synchronizing and LITERAL+.
    big = (b"From: c@example.org\r\nSubject: big\r\n\r\n"
           + b"0123456789 abcdef\r\nbare lf\nbare cr\rdouble\r\r\n" * 6000)[:300000] + b"\r"
    c.imap("a5b", "APPEND Trash (\\Seen)", big)
    c.send(f"a5c APPEND Trash {{{len(big)}+}}\r\n".encode() + big + b"\r\n")
    # Its completion before the next command (pipelining would make the log order racy).
    for _ in range(100):
        if c.line().startswith(b"a5c "):
            break
    c.imap("a6", "NOOP")
    c.imap("a7", "FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)")
    c.imap("a8", "FETCH 1:3 BODY.PEEK[]")
    c.imap("a9", "FETCH 2 (BODY[1] BODY.PEEK[2]<2.8> BODY[HEADER.FIELDS (Subject From)])")
    c.imap("a10", "UID FETCH 1:* (BODY.PEEK[TEXT] RFC822.HEADER)")
    c.imap("a11", "SEARCH FROM alice")
    c.imap("a12", "UID SEARCH BODY dot")
    c.imap("a13", "STORE 1 +FLAGS (\\Deleted $Label1)")
    c.imap("a14", "COPY 2 Trash")
    c.imap("a15", "EXPUNGE")
    c.imap("a16", 'STATUS Trash (MESSAGES UIDNEXT UNSEEN)')
    c.imap("a17", "FETCH 1:* FLAGS")
    c.imap("a18", "BOGUS command")
    c.imap("a19", "LOGOUT")


def pop3_script(port):
    c = Conn(port)
    c.line()
    c.pop("CAPA", multi=True)
    c.pop("USER bob")
    c.pop("PASS secret")
    c.pop("STAT")
    c.pop("LIST", multi=True)
    c.pop("UIDL", multi=True)
    c.pop("TOP 1 2", multi=True)
    c.pop("RETR 2", multi=True)
    c.pop("DELE 1")
    c.pop("NOOP")
    c.pop("QUIT")


def run(binary, work, level):
    data = os.path.join(work, "data")
    inbox = os.path.join(data, "mail", "bob")
    for d in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(inbox, d))
    for i, (name, text) in enumerate(MESSAGES):
        path = os.path.join(inbox, "new", name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.utime(path, (1700000000 + i, 1700000000 + i))
    with open(os.path.join(work, "users"), "w") as f:
        f.write("bob:{PLAIN}secret\n")
    imap, pop3 = free_port(), free_port()
    logs = os.path.join(work, "logs")
    config = os.path.join(work, "mailserver.toml")
    with open(config, "w") as f:
        f.write(
            f"""[server]
hostname = "mail.test"
data_dir = "{data}"
[imap]
listen = ["127.0.0.1:{imap}"]
[pop3]
listen = ["127.0.0.1:{pop3}"]
[auth]
users_file = "users"
[ParametersSystem]
"POP3 Protocol Logging Level" = {level}
"POP3 Protocol Log Path" = "{logs}/pop3"
"IMAP Protocol Logging Level" = {level}
"IMAP Protocol Log Path" = "{logs}/imap"
"""
        )
    daemon = subprocess.Popen(
        [binary, "--config", config, "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        imap_script(imap)
        pop3_script(pop3)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=WAIT)
    out = {}
    for service in ("imap", "pop3"):
        d = os.path.join(logs, service)
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                out[f"level{level}/{service}/{name}"] = f.read().decode("utf-8", "replace")
    return out


def normalise(text):
    out = []
    for line in text.splitlines():
        if line.startswith("#Date:"):
            line = "#Date: -"
        elif not line.startswith("#"):
            # date-time, session-id, sequence, local, remote (port), event, data
            parts = line.split(",", 6)
            if len(parts) == 7:
                parts[0] = "T"
                parts[1] = "ID"
                parts[3] = re.sub(r":\d+$", ":PORT", parts[3])
                parts[4] = re.sub(r":\d+$", ":PORT", parts[4])
                line = ",".join(parts)
        line = re.sub(r"duration=[0-9.]+s", "duration=Ds", line)
        line = re.sub(r"<\d+\.[0-9a-f]+@", "<PID.NONCE@", line)
        line = re.sub(r"(UIDVALIDITY|APPENDUID|COPYUID) \d+", r"\1 V", line)
        line = re.sub(r"^(.*,>,\d+ )([0-9a-f]{8})[0-9a-f]{8}$", r"\1\2VVVVVVVV", line)
        out.append(line)
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    runs = []
    for binary in sys.argv[1:]:
        logs = {}
        for level in (4, 5):
            with tempfile.TemporaryDirectory() as work:
                logs.update(run(os.path.abspath(binary), work, level))
        runs.append(logs)
    a, b = runs
    same = True
    if sorted(a) != sorted(b):
        print(f"different files: {sorted(a)} vs {sorted(b)}")
        same = False
    for name in sorted(set(a) & set(b)):
        na, nb = normalise(a[name]), normalise(b[name])
        diff = list(difflib.unified_diff(na, nb, f"old/{name}", f"new/{name}", lineterm=""))
        if diff:
            same = False
            print("\n".join(diff[:80]))
            if len(diff) > 80:
                print(f"... {len(diff) - 80} more diff lines")
        else:
            print(f"{name}: {len(na)} lines, identical")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
