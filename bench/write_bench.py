#!/usr/bin/python3
"""Device writes against a growing fleet: POST /api/kbgap/devices in batches of 10,000 devices
into a fresh `kbgap serve`, timing each answer. Each write brings the server's snapshot up to date
from what changed (docs/scaling.md, "Writes cost the batch"); before that, every write read back
and re-evaluated every stored device, and the time grew with the fleet.
With KBGAP_BENCH_POSTGRES set to a PostgreSQL URL (scripts/pg_server.sh start DIR writes one to
DIR/url), each run stores into a new database on that server instead of SQLite.
While each POST is in flight, a reader asks for one stored device's missing KBs and for one page
of machines, one request after another, and the latencies of those reads are reported (docs/
scaling.md: a read never waits for a write's reload).
With --preload N, N devices are imported with `kbgap devices import` before the server starts (in
files of 50,000), so that writes into a large fleet are measured without writing it all through
the API first: `bench/write_bench.py build/kbgap 5 --preload 990000` times POSTs at 990,001 on.
With --fleet real, each device is one of the real inventories (data/inventories, as the demo fleet
imports them) under a new id and name, with about a quarter of its installed KBs left out at
random (device n as device n + 100,000: at most 100,000 distinct states): devices of many kinds
and states, each with its real list of KBs, instead of the default's one kind, ten builds and one
KB.
With --pause S, the POSTs are S seconds apart, so that each finds the server idle (the change log
of the one before recorded: some 3 s for 10,000 real devices into a million); without it they are
sent back to back, and from the second on a POST shares the machine with the recorder.
Usage: bench/write_bench.py [path/to/kbgap] [batches] [--preload N] [--fleet real] [--pause S]
Result: appended to bench/results/write.txt
"""
import json
import os
import random
import signal
import subprocess
import sys
import statistics
import tempfile
import threading
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = sys.argv[1:]
PRELOAD = 0
if "--preload" in ARGS:
    at = ARGS.index("--preload")
    PRELOAD = int(ARGS[at + 1])
    del ARGS[at:at + 2]
PAUSE = 0.0
if "--pause" in ARGS:
    at = ARGS.index("--pause")
    PAUSE = float(ARGS[at + 1])
    del ARGS[at:at + 2]
FLEET = "simple"
if "--fleet" in ARGS:
    at = ARGS.index("--fleet")
    FLEET = ARGS[at + 1]
    del ARGS[at:at + 2]
KBGAP = os.path.abspath(ARGS[0] if len(ARGS) > 0 else os.path.join(ROOT, "build/kbgap"))
BATCHES = int(ARGS[1]) if len(ARGS) > 1 else 10
BUILDS = ["10.0.19045.%d" % r for r in (3803, 4046, 4170, 4291, 4412, 4529, 4651, 4780, 4894, 5011)]


TEMPLATES = []  # --fleet real: the real inventories as kbgap JSON


