#!/usr/bin/python3
"""LISTEN on channels with psycopg2 (a real driver) and write each notification
as one line "<receive time, epoch seconds> <channel> <payload>" to a file.

    listen.py OUT_FILE READY_FILE CHANNEL...

Connects with libpq's environment (PGHOST, PGPORT, PGUSER, PGDATABASE), creates
READY_FILE once it listens, and stops on SIGTERM (after writing what it has)."""
import os
import select
import signal
import sys
import time

import psycopg2
import psycopg2.extensions

out_path, ready_path, channels = sys.argv[1], sys.argv[2], sys.argv[3:]
stop = False


def on_term(signum, frame):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
conn = psycopg2.connect("")
conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
cur = conn.cursor()
for channel in channels:
    cur.execute("LISTEN " + psycopg2.extensions.quote_ident(channel, cur))
with open(ready_path, "w"):
    pass
with open(out_path, "w", buffering=1) as out:
    while not stop:
        if select.select([conn], [], [], 0.2) == ([], [], []):
            continue
        conn.poll()
        now = time.time()
        while conn.notifies:
            n = conn.notifies.pop(0)
            out.write("%.6f %s %s\n" % (now, n.channel, n.payload))
