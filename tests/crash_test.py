#!/usr/bin/python3
"""Crash safety: kill -9 at random moments, again and again, then look at what is on disk.

- During bulk device writes over HTTP (new devices in one stream of batches, the same devices
  rewritten in another): every acknowledged batch is there whole, every batch in flight is there
  whole or not at all, a rewritten set is never half old and half new, and the restarted server
  serves exactly what the database holds.
- During `kbgap catalog import` of the whole bundled archive, over an empty catalog and over one
  that already holds some months: the catalog is the one before or the one after, never half a
  month (each month's products, CVEs, per-product rows and KB fixes are counted against a clean
  import), and importing again completes it.
- During the first start of `kbgap serve` on an empty data directory (catalog import, index
  build, key creation): the next start serves the right answer.
After every kill, SQLite's `PRAGMA integrity_check` must say ok.

Usage: crash_test.py <kbgap binary> <source dir>   (KBGAP_CRASH_ROUNDS: kills per scenario, 4)
"""
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests

import server_support

KBGAP, SOURCE = sys.argv[1], sys.argv[2]
ROUNDS = int(os.environ.get("KBGAP_CRASH_ROUNDS", "4"))
ARCHIVE = os.path.join(SOURCE, "data", "catalog", "cvrf-2016-2026.tar.zst")
# The bulletins before 2016 a first start imports beside the bundled archive (docs/catalog.md).
WESNG = os.path.join(SOURCE, "data", "catalog", "wesng-before-2016.zip")
INVENTORY = os.path.join(SOURCE, "data", "inventories", "10_21H2_x64_pro_systeminfo.txt")
ENV = dict(os.environ, CI="true")
rng = random.Random(int(os.environ.get("KBGAP_CRASH_SEED", str(int(time.time())))))


def run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=900, env=ENV)
    if r.returncode != 0:
        raise AssertionError(f"{args} failed: {r.stderr}")
    return r.stdout


def integrity(db):
    with sqlite3.connect(db) as c:
        return c.execute("PRAGMA integrity_check").fetchall()


def months(db):
    """Each stored month and what it holds: its hash and its row counts in every table."""
    with sqlite3.connect(db) as c:
        return {row[0]: row[1:] for row in c.execute("""
          SELECT d.id, d.sha256, d.vulnerabilities,
            (SELECT count(*) FROM products p WHERE p.document_id = d.id),
            (SELECT count(*) FROM vulnerabilities v WHERE v.document_id = d.id),
            (SELECT count(*) FROM vulnerability_products vp JOIN vulnerabilities v
               ON v.id = vp.vulnerability_id WHERE v.document_id = d.id),
            (SELECT count(*) FROM remediations r WHERE r.document_id = d.id),
            (SELECT count(*) FROM remediation_products rp JOIN remediations r
               ON r.id = rp.remediation_id WHERE r.document_id = d.id)
          FROM documents d""")}


def start_server(data, work):
    return server_support.start(KBGAP, data, work, "--quiet", env=ENV, stderr=subprocess.DEVNULL)


def wait_port(server, port_file):
    return server_support.wait_port(server, port_file, limit=600)


def kill9(process):
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)


