#!/usr/bin/python3
"""Abusive clients over real HTTP, all at once, while a normal client keeps reading and writing:
slow senders (slowloris: headers a few bytes at a time; a body that never completes), oversized
headers, oversized bodies (declared and chunked), deeply nested JSON. Each is cut off with its
status (408, 431, 413, 400) and the normal client is served throughout, never waiting for them.

Usage: abuse_test.py <kbgap binary> <source dir>
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests

import server_support

KBGAP, SOURCE = sys.argv[1], sys.argv[2]
INVENTORY = os.path.join(SOURCE, "data", "inventories", "10_21H2_x64_pro_systeminfo.txt")
REQUEST_TIMEOUT = 3  # server.request_timeout_seconds in this test
# A normal request during the attack must answer well within the request timeout: a server that
# made it wait for a slow client would take at least that long.
NORMAL_LATENCY_BOUND = 2.0


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300,
                          check=True).stdout


def status_of(answer):
    line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = line.split(" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def read_answer(s):
    """Everything the server sends until it closes the connection (or 30 s pass)."""
    s.settimeout(30)
    answer = b""
    try:
        while chunk := s.recv(65536):
            answer += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return answer


class Abuse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="kbgap-abuse-")
        data = os.path.join(cls.dir, "data")
        run(KBGAP, "--data", data, "devices", "import", INVENTORY)
        config = os.path.join(cls.dir, "kbgap.toml")
        with open(config, "w") as f:
            f.write(f"[server]\nrequest_timeout_seconds = {REQUEST_TIMEOUT}\naccess_log = false\n"
                    "[rate_limits]\nmachines_per_minute = 0\nmachines_per_hour = 0\n"
                    "software_per_minute = 0\nsoftware_per_hour = 0\n")
        cls.server, cls.port = server_support.serve(KBGAP, data, cls.dir, "--config", config)
        cls.base = f"http://127.0.0.1:{cls.port}"
        token = run(KBGAP, "--data", data, "token", "--role", "Software.Read.All", "--role",
                    "Machine.ReadWrite.All", "--app", "abuse-test").strip()
        cls.auth = {"Authorization": f"Bearer {token}"}
        device_id = run(KBGAP, "--data", data, "devices", "list").splitlines()[1].split()[0]
        cls.path = f"/api/machines/{device_id}/getmissingkbs"

    @classmethod
    def tearDownClass(cls):
        try:
            assert server_support.stop(cls.server)[0] == 0
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        return s

    # The abusers; each returns the status the server answered (None: closed without one).
    def slowloris(self):
        """Headers one byte every 0.2 s, never finished: each byte is progress, so a server
        that only times out idle connections would keep it forever."""
        with self.connect() as s:
            s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: x\r\n".encode())
            trickle = b"".join(b"X-Slow-%d: y\r\n" % i for i in range(1000))
            s.settimeout(0.2)
            answer = b""
            for byte in trickle[: int(REQUEST_TIMEOUT * 5 * 3)]:
                try:
                    s.sendall(bytes([byte]))
                    answer = s.recv(4096)
                    break
                except socket.timeout:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
            if not answer:
                return "no answer while it kept trickling"
            return status_of(answer + read_answer(s))

    def post_head(self, s, header):
        s.sendall(f"POST /api/kbgap/devices HTTP/1.1\r\nHost: x\r\nAuthorization: "
                  f"{self.auth['Authorization']}\r\n{header}\r\n\r\n".encode())

    def slow_body(self):
        with self.connect() as s:
            self.post_head(s, "Content-Length: 1000")
            s.sendall(b"[")
            return status_of(read_answer(s))

    def big_headers(self):
        with self.connect() as s:
            s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: x\r\n".encode() +
                      b"".join(b"X-Big-%d: %s\r\n" % (i, b"z" * 4000) for i in range(10)) +
                      b"\r\n")
            return status_of(read_answer(s))

    def declared_big_body(self):
        with self.connect() as s:
            self.post_head(s, f"Content-Length: {64 << 20}")
            return status_of(read_answer(s))

    def chunked_big_body(self):
        with self.connect() as s:
            self.post_head(s, "Transfer-Encoding: chunked")
            chunk = b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20))
            try:
                for _ in range(40):  # 40 MiB, over the 32 MiB limit
                    s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return status_of(read_answer(s))

    def deep_json(self):
        body = "[" * 200000 + "]" * 200000
        r = requests.post(self.base + "/api/kbgap/devices", data=body, headers=self.auth,
                          timeout=60)
        self.assertEqual(r.json()["error"]["code"], "InvalidInput")
        return r.status_code

    def test_abusive_clients_are_cut_off_and_others_are_served(self):
        # The normal client's pace before the attack, for the record.
        before = []
        for _ in range(20):
            started = time.monotonic()
            self.assertEqual(requests.get(self.base + self.path, headers=self.auth,
                                          timeout=60).status_code, 200)
            before.append(time.monotonic() - started)

        abusers = ([("slowloris", self.slowloris, 408)] * 150 +
                   [("slow body", self.slow_body, 408)] * 20 +
                   [("oversized headers", self.big_headers, 431)] * 20 +
                   [("declared oversized body", self.declared_big_body, 413)] * 10 +
                   [("chunked oversized body", self.chunked_big_body, 413)] * 4 +
                   [("deeply nested JSON", self.deep_json, 400)] * 10)
        results = []
        lock = threading.Lock()

        def attack(name, fn, expected):
            try:
                got = fn()
            except Exception as e:  # noqa: BLE001 - reported as the failure it is
                got = repr(e)
            with lock:
                results.append((name, expected, got))

        threads = [threading.Thread(target=attack, args=a) for a in abusers]
        attack_started = time.monotonic()
        for t in threads:
            t.start()
        # The normal client, until every abuser has had its answer.
        during, writes = [], []
        n = 0
        while any(t.is_alive() for t in threads) or n < 20:
            started = time.monotonic()
            r = requests.get(self.base + self.path, headers=self.auth, timeout=60)
            during.append(time.monotonic() - started)
            self.assertEqual(r.status_code, 200)
            if n % 10 == 0:
                device = {"computerDnsName": f"normal{n}", "osBuild": "10.0.19045.3803",
                          "osArchitecture": "x64"}
                started = time.monotonic()
                w = requests.post(self.base + "/api/kbgap/devices", json=[device],
                                  headers=self.auth, timeout=60)
                writes.append(time.monotonic() - started)
                self.assertEqual(w.status_code, 200, w.text)
            n += 1
            time.sleep(0.02)
        attack_seconds = time.monotonic() - attack_started
        for t in threads:
            t.join()

        wrong = [(name, expected, got) for name, expected, got in results if got != expected]
        self.assertFalse(wrong, f"{len(wrong)} abusers got another answer, e.g. {wrong[:5]}")
        self.assertEqual(len(results), len(abusers))
        print(f"\n{len(abusers)} abusers cut off in {attack_seconds:.1f} s; normal client: "
              f"{len(during)} reads, slowest {max(during) * 1000:.0f} ms (before the attack "
              f"{max(before) * 1000:.0f} ms), {len(writes)} writes, slowest "
              f"{max(writes) * 1000:.0f} ms", file=sys.stderr)
        self.assertGreaterEqual(attack_seconds, REQUEST_TIMEOUT)  # the slow ones were held
        self.assertLess(max(during), NORMAL_LATENCY_BOUND)
        self.assertLess(max(writes), NORMAL_LATENCY_BOUND)
        self.assertEqual(requests.get(self.base + "/readyz", timeout=60).status_code, 200)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
