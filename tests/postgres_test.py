"""Several `kbgap serve` processes on one PostgreSQL (docs/scaling.md), over real HTTP:
a write through one is read through the other within a second; PostgreSQL stopped, reads go on
from the last snapshot and writes get 503 with Retry-After, and both recover by themselves when it
is back; a server killed (SIGKILL) while it takes writes loses nothing it acknowledged.

Usage: postgres_test.py KBGAP SOURCE_DIR. It starts a PostgreSQL server of its own
(scripts/pg_server.sh), since it stops and starts it."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests

import server_support

KBGAP, SOURCE = sys.argv[1], sys.argv[2]
PG_SERVER = os.path.join(SOURCE, "scripts", "pg_server.sh")


LIMIT = 12  # software calls an hour, per application, in test 4


def device(n, name=None):
    return {"id": f"{n:040x}", "computerDnsName": name or f"pc{n}.example.com",
            "osName": "Microsoft Windows 10 Enterprise", "osBuild": "10.0.19045.3803",
            "osArchitecture": "x64", "installedKbs": ["KB5033372"]}


class SeveralServers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="kbgap-pg-")
        os.chmod(cls.dir, 0o755)
        cls.pg = os.path.join(cls.dir, "pg")
        subprocess.run([PG_SERVER, "start", cls.pg], check=True)
        with open(os.path.join(cls.pg, "url")) as f:
            cls.url = f.read().strip()
        # The software endpoints' limit, low: test 4 finds it shared by the servers.
        cls.env = dict(os.environ, KBGAP_STORAGE_URL=cls.url, KBGAP_CATALOG_SYNC_INTERVAL="0",
                       KBGAP_RATE_LIMITS_MACHINES_PER_MINUTE="0",
                       KBGAP_RATE_LIMITS_MACHINES_PER_HOUR="0",
                       KBGAP_RATE_LIMITS_SOFTWARE_PER_MINUTE="0",
                       KBGAP_RATE_LIMITS_SOFTWARE_PER_HOUR=str(LIMIT))
        cls.data = {}
        cls.servers = {}
        cls.ports = {}
        for name in ("a", "b"):
            data = os.path.join(cls.dir, name)
            os.makedirs(data)
            if name == "b":  # every server checks tokens with the same key
                shutil.copytree(os.path.join(cls.data["a"], "keys"), os.path.join(data, "keys"))
            cls.data[name] = data
            cls.start(name)
        token = subprocess.run(
            [KBGAP, "--data", cls.data["a"], "token", "--role", "Machine.ReadWrite.All",
             "--role", "Machine.Read.All", "--role", "Software.Read.All",
             "--role", "Vulnerability.Read.All"],
            env=cls.env, capture_output=True, text=True, check=True)
        cls.auth = {"Authorization": f"Bearer {token.stdout.strip()}"}

    @classmethod
    def software_reader(cls, app):
        token = subprocess.run(
            [KBGAP, "--data", cls.data["a"], "token", "--role", "Software.Read.All", "--app", app],
            env=cls.env, capture_output=True, text=True, check=True)
        return {"Authorization": f"Bearer {token.stdout.strip()}"}

    @classmethod
    def start(cls, name):
        work = os.path.join(cls.dir, f"work-{name}")
        os.makedirs(work, exist_ok=True)
        cls.servers[name], cls.ports[name] = server_support.serve(
            KBGAP, cls.data[name], work, "--quiet", env=cls.env)

    @classmethod
    def tearDownClass(cls):
        for p in cls.servers.values():
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stderr:
                p.stderr.close()
        subprocess.run([PG_SERVER, "stop", cls.pg])
        shutil.rmtree(cls.dir, ignore_errors=True)

    def base(self, name):
        return f"http://127.0.0.1:{self.ports[name]}"

    def post(self, name, devices):
        return requests.post(self.base(name) + "/api/kbgap/devices", json=devices,
                             headers=self.auth, timeout=60)

    def machines(self, name):
        r = requests.get(self.base(name) + "/api/machines", headers=self.auth, timeout=60)
        self.assertEqual(r.status_code, 200, r.text)
        return {m["id"]: m for m in r.json()["value"]}

    def wait_for(self, name, ids, limit):
        """Seconds until server `name` lists every id, or fails after `limit`."""
        start = time.time()
        while True:
            if set(ids) <= set(self.machines(name)):
                return time.time() - start
            if time.time() - start > limit:
                self.fail(f"server {name} did not show {len(ids)} devices within {limit} s")
            time.sleep(0.02)

    def test_1_a_write_through_one_is_read_through_the_other_within_a_second(self):
        for i, (writer, reader) in enumerate([("a", "b"), ("b", "a"), ("a", "b")]):
            batch = [device(1000 + 10 * i + k) for k in range(3)]
            r = self.post(writer, batch)
            self.assertEqual(r.status_code, 200, r.text)
            took = self.wait_for(reader, [d["id"] for d in batch], limit=5)
            print(f"write through {writer}, read through {reader} after {took * 1000:.0f} ms",
                  file=sys.stderr)
            self.assertLess(took, 1.0)
        # Both answer alike.
        ida = self.machines("a")
        self.assertEqual(set(ida), set(self.machines("b")))
        some = sorted(ida)[0]
        kbs = [requests.get(self.base(s) + f"/api/machines/{some}/getmissingkbs",
                            headers=self.auth, timeout=60).json()["value"] for s in ("a", "b")]
        self.assertEqual(kbs[0], kbs[1])
        self.assertTrue(kbs[0])

    def test_2_postgres_down_reads_go_on_writes_get_503_then_both_recover(self):
        before = self.machines("a")
        subprocess.run([PG_SERVER, "down", self.pg], check=True)
        try:
            for name in ("a", "b"):
                self.assertEqual(set(self.machines(name)), set(before))
            r = self.post("a", [device(2000)])
            self.assertEqual(r.status_code, 503, r.text)
            self.assertEqual(r.json()["error"]["code"], "ServiceUnavailable")
            self.assertTrue(r.headers.get("Retry-After", "").isdigit())
            ready = requests.get(self.base("b") + "/readyz", timeout=60)
            self.assertEqual(ready.status_code, 503)
            # The delta export reads its change log from the database: a bare 503 too, naming
            # neither the database's host nor its user.
            r = requests.get(self.base("a") + "/api/machines/SoftwareVulnerabilityChangesByMachine",
                             params={"sinceTime": time.strftime(
                                 "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))},
                             headers=self.auth,
                             timeout=60)
            self.assertEqual(r.status_code, 503, r.text)
            self.assertTrue(r.headers.get("Retry-After", "").isdigit())
            self.assertNotIn("127.0.0.1", r.text)
            self.assertNotIn("kbgap@", r.text)
        finally:
            subprocess.run([PG_SERVER, "up", self.pg], check=True)
        # Back: the next write goes through (no restart of either server), and shows on both.
        deadline = time.time() + 30
        while True:
            r = self.post("b", [device(2001)])
            if r.status_code == 200 or time.time() > deadline:
                break
            self.assertEqual(r.status_code, 503, r.text)
            time.sleep(0.5)
        self.assertEqual(r.status_code, 200, r.text)
        self.wait_for("a", [device(2001)["id"]], limit=5)
        self.assertEqual(requests.get(self.base("a") + "/readyz", timeout=60).status_code, 200)

    def test_4_a_rate_limit_holds_across_servers(self):
        # Both servers' calls count against one limit. Calls apart by more than the servers'
        # exchange (200 ms) meet it exactly; with counting per server they would get 2 x LIMIT.
        into_hour = time.time() % 3600
        if into_hour > 3600 - 120:  # not across the hour's turn
            time.sleep(3600 - into_hour + 1)
        auth = self.software_reader("paced")
        answered = {200: 0, 429: 0}
        for i in range(3 * LIMIT):
            r = requests.get(self.base("ab"[i % 2]) + "/api/Software", headers=auth, timeout=60)
            self.assertIn(r.status_code, answered, r.text)
            answered[r.status_code] += 1
            if r.status_code == 429:
                self.assertTrue(r.headers["Retry-After"].isdigit())
            time.sleep(0.7)  # the exchange's 200 ms, with room for a loaded machine
        print(f"paced through two servers: {answered[200]} answered of {3 * LIMIT} "
              f"(limit {LIMIT})", file=sys.stderr)
        self.assertEqual(answered[200], LIMIT)
        # A burst from 6 threads through both: what passes before the servers exchange counts
        # (measured; at worst each server's own limit within one exchange).
        auth = self.software_reader("burst")
        passed = [0]
        lock = threading.Lock()

        def burst(server):
            session = requests.Session()
            for _ in range(20):
                r = session.get(self.base(server) + "/api/Software", headers=auth, timeout=60)
                if r.status_code == 200:
                    with lock:
                        passed[0] += 1

        threads = [threading.Thread(target=burst, args=("ab"[i % 2],)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"burst of 120 calls through two servers: {passed[0]} answered (limit {LIMIT})",
              file=sys.stderr)
        self.assertGreaterEqual(passed[0], LIMIT)
        self.assertLessEqual(passed[0], 2 * LIMIT)

    def test_3_a_server_killed_while_writing_loses_nothing_it_acknowledged(self):
        acknowledged, errors = [], []
        stop = threading.Event()

        def writer():
            n = 3000
            while not stop.is_set():
                batch = [device(n + k) for k in range(5)]
                n += 5
                try:
                    r = self.post("b", batch)
                except requests.RequestException:
                    break  # the server died under this request: not acknowledged
                if r.status_code == 200:
                    acknowledged.extend(d["id"] for d in batch)
                else:
                    errors.append(r.status_code)

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(1.5)
        self.servers["b"].send_signal(signal.SIGKILL)
        self.servers["b"].wait()
        self.servers["b"].stderr.close()
        stop.set()
        t.join()
        self.assertEqual(errors, [])
        self.assertGreater(len(acknowledged), 0)
        # Every acknowledged device is there, through the surviving server.
        self.wait_for("a", acknowledged, limit=5)
        # The killed server starts again on the same database and sees them too.
        self.start("b")
        self.assertTrue(set(acknowledged) <= set(self.machines("b")))


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