class CrashDuringWrites(unittest.TestCase):
    def test_kill_9_during_bulk_writes(self):
        work = tempfile.mkdtemp(prefix="kbgap-crash-writes-")
        data = os.path.join(work, "data")
        db = os.path.join(data, "kbgap.db")
        try:
            run(KBGAP, "--data", data, "devices", "import", INVENTORY)
            writer = run(KBGAP, "--data", data, "token", "--role", "Machine.ReadWrite.All",
                         "--role", "Machine.Read.All", "--ttl", "2h").strip()
            auth = {"Authorization": f"Bearer {writer}"}
            rewritten = [f"{0xee000000 + i:040x}" for i in range(300)]
            acked_batches = {}  # tag -> ids, acknowledged with 200
            sent_batches = {}   # tag -> ids, sent (acknowledged or not)
            acked_generations = []
            for round_ in range(ROUNDS):
                server, port_file = start_server(data, work)
                base = f"http://127.0.0.1:{wait_port(server, port_file)}"
                stop = threading.Event()
                # The kill lands while writes go on: at a random moment after this round's
                # first acknowledged batch (a slow sanitizer build may take seconds for one).
                first_ack = threading.Event()

                def device(id_, tag):
                    return {"id": id_, "computerDnsName": f"d{id_[-8:]}",
                            "osName": "Microsoft Windows 10 Enterprise",
                            "osBuild": "10.0.19045.3803", "osArchitecture": "x64",
                            "installedKbs": ["KB5034122"], "tags": [tag]}

                def new_devices():
                    batch = 0
                    while not stop.is_set():
                        tag = f"r{round_}-b{batch}"
                        ids = [f"{round_:08x}{batch:08x}{i:024x}" for i in range(400)]
                        sent_batches[tag] = ids
                        try:
                            r = requests.post(base + "/api/kbgap/devices", headers=auth,
                                              json=[device(i, tag) for i in ids], timeout=60)
                            if r.status_code == 200:
                                acked_batches[tag] = ids
                                first_ack.set()
                        except requests.RequestException:
                            return
                        batch += 1

                def rewrites():
                    generation = 0
                    while not stop.is_set():
                        tag = f"r{round_}-g{generation}"
                        try:
                            r = requests.post(base + "/api/kbgap/devices", headers=auth,
                                              json=[device(i, tag) for i in rewritten], timeout=60)
                            if r.status_code == 200:
                                acked_generations.append(tag)
                        except requests.RequestException:
                            return
                        generation += 1

                threads = [threading.Thread(target=new_devices), threading.Thread(target=rewrites)]
                for t in threads:
                    t.start()
                self.assertTrue(first_ack.wait(300), f"round {round_}: no write acknowledged")
                time.sleep(rng.uniform(0.0, 1.5))
                kill9(server)
                stop.set()
                for t in threads:
                    t.join()

                self.assertEqual(integrity(db), [("ok",)], f"round {round_}")
                stored = {d["id"]: (d["tags"] or [None])[0] for d in json.loads(
                    run(KBGAP, "--data", data, "devices", "list", "--format", "json"))}
                for tag, ids in acked_batches.items():
                    missing = [i for i in ids if stored.get(i) != tag]
                    self.assertFalse(missing, f"acknowledged batch {tag} lost {len(missing)}")
                for tag, ids in sent_batches.items():
                    present = sum(1 for i in ids if stored.get(i) == tag)
                    self.assertIn(present, (0, len(ids)), f"half of batch {tag} is stored")
                generations = {stored.get(i) for i in rewritten}
                self.assertEqual(len(generations), 1, f"a rewrite is half done: {generations}")
                if acked_generations:
                    last = acked_generations[-1]
                    now = generations.pop()
                    self.assertIsNotNone(now)
                    self.assertGreaterEqual(int(now.split("-g")[1]) if now.startswith(
                        f"r{round_}-") else -1, int(last.split("-g")[1]) if last.startswith(
                        f"r{round_}-") else -1, f"the acknowledged rewrite {last} is lost")
                # The restarted server serves exactly what the database holds.
                server, port_file = start_server(data, work)
                base = f"http://127.0.0.1:{wait_port(server, port_file)}"
                try:
                    reader = run(KBGAP, "--data", data, "token", "--role",
                                 "Machine.Read.All").strip()
                    r = requests.get(base + "/api/machines?$count=true&$top=1", timeout=60,
                                     headers={"Authorization": f"Bearer {reader}"})
                    self.assertEqual(r.json()["@odata.count"], len(stored))
                finally:
                    self.assertEqual(server_support.stop(server)[0], 0)
            self.assertTrue(acked_batches, "no batch was acknowledged before the kills")
            print(f"\n{ROUNDS} kills: {len(acked_batches)} acknowledged batches of 400 kept, "
                  f"{len(sent_batches) - len(acked_batches)} in flight all-or-nothing, "
                  f"{len(acked_generations)} rewrites", file=sys.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)


