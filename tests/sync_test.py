#!/usr/bin/python3
"""`kbgap catalog sync` against a stand-in for MSRC's CVRF API on loopback (tests/cvrf_server.py,
serving real shipped documents over HTTP and HTTPS): only new and revised months are fetched; a
500 in the middle, a body cut short, a server slower than the timeout, a certificate that does not
verify and a body that is not CVRF each end the sync with one clear line, keep the months
imported before, store nothing of the failed one, and the next sync resumes. The catalog is then
the same as a direct import of the same documents.

Usage: sync_test.py path/to/kbgap source_dir
"""
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest
import urllib.request

KBGAP = os.path.abspath(sys.argv[1])
SOURCE = os.path.abspath(sys.argv[2])
ARCHIVE = os.path.join(SOURCE, "data/catalog/cvrf-2016-2026.tar.zst")
SERVER = os.path.join(SOURCE, "tests/cvrf_server.py")
MONTHS = ["2016-Apr", "2016-May", "2016-Jun", "2019-Mar", "2020-Mar"]


def extract(months, into):
    """The shipped documents of these months, as files in `into`."""
    unpacked = subprocess.run(["zstd", "-dc", ARCHIVE], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(unpacked)) as tar:
        for member in tar.getmembers():
            m = re.search(r"cvrfDocument-(.+)\.xml$", member.name)
            if m and m[1] in months:
                with open(os.path.join(into, os.path.basename(member.name)), "wb") as f:
                    f.write(tar.extractfile(member).read())


class Server:
    def __init__(self, directory, work, tls=None):
        port_file = os.path.join(work, f"port-{time.monotonic_ns()}")
        args = [sys.executable, SERVER, directory, "--port-file", port_file]
        if tls:
            args += ["--tls", *tls]
        self.process = subprocess.Popen(args)
        deadline = time.time() + 30
        while not os.path.exists(port_file):
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError("the CVRF server did not start")
            time.sleep(0.05)
        self.port = int(slurp(port_file))
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    def control(self, body):
        plain = f"http://127.0.0.1:{self.port}"
        request = urllib.request.Request(plain + "/_control", json.dumps(body).encode(),
                                         method="POST")
        urllib.request.urlopen(request).read()

    def requests(self):
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_requests").read())

    def close(self):
        self.process.terminate()
        self.process.wait()


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


def kbgap(data, *args):
    return subprocess.run([KBGAP, "--data", data, *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "CI": "true"})


def stored(data):
    """{month: (current release, revision)} and the database's integrity check."""
    db = sqlite3.connect(os.path.join(data, "kbgap.db"))
    try:
        months = {i: (c, r) for i, c, r in
                  db.execute("SELECT id, current_release, revision FROM documents")}
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
    return months, check


