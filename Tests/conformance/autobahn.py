"""Runs the Autobahn cases 1.* to 10.* (the kosoku runner) against `uvchatd --echo` on a free loopback port.

Writes the report to the folder given by --outdir, prints one line per case that is not OK (INFORMATIONAL counts
as OK, as Autobahn itself treats it), a closing 'N passed, M failed' line, and exits non-zero unless every case is
OK or INFORMATIONAL for both the exchange and the closing handshake.
"""
import argparse
import asyncio
import collections
import re
import subprocess
import sys
import threading
import time

import kosoku
from kosoku._report import write_reports

GOOD = {"OK", "INFORMATIONAL"}


def start_server(binary, www):
    proc = subprocess.Popen([binary, "--echo", "--host", "127.0.0.1", "--port", "0", "--www", www,
                             "--no-rate-limits"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 15
    for line in proc.stderr:
        m = re.search(r"msg=listening .*port=(\d+)", line)
        if m:
            # Keep draining stderr so that the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, int(m.group(1))
        if time.time() > deadline:
            break
    proc.kill()
    raise SystemExit("uvchatd --echo did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--www", required=True)
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--cases", nargs="*", default=[f"{n}.*" for n in (1, 2, 3, 4, 5, 6, 7, 9, 10)])  # Autobahn has no section 8
    ap.add_argument("--parallelism", type=int, default=4)
    args = ap.parse_args()

    proc, port = start_server(args.binary, args.www)
    try:
        try:
            results = asyncio.run(kosoku.run_fuzzingclient(f"ws://127.0.0.1:{port}/echo", args.cases,
                                                           concurrency=args.parallelism))
        except kosoku.FailureError as failure:
            results = failure.results
    finally:
        proc.terminate()
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed"
    write_reports(results, args.outdir)

    tally = collections.Counter()
    bad = []
    for r in results:
        b, c = r.behavior.value, r.behavior_close.value
        tally[b] += 1
        if b not in GOOD or c not in GOOD:
            bad.append(f"case {r.case_id}: behavior={b} close={c} remote_close_code={r.remote_close_code}")
    for line in bad:
        print(line)
    print("autobahn verdicts: " + ", ".join(f"{k}={v}" for k, v in sorted(tally.items())))
    print(f"report: {args.outdir}/index.html")
    if rc != 0:
        print(f"uvchatd exited with {rc} after SIGTERM")
    print(f"conformance: {len(results) - len(bad)} passed, {len(bad)} failed")
    sys.exit(0 if not bad and results and rc == 0 else 1)


if __name__ == "__main__":
    main()
