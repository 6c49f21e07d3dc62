#!/usr/bin/python3
"""Regression tests for the reliability defects an independent attack found in `kbgap serve`
(docs/security.md, "Found and fixed"), each over real HTTP against the real server, with the
class each defect belongs to.

Usage: reliability_test.py <kbgap binary> <kbgap_token_tool binary> <source dir>
"""
import json
import os
import resource
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import requests

import server_support

KBGAP, TOKEN_TOOL, SOURCE = sys.argv[1], sys.argv[2], sys.argv[3]
INVENTORIES = os.path.join(SOURCE, "data", "inventories")
AUDIENCE = "https://api.securitycenter.microsoft.com"
ALL_ROLES = ["Software.Read.All", "Machine.Read.All", "Vulnerability.Read.All",
             "Machine.ReadWrite.All"]


def run(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed: {r.stderr}")
    return r


class Server:
    """A data directory and `kbgap serve` on it, started and stopped at will."""

    def __init__(self, *inventories):
        self.work = tempfile.mkdtemp(prefix="kbgap-rel-")
        self.data = os.path.join(self.work, "data")
        self.process = None
        if inventories:
            self.kbgap("devices", "import", *[os.path.join(INVENTORIES, f) for f in inventories])
        self.token = self.kbgap("token", *sum([["--role", r] for r in ALL_ROLES], []),
                                "--ttl", "1h").stdout.strip()

    def kbgap(self, *args, check=True):
        return run(KBGAP, "--data", self.data, *args, check=check)

    def start(self, *args, preexec_fn=None, env=None):
        port_file = os.path.join(self.work, "port")
        if os.path.exists(port_file):
            os.remove(port_file)
        # No rate limits: these tests are about other limits.
        limits = {f"KBGAP_RATE_LIMITS_{group}_PER_{window}": "0"
                  for group in ("MACHINES", "SOFTWARE", "VULNERABILITIES")
                  for window in ("MINUTE", "HOUR")}
        env = dict(os.environ, **dict(limits, **(env or {})))
        self.process = subprocess.Popen(
            [KBGAP, "--data", self.data, "serve", "--quiet", "--listen", "127.0.0.1:0",
             "--port-file", port_file, *args], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn, env=env)
        self.port = server_support.wait_port(self.process, port_file)
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self):
        status, said = server_support.stop(self.process)
        self.process = None
        return status, said

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.process:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.work, ignore_errors=True)

    def get(self, path, token=None, **kw):
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.base + path, headers=headers, timeout=60, **kw)

    def post(self, devices, data=None):
        return requests.post(self.base + "/api/kbgap/devices", json=None if data else devices,
                             data=data, timeout=60,
                             headers={"Authorization": f"Bearer {self.token}",
                                      "Content-Type": "application/json"})

    def machines(self):
        r = self.get("/api/machines")
        assert r.status_code == 200, r.text
        return r.json()["value"]

    def raw(self, request, timeout=10):
        """Sends bytes on one connection; everything the server answers until it closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(request)
            answer = b""
            try:
                while chunk := s.recv(65536):
                    answer += chunk
            except socket.timeout:
                pass
        return answer


def device(name, build="10.0.19045.3803", **more):
    d = {"computerDnsName": name, "osName": "Microsoft Windows 10 Enterprise", "osBuild": build,
         "osArchitecture": "x64", "installedKbs": ["KB5034122"]}
    d.update(more)
    return d


class Storable(unittest.TestCase):
    """1. What the API accepts is stored and read back; a damaged row never stops the server."""

    def test_a_kb_number_the_store_cannot_read_back_is_refused_before_the_transaction(self):
        with Server("11_24H2_x64_enterprise_systeminfo.txt").start() as s:
            before = s.machines()
            for kb in ["KB00001", "KB1", "KB123456789", "KB"]:
                r = s.post([device("p", installedKbs=[kb])])
                self.assertEqual(r.status_code, 400, r.text)
                self.assertEqual(r.json()["error"]["code"], "InvalidInput")
                self.assertIn("installedKbs[0]", r.json()["error"]["message"])
            # Nothing of those batches was written; every read still answers.
            self.assertEqual(s.machines(), before)
            self.assertEqual(s.get("/readyz", token="").status_code, 200)
            # A KB written with leading zeros is the KB it names, and reads back.
            r = s.post([device("p", installedKbs=["KB005034122", "KB5034441"])])
            self.assertEqual(r.status_code, 200, r.text)
            status, said = s.stop()
            self.assertEqual(status, 0, said)
            s.start()
            self.assertEqual(len(s.machines()), 2)
            listed = json.loads(s.kbgap("devices", "list", "--format", "json").stdout)
            p = [d for d in listed if d["computerDnsName"] == "p"][0]
            self.assertEqual(p["installedKbs"], ["KB5034122", "KB5034441"])

    def test_every_real_inventory_posted_as_json_reads_back_after_a_restart(self):
        with Server() as s:
            s.kbgap("devices", "import", *[os.path.join(INVENTORIES, f)
                                           for f in sorted(os.listdir(INVENTORIES))
                                           if f.endswith("_systeminfo.txt")])
            exported = s.kbgap("devices", "list", "--format", "json").stdout
            shutil.rmtree(s.data)
            os.makedirs(s.data)
            s.token = s.kbgap("token", *sum([["--role", r] for r in ALL_ROLES], []),
                              "--ttl", "1h").stdout.strip()
            s.start()
            r = s.post(None, data=exported.encode())
            self.assertEqual(r.status_code, 200, r.text)
            s.stop()
            s.start()
            again = s.kbgap("devices", "list", "--format", "json").stdout
            strip = lambda text: sorted(  # noqa: E731 the times are the write's
                json.dumps({k: v for k, v in d.items() if k not in ("firstSeen", "lastSeen")},
                           sort_keys=True) for d in json.loads(text))
            self.assertEqual(strip(again), strip(exported))
            self.assertEqual(len(s.machines()), len(json.loads(exported)))

    def test_a_damaged_row_is_reported_and_skipped_and_the_server_starts(self):
        with Server("11_24H2_x64_enterprise_systeminfo.txt",
                   "7_sp1_x64_enterprise_en-us_A_systeminfo.txt") as s:
            bad = "ab" * 20
            with sqlite3.connect(os.path.join(s.data, "kbgap.db")) as db:
                # What an older kbgap stored for "KB00001".
                db.execute("INSERT INTO devices (tenant, id, computer_dns_name, name_key,"
                           " inventory, first_seen, last_seen, updated_at)"
                           " VALUES ('kbgap', ?, 'p', 'p', ?, 'x', 'x', 'x')",
                           (bad, json.dumps(dict(device("p", installedKbs=["KB1"]), id=bad))))
            s.start()
            self.assertEqual(len(s.machines()), 2)
            self.assertEqual(s.get("/readyz", token="").status_code, 200)
            listed = s.kbgap("devices", "list")
            self.assertIn(f"kbgap devices remove --tenant kbgap {bad}", listed.stderr)
            s.kbgap("devices", "remove", bad)
            self.assertEqual(len(s.machines()), 2)
            status, said = s.stop()
            self.assertEqual(status, 0)
            self.assertIn(f"stored device {bad} of tenant kbgap does not read back", said)
            self.assertIn(f"kbgap devices remove --tenant kbgap {bad}", said)


class RateLimits(unittest.TestCase):
    """A read handed to a worker (the fleet-wide facts are gathered there) counts once."""

    def test_a_read_handed_to_a_worker_is_counted_once(self):
        with Server("11_24H2_x64_enterprise_systeminfo.txt") as s:
            s.start(env={"KBGAP_RATE_LIMITS_MACHINES_PER_MINUTE": "3"})
            # Within one minute window: wait for the start of one when too close to its end.
            if time.time() % 60 > 50:
                time.sleep(61 - time.time() % 60)
            statuses = [s.get("/api/machines?$top=1").status_code for _ in range(4)]
            self.assertEqual(statuses, [200, 200, 200, 429])


class Connections(unittest.TestCase):
    """2. Idle connections without a token cannot take the server offline."""

    def test_a_new_client_is_served_while_1100_idle_sockets_are_open_under_1024_files(self):
        s = Server("11_24H2_x64_enterprise_systeminfo.txt")
        idle = []
        try:
            # systemd's default soft limit, and no room to raise it: the hard limit is 1024 too.
            s.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
            for _ in range(1100):
                idle.append(socket.create_connection(("127.0.0.1", s.port), timeout=10))
            time.sleep(1)
            cpu_before = self.cpu_seconds(s.process.pid)
            for _ in range(5):
                started = time.time()
                r = requests.get(s.base + "/healthz", timeout=5)
                self.assertEqual(r.status_code, 200)
                self.assertLess(time.time() - started, 1.0)
                r = s.get("/api/machines?$top=1")
                self.assertEqual(r.status_code, 200)
            time.sleep(1)
            # No core spins on a failing accept.
            self.assertLess(self.cpu_seconds(s.process.pid) - cpu_before, 1.0)
        finally:
            for sock in idle:
                sock.close()
            s.close()

    @staticmethod
    def cpu_seconds(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Restore(unittest.TestCase):
    """4. The shared fleet version is the database's after a restore or a damaged file."""

    def test_a_restored_older_database_still_sees_other_processes_writes(self):
        with Server("11_24H2_x64_enterprise_systeminfo.txt") as s:
            db = os.path.join(s.data, "kbgap.db")
            shutil.copy(db, db + ".backup")
            s.kbgap("devices", "import", os.path.join(INVENTORIES,
                                                      "7_sp1_x64_enterprise_en-us_A_systeminfo.txt"),
                    os.path.join(INVENTORIES, "srv_2019_rtm_datacenter_en-us_systeminfo.txt"))
            os.replace(db + ".backup", db)
            for suffix in ("-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)
            s.start()
            self.assertEqual(len(s.machines()), 1)
            # Another process writes one device: the server answers it at once.
            s.kbgap("devices", "import", os.path.join(INVENTORIES, "10_1809_x64_pro_en-us_20190307_systeminfo.txt"))
            self.assertEqual(len(s.machines()), 2)
            s.stop()
            # A version file that says 2^40.
            with open(db + "-fleet-version", "r+b") as f:
                f.write(struct.pack("=q", 1 << 40))
            s.start()
            s.kbgap("devices", "import", os.path.join(INVENTORIES, "7_sp1_x64_enterprise_en-us_A_systeminfo.txt"))
            self.assertEqual(len(s.machines()), 3)

    def test_an_emptied_database_is_refused_with_the_way_out(self):
        with Server("11_24H2_x64_enterprise_systeminfo.txt") as s:
            db = os.path.join(s.data, "kbgap.db")
            os.truncate(db, 0)
            r = s.kbgap("serve", "--listen", "127.0.0.1:0", check=False)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("lost or truncated", r.stderr)
            self.assertIn("kbgap.db-fleet-version", r.stderr)
            self.assertEqual(os.path.getsize(db), 0, "nothing was written over it")


class CatalogIndex(unittest.TestCase):
    """5. A damaged catalog.index is found by its checksum and built again."""

    def test_one_changed_byte_in_a_product_name_changes_no_answer(self):
        with Server("10_rtm_x64_pro_en-us_systeminfo.txt") as s:
            s.start()
            machine = s.machines()[0]["id"]
            before = s.get(f"/api/machines/{machine}/getmissingkbs").json()["value"]
            self.assertGreater(len(before), 0)
            s.stop()
            index = os.path.join(s.data, "catalog.index")
            with open(index, "rb") as f:
                image = bytearray(f.read())
            at = image.find(b"Windows 10 for x64-based Systems")
            self.assertGreater(at, 0)
            image[at] ^= 0x01
            with open(index, "wb") as f:
                f.write(image)
            s.start()
            after = s.get(f"/api/machines/{machine}/getmissingkbs").json()["value"]
            self.assertEqual(after, before)
            _, said = s.stop()
            self.assertIn("catalog.index is damaged", said)


class Framing(unittest.TestCase):
    """6. A body framed any way but chunked alone or Content-Length is refused (smuggling)."""

    def test_ambiguous_transfer_encodings_are_400_and_close(self):
        with Server("11_24H2_x64_enterprise_systeminfo.txt").start() as s:
            hidden = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            body = b"0\r\n\r\n" + hidden
            for coding in [b"chunked, identity", b"identity", b"xchunked", b"chunked,chunked",
                           b"gzip, chunked", b"chunked\r\nTransfer-Encoding: chunked"]:
                answer = s.raw(b"POST /api/kbgap/devices HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: " + coding + b"\r\n\r\n" + body)
                self.assertTrue(answer.startswith(b"HTTP/1.1 400"), (coding, answer[:200]))
                self.assertIn(b"Connection: close", answer)
                self.assertEqual(answer.count(b"HTTP/1.1 "), 1, (coding, answer))
            # Both framings at once.
            answer = s.raw(b"POST /api/kbgap/devices HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n" + body)
            self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer[:200])
            self.assertEqual(answer.count(b"HTTP/1.1 "), 1)
            # chunked alone still works.
            payload = json.dumps([device("chunky")]).encode()
            answer = s.raw(b"POST /api/kbgap/devices HTTP/1.1\r\nHost: x\r\n"
                           b"Authorization: Bearer " + s.token.encode() + b"\r\n"
                           b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n" +
                           f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n")
            self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:300])