class CrashDuringCatalogImport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="kbgap-crash-catalog-")
        ref = os.path.join(cls.work, "reference")
        started = time.monotonic()
        run(KBGAP, "--data", ref, "catalog", "import", ARCHIVE)
        cls.import_seconds = time.monotonic() - started
        cls.reference = months(os.path.join(ref, "kbgap.db"))
        # What a first start holds besides: the same months and the bulletins before 2016.
        run(KBGAP, "--data", ref, "catalog", "import", WESNG)
        cls.first_start = months(os.path.join(ref, "kbgap.db"))
        # Some months as separate files: a catalog that holds them before the killed import.
        xml = os.path.join(cls.work, "xml")
        os.makedirs(xml)
        subprocess.run(f"zstd -dc '{ARCHIVE}' | tar -x -C '{xml}' --wildcards 'cvrf/*2019-*.xml'",
                       shell=True, check=True)
        cls.some = sorted(os.path.join(xml, "cvrf", f) for f in os.listdir(os.path.join(xml, "cvrf")))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_kill_9_during_catalog_import(self):
        self.assertEqual(len(self.reference), 127)
        outcomes = []
        for round_ in range(ROUNDS):
            data = os.path.join(self.work, f"round{round_}")
            db = os.path.join(data, "kbgap.db")
            before = {}
            if round_ % 2 == 1:
                run(KBGAP, "--data", data, "catalog", "import", *self.some)
                before = months(db)
                self.assertEqual(len(before), len(self.some))
            importer = subprocess.Popen([KBGAP, "--data", data, "catalog", "import", ARCHIVE],
                                        env=ENV, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, 0.95) * self.import_seconds)
            kill9(importer)
            if not os.path.exists(db):
                outcomes.append("nothing yet")
                continue
            self.assertEqual(integrity(db), [("ok",)], f"round {round_}")
            after = months(db)
            if after == before:
                outcomes.append("before")
            else:
                self.assertEqual(after, {m: self.reference[m] for m in after})
                self.assertEqual(set(after), set(self.reference), "a partial import is visible")
                outcomes.append("after")
            run(KBGAP, "--data", data, "catalog", "import", ARCHIVE)
            self.assertEqual(integrity(db), [("ok",)])
            self.assertEqual(months(db), self.reference)
        print(f"\n{ROUNDS} kills during import (about {self.import_seconds:.1f} s each): "
              f"{outcomes}", file=sys.stderr)

    def test_kill_9_during_first_start(self):
        expected = json.loads(run(KBGAP, "--data", os.path.join(self.work, "reference"), "scan",
                                  "--format", "json", INVENTORY))["value"]
        for round_ in range(ROUNDS):
            data = os.path.join(self.work, f"start{round_}")
            run(KBGAP, "--data", data, "devices", "import", INVENTORY)
            server, port_file = start_server(data, self.work)
            time.sleep(rng.uniform(0.05, 1.2) * self.import_seconds)
            kill9(server)
            db = os.path.join(data, "kbgap.db")
            self.assertEqual(integrity(db), [("ok",)], f"round {round_}")
            server, port_file = start_server(data, self.work)
            try:
                base = f"http://127.0.0.1:{wait_port(server, port_file)}"
                token = run(KBGAP, "--data", data, "token", "--role", "Software.Read.All").strip()
                device = run(KBGAP, "--data", data, "devices", "list").splitlines()[1].split()[0]
                r = requests.get(f"{base}/api/machines/{device}/getmissingkbs", timeout=60,
                                 headers={"Authorization": f"Bearer {token}"})
                self.assertEqual(r.status_code, 200, r.text)
                self.assertEqual(r.json()["value"], expected)
            finally:
                self.assertEqual(server_support.stop(server)[0], 0)
            self.assertEqual(months(db), self.first_start)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