class Sync(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="kbgap-sync-")
        cls.docs = os.path.join(cls.work, "docs")
        os.mkdir(cls.docs)
        extract(MONTHS, cls.docs)
        cls.server = Server(cls.docs, cls.work)

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        shutil.rmtree(cls.work)

    def setUp(self):
        self.server.control({"reset": True})

    def seeded(self, name):
        """A data directory holding the first month only (imported from its file)."""
        data = os.path.join(self.work, name)
        r = kbgap(data, "catalog", "import", os.path.join(self.docs, "cvrfDocument-2016-Apr.xml"))
        self.assertEqual(r.returncode, 0, r.stderr)
        return data

    def sync(self, data, *args, source=None):
        return kbgap(data, "catalog", "sync", "--source", source or self.server.url, *args)

    def assert_one_line_error(self, r, *words):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        final = [line for line in r.stderr.splitlines() if "catalog sync from" in line]
        self.assertEqual(len(final), 1, r.stderr)
        for w in words:
            self.assertIn(w, final[0])

    def test_only_new_months_are_fetched_and_the_catalog_equals_a_direct_import(self):
        data = self.seeded("incremental")
        before = self.server.requests()
        r = self.sync(data)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("5 months listed, 1 already current, 4 fetched", r.stdout)
        after = self.server.requests()
        self.assertEqual(after.get("/cvrf/2016-Apr", 0), before.get("/cvrf/2016-Apr", 0))
        months, check = stored(data)
        self.assertEqual(sorted(months), sorted(MONTHS))
        self.assertEqual(check, "ok")
        direct = os.path.join(self.work, "direct")
        self.assertEqual(kbgap(direct, "catalog", "import", self.docs).returncode, 0)
        self.assertEqual(kbgap(data, "catalog", "stats", "--format", "json").stdout,
                         kbgap(direct, "catalog", "stats", "--format", "json").stdout)
        # Nothing new: nothing fetched.
        r = self.sync(data)
        self.assertIn("5 already current, 0 fetched", r.stdout)
        # A month an older kbgap stored without a CVE's own dates (migration 004 clears its
        # digest) is fetched and read again, though MSRC did not revise it.
        db = sqlite3.connect(os.path.join(data, "kbgap.db"))
        db.execute("UPDATE vulnerabilities SET published = NULL WHERE document_id = '2019-Mar'")
        db.execute("UPDATE documents SET sha256 = '' WHERE id = '2019-Mar'")
        db.commit()
        db.close()
        r = self.sync(data)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("4 already current, 1 fetched, 1 changed the catalog", r.stdout)
        db = sqlite3.connect(os.path.join(data, "kbgap.db"))
        missing = db.execute("SELECT count(*) FROM vulnerabilities WHERE published IS NULL "
                             "AND document_id = '2019-Mar'").fetchone()[0]
        db.close()
        self.assertEqual(missing, 0)

    def test_a_month_revised_between_two_syncs_is_fetched_alone(self):
        data = self.seeded("revised")
        self.assertEqual(self.sync(data).returncode, 0)
        path = os.path.join(self.docs, "cvrfDocument-2019-Mar.xml")
        original = slurp(path)
        try:
            revised = re.sub(rb"<cvrf:CurrentReleaseDate>[^<]*</cvrf:CurrentReleaseDate>",
                             b"<cvrf:CurrentReleaseDate>2026-11-10T08:00:00</cvrf:"
                             b"CurrentReleaseDate>", original, count=1)
            revised = revised.replace(b"</cvrf:RevisionHistory>",
                                      b"<cvrf:Revision><cvrf:Number>99.0</cvrf:Number><cvrf:Date>"
                                      b"2026-11-10T08:00:00</cvrf:Date><cvrf:Description>test"
                                      b"</cvrf:Description></cvrf:Revision></cvrf:RevisionHistory>",
                                      1)
            with open(path, "wb") as f:
                f.write(revised)
            before = self.server.requests()
            r = self.sync(data)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("4 already current, 1 fetched, 1 changed the catalog", r.stdout)
            self.assertRegex(r.stdout, r"2019-Mar\s+replaced\s+revision 99.0 of 2026-11-10")
            after = self.server.requests()
            fetched = {p for p in after if p.startswith("/cvrf/") and after[p] != before.get(p, 0)}
            self.assertEqual(fetched, {"/cvrf/2019-Mar"})
            self.assertEqual(stored(data)[0]["2019-Mar"][0], "2026-11-10T08:00:00Z")
            # The history says what came in, and from where.
            r = kbgap(data, "catalog", "diff", "2019-Mar")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("2019-Mar replaced (revision 99.0 of 2026-11-10)", r.stdout)
            self.assertIn(f"from {self.server.url}/cvrf/2019-Mar", r.stdout)
            self.assertIn("no change in KBs", r.stdout)  # only its dates were revised
            diff = json.loads(kbgap(data, "catalog", "diff", "--format", "json").stdout)
            self.assertEqual([i["month"] for i in diff["imports"]][-1], "2019-Mar")
        finally:
            with open(path, "wb") as f:
                f.write(original)

    def test_a_500_in_the_middle_keeps_what_came_before_and_the_next_sync_resumes(self):
        data = self.seeded("failing")
        self.server.control({"status": {"2019-Mar": [500, -1]}})
        r = self.sync(data, "--attempts", "2")
        self.assert_one_line_error(r, "month 2019-Mar", "/cvrf/2019-Mar", "HTTP 500",
                                   "after 2 tries")
        months, check = stored(data)
        self.assertEqual(sorted(months), ["2016-Apr", "2016-Jun", "2016-May"])
        self.assertEqual(check, "ok")
        self.server.control({"reset": True})
        r = self.sync(data)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("3 already current, 2 fetched", r.stdout)
        self.assertEqual(sorted(stored(data)[0]), sorted(MONTHS))

    def test_a_busy_server_is_waited_for_as_it_asks(self):
        data = self.seeded("busy")
        # Retry-After 2 where kbgap's own first wait would be 1 s.
        self.server.control({"status": {"2016-May": [503, 1, 2], "2016-Jun": [429, 1, 2]}})
        start = time.monotonic()
        r = self.sync(data)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreaterEqual(time.monotonic() - start, 4.0)
        self.assertIn("/cvrf/2016-May: HTTP 503; trying again in 2.0 s", r.stderr)
        self.assertIn("/cvrf/2016-Jun: HTTP 429; trying again in 2.0 s", r.stderr)
        self.assertEqual(sorted(stored(data)[0]), sorted(MONTHS))

    def test_a_body_cut_short_stores_nothing_of_its_month(self):
        data = self.seeded("cut")
        self.server.control({"truncate": ["2016-May"]})
        r = self.sync(data, "--attempts", "2")
        self.assert_one_line_error(r, "month 2016-May", "bytes remaining")
        months, check = stored(data)
        self.assertEqual(sorted(months), ["2016-Apr"])
        self.assertEqual(check, "ok")

    def test_a_server_slower_than_the_timeout(self):
        data = self.seeded("slow")
        self.server.control({"delay": {"2016-Jun": 4}})
        start = time.monotonic()
        r = self.sync(data, "--timeout", "1")
        self.assertLess(time.monotonic() - start, 15)
        self.assert_one_line_error(r, "month 2016-Jun", "timed out after 1 s")
        self.assertEqual(sorted(stored(data)[0]), ["2016-Apr", "2016-May"])

    def test_a_body_that_is_not_cvrf(self):
        data = self.seeded("notcvrf")
        path = os.path.join(self.docs, "cvrfDocument-2016-May.xml")
        original = slurp(path)
        try:
            # The header the list is built from stays; the rest is an HTML error page.
            head = original[: original.index(b"</cvrf:DocumentTracking>")]
            with open(path, "wb") as f:
                f.write(head + b"\n<html><body>Service Unavailable</body></html>")
            r = self.sync(data)
            self.assert_one_line_error(r, "month 2016-May")
            months, check = stored(data)
            self.assertEqual(sorted(months), ["2016-Apr"])
            self.assertEqual(check, "ok")
        finally:
            with open(path, "wb") as f:
                f.write(original)

    def test_tls_is_verified(self):
        cert = os.path.join(self.work, "cert.pem")
        key = os.path.join(self.work, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        tls = Server(self.docs, self.work, tls=(cert, key))
        try:
            data = self.seeded("tls")
            r = self.sync(data, source=tls.url)
            self.assert_one_line_error(r, "/updates", "SSL certificate problem")
            self.assertEqual(sorted(stored(data)[0]), ["2016-Apr"])
            r = self.sync(data, "--ca-file", cert, source=tls.url)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(sorted(stored(data)[0]), sorted(MONTHS))
        finally:
            tls.close()

    def test_an_archive_for_a_site_without_the_internet(self):
        out = os.path.join(self.work, "catalog.tar.zst")
        r = kbgap(os.path.join(self.work, "unused"), "catalog", "fetch", "--source",
                  self.server.url, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("fetched 5 months", r.stdout)
        isolated = os.path.join(self.work, "isolated")
        r = kbgap(isolated, "catalog", "import", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("imported 5 documents", r.stdout)
        direct = os.path.join(self.work, "direct-archive")
        self.assertEqual(kbgap(direct, "catalog", "import", self.docs).returncode, 0)
        self.assertEqual(kbgap(isolated, "catalog", "stats", "--format", "json").stdout,
                         kbgap(direct, "catalog", "stats", "--format", "json").stdout)
        # A month that fails: no archive at all, not a partial one.
        failed = os.path.join(self.work, "failed.tar.zst")
        self.server.control({"status": {"2019-Mar": [500, -1]}})
        r = kbgap(isolated, "catalog", "fetch", "--source", self.server.url, "--out", failed,
                  "--attempts", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("month 2019-Mar", r.stderr)
        self.assertIn("was not written", r.stderr)
        self.assertEqual([f for f in os.listdir(self.work) if f.startswith("failed")], [])

    def test_the_server_syncs_on_its_schedule_and_answers_from_the_new_catalog(self):
        data = self.seeded("serving")
        inventory = os.path.join(SOURCE, "data/inventories/10_1809_x64_pro_en-us_20190307_systeminfo.txt")
        r = kbgap(data, "devices", "import", inventory)
        self.assertEqual(r.returncode, 0, r.stderr)
        device = json.loads(kbgap(data, "devices", "list", "--format", "json").stdout)[0]["id"]
        token = kbgap(data, "token", "--role", "Software.Read.All", "--ttl", "1h").stdout.strip()
        self.server.control({"delay": {"2016-May": 2}})  # time to see the catalog before
        env = {**os.environ, "CI": "true", "KBGAP_CATALOG_SYNC_INTERVAL": "3",
               "KBGAP_CATALOG_SOURCE": self.server.url}
        port_file = os.path.join(self.work, "serve-port")
        server = subprocess.Popen([KBGAP, "--data", data, "serve", "--quiet", "--listen",
                                   "127.0.0.1:0", "--port-file", port_file], env=env,
                                  stderr=subprocess.PIPE, text=True)
        try:
            while not os.path.exists(port_file):
                self.assertIsNone(server.poll())
                time.sleep(0.05)
            base = f"http://127.0.0.1:{int(slurp(port_file))}"

            def get(path):
                request = urllib.request.Request(base + path,
                                                 headers={"Authorization": "Bearer " + token})
                with urllib.request.urlopen(request) as response:
                    return response.read().decode()

            def missing():
                body = json.loads(get(f"/api/machines/{device}/getmissingkbs"))
                return [kb["name"] for kb in body["value"]]

            ready = json.loads(get("/readyz"))
            self.assertEqual(ready["catalog"]["coverage"], "catalog through 2016-04")
            self.assertIn("stale", ready["catalog"]["warning"])
            self.assertEqual(missing(), [])  # a 2016 catalog knows nothing of Windows 10 1809
            def ready_once(key, seconds):
                """/readyz once its catalog details have `key`."""
                deadline = time.time() + seconds
                while key not in json.loads(get("/readyz"))["catalog"]:
                    self.assertLess(time.time(), deadline)
                    time.sleep(0.2)
                return json.loads(get("/readyz"))

            ready = ready_once("lastSync", 60)
            self.assertEqual(ready["status"], "ok")
            self.assertEqual(ready["catalog"]["coverage"], "catalog through 2020-03")
            self.assertNotIn("lastSyncError", ready["catalog"])
            # Now it is judged: by the months the sync brought (1809 shipped in late 2018).
            self.assertTrue(missing())
            self.assertLessEqual(set(missing()), {"March 2019 Security Updates",
                                                  "March 2020 Security Updates"})
            metrics = get("/metrics")
            self.assertIn('kbgap_catalog_syncs_total{result="ok"} 1', metrics)
            self.assertIn("kbgap_catalog_months_changed_total 4", metrics)

            # A sync that fails part-way: 2019-Mar's revision comes in and is served (its
            # KBs now carry its new title), 2020-Mar's fails and is neither stored nor served;
            # /readyz and /metrics say so.
            paths = [os.path.join(self.docs, f"cvrfDocument-{m}.xml") for m in ("2019-Mar", "2020-Mar")]
            originals = [slurp(p) for p in paths]
            try:
                for p, original, title in zip(paths, originals, (b" (revised)", b"")):
                    revised = re.sub(rb"<cvrf:CurrentReleaseDate>[^<]*<",
                                     b"<cvrf:CurrentReleaseDate>2026-11-10T08:00:00<", original,
                                     count=1)
                    revised = re.sub(rb"(<cvrf:DocumentTitle>[^<]*)<", rb"\1" + title + b"<",
                                     revised, count=1)
                    with open(p, "wb") as f:
                        f.write(revised)
                self.server.control({"reset": True, "status": {"2020-Mar": [500, -1]}})
                served_before = missing()
                ready = ready_once("lastSyncError", 90)
                self.assertEqual(ready["status"], "ok")
                self.assertIn("/cvrf/2020-Mar: HTTP 500", ready["catalog"]["lastSyncError"])
                months, _ = stored(data)
                self.assertEqual(months["2019-Mar"][0], "2026-11-10T08:00:00Z")
                self.assertNotEqual(months["2020-Mar"][0], "2026-11-10T08:00:00Z")
                deadline = time.time() + 30  # the reload follows the sync
                while "March 2019 Security Updates (revised)" not in missing():
                    self.assertLess(time.time(), deadline, missing())
                    time.sleep(0.2)
                self.assertEqual(len(missing()), len(served_before))
                self.assertIn("March 2020 Security Updates", missing())
                self.assertIn("kbgap_catalog_last_sync_failed 1", get("/metrics"))
            finally:
                for p, original in zip(paths, originals):
                    with open(p, "wb") as f:
                        f.write(original)
                self.server.control({"reset": True})
        finally:
            server.terminate()
            _, said = server.communicate(timeout=60)
        self.assertEqual(server.returncode, 0, said)
        self.assertIn("catalog through 2016-04", said)
        self.assertIn("4 changed", said)
        # Four new months touch the device's products: it is evaluated again, not kept.
        self.assertIn("new catalog served; 1 of the fleet's 1 devices evaluated again", said)
        self.assertRegex(said, r"the new catalog touches \d+ of its \d+ products: 1 of 1 devices "
                         r"evaluated again")
        self.assertIn("failed: month 2020-Mar", said)
        self.assertIn("(serving the months it imported before)", said)

    def test_no_server_and_a_bad_source(self):
        data = self.seeded("nothing")
        r = self.sync(data, source="http://127.0.0.1:9")  # the discard port: refused
        self.assert_one_line_error(r, "127.0.0.1:9/updates")
        r = self.sync(data, source="ftp://example.org")
        self.assert_one_line_error(r, "not an http:// or https:// URL")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