class Times(unittest.TestCase):
    """7. Times are RFC 3339, never ahead of the server, and a name resolves deterministically."""

    def test_times_are_checked_and_a_future_one_cannot_hold_a_name(self):
        with Server().start() as s:
            for bad in ["0000", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "yesterday",
                        "2026-01-01", "2026-01-01T25:00:00Z", "1969-12-31T23:59:59Z"]:
                r = s.post([device("DESKTOP", firstSeen=bad)])
                self.assertEqual(r.status_code, 400, (bad, r.text))
                self.assertIn("firstSeen", r.json()["error"]["message"])
            self.assertEqual(s.machines(), [])
            real = "1" * 40
            self.assertEqual(s.post([device("DESKTOP", id=real,
                                            lastSeen="2026-01-01T00:00:00Z")]).status_code, 200)
            squatter = "2" * 40
            r = s.post([device("desktop", id=squatter, lastSeen="9999-12-31T00:00:00Z")])
            self.assertEqual(r.status_code, 200)
            stored = {m["id"]: m for m in s.machines()}
            self.assertLessEqual(stored[squatter]["lastSeen"],
                                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            # The real device reports again: the name is its own again.
            time.sleep(1.1)
            s.post([device("DESKTOP", id=real)])
            self.assertEqual(s.get("/api/machines/DESKTOP").json()["id"], real)
            # Same times: the smaller id, whatever the order of writing.
            same = "2026-06-01T00:00:00Z"
            s.post([device("twin", id="4" * 40, lastSeen=same, firstSeen=same),
                    device("twin", id="3" * 40, lastSeen=same, firstSeen=same)])
            for _ in range(3):
                self.assertEqual(s.get("/api/machines/TWIN").json()["id"], "3" * 40)
            # An offset is a time in UTC.
            s.post([device("zoned", lastSeen="2026-06-01T08:00:00.250+02:00")])
            zoned = [m for m in s.machines() if m["computerDnsName"] == "zoned"][0]
            self.assertEqual(zoned["lastSeen"], "2026-06-01T06:00:00Z")


class Paging(unittest.TestCase):
    """8. Every nextLink moves on: following them ends, and never repeats an item."""

    def test_top_zero_has_no_next_link_and_every_collection_pages_to_its_end(self):
        with Server("10_1809_x64_pro_en-us_20190307_systeminfo.txt",
                   "7_sp1_x64_enterprise_en-us_B_systeminfo.txt",
                   "srv_2019_rtm_datacenter_en-us_systeminfo.txt").start() as s:
            machine = s.machines()[0]["id"]
            cve = s.get(f"/api/machines/{machine}/vulnerabilities?$top=1").json()["value"][0]["id"]
            # Each collection's most a page holds, as Defender documents it.
            for path, most in [("/api/machines", 10000), ("/api/vulnerabilities", 8000),
                               ("/api/vulnerabilities/machinesVulnerabilities", 10000),
                               (f"/api/vulnerabilities/{cve}/machineReferences", 10000),
                               (f"/api/machines/{machine}/vulnerabilities", 8000),
                               (f"/api/machines/{machine}/software", 10000),
                               ("/api/Software", 10000)]:
                body = s.get(path + "?$top=0&$count=true").json()
                self.assertEqual(body["value"], [], path)
                self.assertNotIn("@odata.nextLink", body, path)
                everything = s.get(path + "?$count=true").json()
                total = everything["@odata.count"]
                self.assertEqual(len(everything["value"]), min(total, most), path)
                self.assertEqual(s.get(f"{path}?$top={most + 1}").status_code, 400, path)
                for query in ["?$top=3", "?$top=2&$filter=id ne 'x'", "?$top=1&$skip=1"]:
                    seen, url, pages = [], s.base + path + query, 0
                    while url and pages < 20000:
                        r = requests.get(url, timeout=60,
                                         headers={"Authorization": f"Bearer {s.token}"})
                        self.assertEqual(r.status_code, 200, (url, r.text))
                        page = r.json()
                        seen += [json.dumps(v, sort_keys=True) for v in page["value"]]
                        url = page.get("@odata.nextLink")
                        pages += 1
                    self.assertIsNone(url, (path, query))
                    expected = total - (1 if "$skip=1" in query else 0)
                    if total <= 300:
                        self.assertEqual(len(seen), expected, (path, query))
                        self.assertEqual(len(set(seen)), len(seen), (path, query))
                    if total > 300:
                        break  # the long lists: one way through is enough


class Tokens(unittest.TestCase):
    """9. Time claims over HTTP: correctly signed, still refused."""

    def test_time_claims_that_are_not_numeric_dates_are_401(self):
        with Server("11_24H2_x64_enterprise_systeminfo.txt").start() as s:
            key = os.path.join(s.data, "keys", "signing-key.pem")
            now = int(time.time())
            good = {"iss": "kbgap", "aud": AUDIENCE, "appid": "t", "iat": now, "nbf": now - 5,
                    "exp": now + 600, "roles": ["Machine.Read.All"]}
            for change in [{"nbf": 1e300}, {"nbf": str(now)}, {"exp": 9223372036854775807},
                           {"exp": 1e300}, {"iat": "now"}, {"exp": -1e300}]:
                token = run(TOKEN_TOOL, key, json.dumps(dict(good, **change))).stdout.strip()
                r = s.get("/api/machines", token=token)
                self.assertEqual(r.status_code, 401, (change, r.text))
            token = run(TOKEN_TOOL, key, json.dumps(good)).stdout.strip()
            self.assertEqual(s.get("/api/machines", token=token).status_code, 200)


class Operations(unittest.TestCase):
    """10. Faults are logged and seen by /readyz; routes are not listed anonymously; BOMs."""

    def test_unknown_routes_need_a_token_like_the_others(self):
        with Server("11_24H2_x64_enterprise_systeminfo.txt").start() as s:
            for path in ["/api/nothing", "/admin", "/api/machines/x/y/z", "/", "/api/kbgap"]:
                self.assertEqual(s.get(path, token="").status_code, 401, path)
                self.assertEqual(s.get(path).status_code, 404, path)
            r = requests.put(s.base + "/api/machines", timeout=10)
            self.assertEqual(r.status_code, 401)

    def test_a_body_with_a_utf8_bom_is_read_as_powershell_writes_it(self):
        with Server().start() as s:
            body = "\ufeff" + json.dumps([device("bom-pc")])
            r = s.post(None, data=body.encode("utf-8"))
            self.assertEqual(r.status_code, 200, r.text)
            self.assertEqual(s.machines()[0]["computerDnsName"], "bom-pc")

    def test_a_storage_fault_is_logged_with_its_cause_and_readyz_says_so(self):
        with Server("11_24H2_x64_enterprise_systeminfo.txt").start() as s:
            db = os.path.join(s.data, "kbgap.db")
            with sqlite3.connect(db) as conn:
                conn.execute("ALTER TABLE devices RENAME TO devices_gone")
            r = s.post([device("new")])
            self.assertEqual(r.status_code, 500)
            self.assertEqual(r.json()["error"]["code"], "InternalServerError")
            self.assertNotIn("devices", r.json()["error"]["message"])
            self.assertNotIn("sqlite", r.text.lower())
            self.assertNotIn("kbgap.db", r.text)
            correlation = r.json()["error"]["target"]
            # Another process's write: the fleet must be read again, and cannot be.
            with open(db + "-fleet-version", "r+b") as f:
                f.write(struct.pack("=q", 99))
            r = s.get("/api/machines")
            self.assertEqual(r.status_code, 500)
            self.assertEqual(s.get("/readyz", token="").status_code, 503)
            self.assertEqual(s.get("/healthz", token="").status_code, 200)
            with sqlite3.connect(db) as conn:
                conn.execute("ALTER TABLE devices_gone RENAME TO devices")
            self.assertEqual(s.get("/readyz", token="").status_code, 200)
            self.assertEqual(s.get("/api/machines").status_code, 200)
            _, said = s.stop()
            self.assertIn(correlation, said)
            self.assertIn("no such table", said)


if __name__ == "__main__":
    # ctest runs the one latency-bound class (Connections) alone, as reliability_latency_over_http,
    # and the others beside other tests: "latency" or "rest" after the three paths; none: all.
    part = sys.argv[4] if len(sys.argv) > 4 else "all"
    if part not in ("all", "latency", "rest"):
        sys.exit(f"reliability_test.py: unknown part {part!r} (all, latency or rest)")
    loader = unittest.defaultTestLoader
    suite = unittest.TestSuite()
    for case in unittest.TestCase.__subclasses__():
        if case.__module__ != __name__:
            continue
        if part == "all" or (case is Connections) == (part == "latency"):
            suite.addTests(loader.loadTestsFromTestCase(case))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