def real_templates(work, env):
    """The demo fleet's devices (scripts/run.sh imports them so), as kbgap JSON."""
    data = os.path.join(work, "templates")
    inventories = os.path.join(ROOT, "data/inventories")
    for name in sorted(os.listdir(inventories)):
        if "systeminfo" not in name:
            continue
        files = [os.path.join(inventories, name)]
        qfe = files[0].split("_systeminfo")[0] + "_qfe.txt"
        if os.path.exists(qfe):
            files.append(qfe)
        subprocess.run([KBGAP, "--data", data, "devices", "import"] + files, check=True,
                       capture_output=True, env=env)
    listed = subprocess.run([KBGAP, "--data", data, "devices", "list", "--format", "json"],
                            check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(listed)


def device(n):
    """The benchmark's device number n: Windows 10 Enterprise on one of ten builds, or with
    --fleet real one of the real inventories with some of its KBs left out."""
    if TEMPLATES:
        variant = n % 100000
        d = dict(TEMPLATES[variant % len(TEMPLATES)])
        d["id"] = "%040x" % n
        d["computerDnsName"] = "pc%d" % n
        pick = random.Random(variant)
        d["installedKbs"] = [kb for kb in d.get("installedKbs", []) if pick.random() >= 0.25]
        return d
    return {"id": "%040x" % n, "computerDnsName": "pc%d" % n,
            "osName": "Microsoft Windows 10 Enterprise", "osBuild": BUILDS[n % len(BUILDS)],
            "osArchitecture": "x64", "installedKbs": ["KB5034122"]}


def preload(data, env, work):
    """Devices 2 .. PRELOAD + 1 imported before the server starts, 50,000 to a file."""
    started = time.time()
    for first in range(2, PRELOAD + 2, 50000):
        path = os.path.join(work, "preload.json")
        with open(path, "w") as f:
            json.dump([device(n) for n in range(first, min(PRELOAD + 2, first + 50000))], f)
        subprocess.run([KBGAP, "--data", data, "devices", "import", path], check=True,
                       capture_output=True, env=env)
        os.remove(path)
    print("preloaded %d devices in %.1f s" % (PRELOAD, time.time() - started), flush=True)


def rss(pid):
    """The server's resident memory now and at its peak, from /proc."""
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields.get("VmRSS", "?"), fields.get("VmHWM", "?")


def main():
    work = tempfile.mkdtemp(prefix="kbgap-write-")
    data = os.path.join(work, "data")
    # No rate limit: the reader asks as fast as it is answered.
    env = dict(os.environ, KBGAP_CATALOG_SYNC_INTERVAL="0", KBGAP_RATE_LIMITS_MACHINES_PER_MINUTE="0",
               KBGAP_RATE_LIMITS_MACHINES_PER_HOUR="0")
    backend = "SQLite"
    admin = os.environ.get("KBGAP_BENCH_POSTGRES")
    if admin:
        name = "bench_%d_%d" % (os.getpid(), int(time.time()))
        subprocess.run(["psql", admin, "-qc", "CREATE DATABASE " + name], check=True)
        env["KBGAP_STORAGE_URL"] = admin.rsplit("/", 1)[0] + "/" + name
        backend = "PostgreSQL"
    subprocess.run([KBGAP, "--data", data, "devices", "import",
                    os.path.join(ROOT, "data/inventories/11_24H2_x64_enterprise_systeminfo.txt")],
                   check=True, capture_output=True, env=env)
    if FLEET == "real":
        TEMPLATES.extend(real_templates(work, env))
    elif FLEET != "simple":
        sys.exit("write_bench: --fleet is simple or real, not " + FLEET)
    if PRELOAD:
        preload(data, env, work)
    port_file = os.path.join(work, "port")
    server = subprocess.Popen([KBGAP, "--data", data, "serve", "--quiet", "--listen",
                               "127.0.0.1:0", "--port-file", port_file],
                              stderr=None if os.environ.get("KBGAP_BENCH_STDERR") else
                              subprocess.DEVNULL, env=env)
    reads = {"on": False, "latencies": [], "errors": 0, "stop": False}
    try:
        while not os.path.exists(port_file):
            time.sleep(0.1)
        port = int(open(port_file).read())
        token = subprocess.run([KBGAP, "--data", data, "token", "--role", "Machine.ReadWrite.All",
                                "--ttl", "2h"], capture_output=True, text=True,
                               env=env).stdout.strip()
        reader = subprocess.run([KBGAP, "--data", data, "token", "--role", "Software.Read.All",
                                 "--role", "Machine.Read.All", "--ttl", "2h", "--app", "reader"],
                                capture_output=True, text=True, env=env).stdout.strip()
        base = "http://127.0.0.1:%d" % port

        def read_loop():
            session = requests.Session()
            session.headers["Authorization"] = "Bearer " + reader
            first = session.get(base + "/api/machines?$top=1", timeout=600).json()["value"][0]
            paths = ["/api/machines/%s/getmissingkbs" % first["id"], "/api/machines?$top=1"]
            k = 0
            while not reads["stop"]:
                if not reads["on"]:
                    time.sleep(0.005)
                    continue
                started = time.time()
                r = session.get(base + paths[k % 2], timeout=600)
                k += 1
                if reads["on"]:
                    reads["latencies"].append(time.time() - started)
                    reads["errors"] += r.status_code != 200

        reading = threading.Thread(target=read_loop, daemon=True)
        reading.start()
        lines = ["date: %s  host: %d cores  store: %s  command: bench/write_bench.py %s %d%s" % (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.cpu_count(), backend, KBGAP,
            BATCHES, (" --preload %d" % PRELOAD if PRELOAD else "") +
            (" --fleet real (%d templates)" % len(TEMPLATES) if TEMPLATES else "") +
            (" --pause %g" % PAUSE if PAUSE else ""))]
        stored = 1 + PRELOAD
        for batch in range(BATCHES):
            devices = [device(stored + 1 + i) for i in range(10000)]
            body = json.dumps(devices)
            reads["latencies"], reads["errors"] = [], 0
            reads["on"] = True
            started = time.time()
            r = requests.post(base + "/api/kbgap/devices", data=body, timeout=600,
                              headers={"Authorization": "Bearer " + token,
                                       "Content-Type": "application/json"})
            took = time.time() - started
            reads["on"] = False
            # The first read of a count after the write: it may gather the new snapshot's
            # fleet-wide counts (FleetFacts), once per snapshot.
            after = time.time()
            requests.get(base + "/api/machines?$top=1", timeout=600,
                         headers={"Authorization": "Bearer " + reader})
            after = time.time() - after
            during = sorted(reads["latencies"])
            p99 = during[min(len(during) - 1, int(len(during) * 0.99))] if during else 0
            lines.append("%7d devices stored, POST of 10,000 more: HTTP %d in %.2f s; reads during "
                         "it: %d (%d not 200), median %.1f ms, p99 %.1f ms, max %.1f ms; the first "
                         "read after it %.0f ms; server RSS %s, peak %s" % (
                             stored, r.status_code, took, len(during), reads["errors"],
                             1000 * (statistics.median(during) if during else 0), 1000 * p99,
                             1000 * (during[-1] if during else 0), 1000 * after,
                             *rss(server.pid)))
            print(lines[-1], flush=True)
            stored += 10000
            if PAUSE and batch + 1 < BATCHES:
                time.sleep(PAUSE)
        os.makedirs(os.path.join(ROOT, "bench/results"), exist_ok=True)
        with open(os.path.join(ROOT, "bench/results/write.txt"), "a") as f:
            f.write("\n".join(lines) + "\n")
    finally:
        reads["stop"] = True
        server.send_signal(signal.SIGTERM)
        server.wait()


if __name__ == "__main__":
    main()
