#!/usr/bin/python3
"""Commit-to-NOTIFY latency at a given event rate, with psycopg2.

    notify_latency.py STREAM CHANNEL EVENTS_PER_S SECONDS

A writer thread commits, RATE/500 times a second, a transaction of 499
ordinary events and one marker event (its note a sequence number) into
STREAM, and notes when each COMMIT returned.  The main thread LISTENs on
CHANNEL, where a view with notify sends the marker rows, and notes when each
arrived.  Prints "p50_ms p99_ms max_ms received sent achieved_events_per_s".
Connects with libpq's environment (PGHOST, PGPORT, PGUSER, PGDATABASE)."""
import json
import select
import sys
import threading
import time

import psycopg2
import psycopg2.extensions

stream, channel = sys.argv[1], sys.argv[2]
rate, seconds = float(sys.argv[3]), float(sys.argv[4])
PER_XACT = 500
committed = {}
done = threading.Event()


def writer():
    conn = psycopg2.connect("")
    cur = conn.cursor()
    interval = PER_XACT / rate
    start = time.time()
    seq = 0
    while time.time() - start < seconds:
        seq += 1
        cur.execute("INSERT INTO " + stream + " SELECT '/page/' || mod(i, 1000), mod(i, 100000), "
                    "mod(i, 200)::float8, now(), NULL FROM generate_series(1, %s) i",
                    (PER_XACT - 1,))
        cur.execute("INSERT INTO " + stream + " VALUES ('/marker', 0, 0, now(), %s)", (str(seq),))
        conn.commit()
        committed[str(seq)] = time.time()
        pause = start + seq * interval - time.time()
        if pause > 0:
            time.sleep(pause)
    committed["_elapsed"] = time.time() - start
    conn.close()
    done.set()


listen = psycopg2.connect("")
listen.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
listen.cursor().execute("LISTEN " + channel)
received = {}
thread = threading.Thread(target=writer)
thread.start()
quiet_since = None
while True:
    if select.select([listen], [], [], 0.1) != ([], [], []):
        listen.poll()
        now = time.time()
        while listen.notifies:
            received[json.loads(listen.notifies.pop(0).payload)["note"]] = now
    if done.is_set():
        quiet_since = quiet_since or time.time()
        if len(received) >= len(committed) - 1 or time.time() - quiet_since > 5:
            break
thread.join()
sent = len(committed) - 1
lat = sorted((received[k] - committed[k]) * 1000 for k in received if k in committed)
if not lat:
    print("0 0 0 0 %d 0" % sent)
    sys.exit(1)
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print("%.1f %.1f %.1f %d %d %.0f" % (p(0.5), p(0.99), lat[-1], len(lat), sent,
                                    sent * PER_XACT / committed["_elapsed"]))
