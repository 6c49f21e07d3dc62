#!/usr/bin/python3
"""Reads against a large fleet: every documented read route with $top=1 (and $count=true where
the route pages), against `kbgap serve` holding DEVICES devices made from the real inventories
(each real device copied with its own id and name, a revision of its line and a random part of
its installed KBs, so that the fleet has many distinct states as real fleets do).

For each route: the first answer after the fleet was loaded (it may gather the fleet-wide facts,
once per snapshot), the median and the worst of 20 more, and the memory the route's requests
added at their peak (VmHWM after the requests less VmRSS before them; the peak is reset before
each route through /proc/<pid>/clear_refs).

Usage: bench/read_bench.py [path/to/kbgap] [devices]   Result: bench/results/read.txt
"""
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KBGAP = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/kbgap"))
DEVICES = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
TARGET_MS, TARGET_MB = 50, 100


def kbgap(data, *args):
    return subprocess.run([KBGAP, "--data", data, *args], check=True, capture_output=True,
                          text=True).stdout


def memory_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def fleet(data, work):
    inventories = os.path.join(ROOT, "data", "inventories")
    kbgap(data, "devices", "import", *[os.path.join(inventories, f)
                                       for f in sorted(os.listdir(inventories))
                                       if f.endswith("_systeminfo.txt")])
    templates = json.loads(kbgap(data, "devices", "list", "--format", "json"))
    rng = random.Random(42)
    devices = []
    for i in range(DEVICES):
        d = dict(rng.choice(templates))
        d["id"] = "%040x" % (i + 1)
        d["computerDnsName"] = "pc%06d.example.com" % i
        build = d["osBuild"].split(".")
        if len(build) == 4 and int(build[3]) > 0:
            build[3] = str(max(1, int(build[3]) - rng.randrange(0, 400)))
            d["osBuild"] = ".".join(build)
        kbs = d.get("installedKbs", [])
        d["installedKbs"] = rng.sample(kbs, rng.randrange(0, len(kbs) + 1)) if kbs else []
        d.pop("firstSeen", None)
        d.pop("lastSeen", None)
        devices.append(d)
    path = os.path.join(work, "fleet.json")
    with open(path, "w") as f:
        json.dump(devices, f)
    kbgap(data, "devices", "import", path)


def main():
    work = tempfile.mkdtemp(prefix="kbgap-read-")
    data = os.path.join(work, "data")
    started = time.time()
    fleet(data, work)
    made = time.time() - started
    port_file = os.path.join(work, "port")
    env = dict(os.environ, **{f"KBGAP_RATE_LIMITS_{g}_PER_{w}": "0"
                              for g in ("MACHINES", "SOFTWARE", "VULNERABILITIES")
                              for w in ("MINUTE", "HOUR")}, KBGAP_CATALOG_SYNC_INTERVAL="0")
    server = subprocess.Popen([KBGAP, "--data", data, "serve", "--quiet", "--listen",
                               "127.0.0.1:0", "--port-file", port_file],
                              stderr=subprocess.DEVNULL, env=env)
    try:
        while not os.path.exists(port_file):
            time.sleep(0.1)
        base = "http://127.0.0.1:%d" % int(open(port_file).read())
        token = kbgap(data, "token", "--role", "Machine.Read.All", "--role", "Software.Read.All",
                      "--role", "Vulnerability.Read.All", "--ttl", "2h").strip()
        session = requests.Session()
        session.headers["Authorization"] = "Bearer " + token

        def get(path):
            t = time.perf_counter()
            r = session.get(base + path, timeout=600)
            return r, (time.perf_counter() - t) * 1000

        first, first_ms = get("/api/machines?$top=1")
        row = get("/api/vulnerabilities/machinesVulnerabilities?$top=1")[0].json()["value"][0]
        machine, cve = row["machineId"], row["cveId"]
        software = get(f"/api/machines/{machine}/software?$top=1")[0].json()["value"][0]["id"]
        rows = get("/api/vulnerabilities/machinesVulnerabilities?$top=0&$count=true")[0].json()[
            "@odata.count"]
        routes = [
            "/api/machines?$top=1", "/api/machines?$top=1&$count=true",
            f"/api/machines?$top=1&$skip={DEVICES - 1}",
            f"/api/machines/{machine}", f"/api/machines/{machine}/getmissingkbs",
            f"/api/machines/{machine}/software?$top=1",
            f"/api/machines/{machine}/vulnerabilities?$top=1&$count=true",
            "/api/vulnerabilities?$top=1", "/api/vulnerabilities?$top=1&$count=true",
            f"/api/vulnerabilities/{cve}",
            f"/api/vulnerabilities/{cve}/machineReferences?$top=1",
            f"/api/vulnerabilities/{cve}/machineReferences?$top=1&$count=true",
            "/api/vulnerabilities/machinesVulnerabilities?$top=1",
            "/api/vulnerabilities/machinesVulnerabilities?$top=1&$count=true",
            f"/api/vulnerabilities/machinesVulnerabilities?$top=1&$skip={rows - 1}",
            "/api/Software?$top=1", f"/api/Software/{software}",
            f"/api/Software/{software}/getmissingkbs",
        ]
        lines = ["date: %s  host: %d cores  command: bench/read_bench.py %s %d" % (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.cpu_count(), KBGAP, DEVICES),
            f"fleet of {DEVICES} devices made and imported in {made:.1f} s; "
            f"{rows} device x CVE rows; server RSS {memory_kib(server.pid, 'VmRSS') // 1024} MiB",
            f"first read after start (the fleet-wide facts gathered): {first_ms:.0f} ms",
            f"{'route':<84} {'median':>8} {'worst':>8} {'extra':>8}"]
        worst_ms = worst_mb = 0
        for path in routes:
            with open(f"/proc/{server.pid}/clear_refs", "w") as f:
                f.write("5")
            rss = memory_kib(server.pid, "VmRSS")
            times = []
            for _ in range(21):
                r, ms = get(path)
                if r.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {r.status_code} {r.text[:200]}")
                times.append(ms)
            extra_mb = max(0, memory_kib(server.pid, "VmHWM") - rss) / 1024
            median, worst = statistics.median(times[1:]), max(times)
            worst_ms, worst_mb = max(worst_ms, median), max(worst_mb, extra_mb)
            shown = path.replace(machine, "{machine}").replace(cve, "{cve}")
            lines.append(f"{shown:<84} {median:>6.1f}ms {worst:>6.1f}ms {extra_mb:>5.1f}MiB")
            print(lines[-1], flush=True)
        verdict = "met" if worst_ms < TARGET_MS and worst_mb < TARGET_MB else "NOT met"
        lines.append(f"target (median under {TARGET_MS} ms, under {TARGET_MB} MB extra): {verdict}"
                     f" (slowest median {worst_ms:.1f} ms, most memory {worst_mb:.1f} MiB)")
        print(lines[-1])
        out = os.path.join(ROOT, "bench", "results", "read.txt")
        with open(out, "a") as f:
            f.write("\n".join(lines) + "\n\n")
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
