#!/usr/bin/env python3
"""protolog_read_gen.py DIR MB: about MB megabytes of level-5 protocol logs in DIR.

Four files, L0000001.log .. L0000004.log (POP3, IMAP4, POP3, IMAP4), each in time order,
their sessions interleaving in time. Each session is a template of the records a level-5
session writes (connect, greeting, login with PASS ***, the authentication record, a
16 KB message line by line, logout, disconnect), written with a fresh session id, a user
among user0..user49, a client port and advancing timestamps.
"""

import datetime
import os
import sys

out_dir, mb = sys.argv[1], int(sys.argv[2])
os.makedirs(out_dir, exist_ok=True)
HEADER = ("#Service: {svc}\n#Software: mailserver 0.1.0\n#Date: 2026-11-27T10:00:00.000Z\n"
          "#Fields: date-time,session-id,sequence-number,local-endpoint,remote-endpoint,event,data\n")
BODY = ["Return-Path: <sender@example.org>", "Subject: benchmark message",
        "From: Sender <sender@example.org>", "To: <user@example.net>", ""]
BODY += ["line %03d of the body, with some words, \"quotes\" and caf\\xC3\\xA9" % i
         for i in range(220)]


def fmt(data):
    if "," in data or '"' in data:
        return '"' + data.replace('"', '""') + '"'
    return data


def template(svc):
    if svc == "POP3":
        lines = [("+", ""), (">", "+OK ready"), ("<", "USER {user}"), ("<", "PASS ***"),
                 ("*", "authentication succeeded: user={user} mechanism=USER"),
                 (">", "+OK Logged in."), ("<", "RETR 1"), (">", "+OK 16384 octets")]
        lines += [(">", b) for b in BODY]
        lines += [(">", "."), ("<", "QUIT"), (">", "+OK Bye"),
                  ("-", "duration=0.010s bytes-in=40 bytes-out=16500")]
        local = "127.0.0.1:110"
    else:
        lines = [("+", ""), (">", "* OK ready"), ("<", "a1 LOGIN {user} ***"),
                 ("*", "authentication succeeded: user={user} mechanism=LOGIN"),
                 (">", "a1 OK Logged in"), ("<", "a2 SELECT INBOX"), (">", "* 1 EXISTS"),
                 (">", "a2 OK [READ-WRITE] Select completed"), ("<", "a3 FETCH 1 BODY[]"),
                 (">", "* 1 FETCH (BODY[] {16384}")]
        lines += [(">", b) for b in BODY]
        lines += [(">", ")"), (">", "a3 OK Fetch completed"), ("<", "a4 LOGOUT"),
                  (">", "* BYE"), ("-", "duration=0.010s bytes-in=60 bytes-out=16600")]
        local = "127.0.0.1:143"
    # {t} per record, {sid}, {port}, {user}: filled per session.
    return [("%s,{sid},%d,%s,127.0.0.1:{port},%s,%s\n" % ("{t}", i, local, ev, fmt(d)))
            for i, (ev, d) in enumerate(lines)]


T0 = datetime.datetime(2026, 11, 27, 10, 0, 0)
target = mb * 1024 * 1024
files = [("POP3", "L0000001.log"), ("IMAP4", "L0000002.log"),
         ("POP3", "L0000003.log"), ("IMAP4", "L0000004.log")]
tmpl = {svc: template(svc) for svc in ("POP3", "IMAP4")}
handles = []
for svc, name in files:
    f = open(os.path.join(out_dir, name), "w", buffering=1 << 20)
    f.write(HEADER.format(svc=svc))
    handles.append((svc, f))
written, n = 0, 0
while written < target:
    svc, f = handles[n % 4]
    start = T0 + datetime.timedelta(milliseconds=n * 7)
    sid = "%016x" % (0x1000000 + n)
    user = "user%d" % (n % 50)
    port = str(1024 + n % 60000)
    parts = []
    times = [(start + datetime.timedelta(milliseconds=k)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
             for k in range(len(tmpl[svc]) // 16 + 1)]
    for i, rec in enumerate(tmpl[svc]):
        t = times[i // 16]
        parts.append(rec.replace("{t}", t, 1).replace("{sid}", sid, 1).replace("{port}", port, 1)
                     .replace("{user}", user))
    chunk = "".join(parts)
    f.write(chunk)
    written += len(chunk)
    n += 1
for _, f in handles:
    f.close()
print("generated %d sessions, %d MB in %s" % (n, written >> 20, out_dir))
