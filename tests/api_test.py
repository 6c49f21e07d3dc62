#!/usr/bin/python3
"""The API over real HTTP (docs/api.md §1-5): the real kbgap server on a loopback port, the real
inventories in its device store, called with Python requests (as Microsoft's Defender API samples
call Defender) and with curl.

Usage: api_test.py <kbgap binary> <kbgap_token_tool binary> <source dir>
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
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
SEED_FIELDS = {"id": str, "name": str, "productsNames": list, "url": str,
               "machineMissedOn": int, "cveAddressed": int}
ODATA_TYPE = "application/json; odata.metadata=minimal; charset=utf-8"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def run(*args, check=True):
    args = list(args)
    env = None
    if "--data" in args:
        env = server_support.storage_env(args[args.index("--data") + 1])
    r = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed: {r.stderr}")
    return r


def serve(data, work, *args):
    return server_support.serve(KBGAP, data, work, *args)


class Api(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="kbgap-api-")
        cls.data = os.path.join(cls.dir, "data")
        cls.inventories = {
            "win10": ["10_1809_x64_pro_en-us_20190307_systeminfo.txt",
                      "10_1809_x64_pro_en-us_20190307_qfe.txt"],
            "win7": ["7_sp1_x64_enterprise_en-us_B_systeminfo.txt",
                     "7_sp1_x64_enterprise_en-us_B_qfe.txt"],
            "win11": ["11_24H2_x64_enterprise_systeminfo.txt"],
            "srv2019": ["srv_2019_rtm_datacenter_en-us_systeminfo.txt"],
            "xp": ["xp_sp3_x86_professional_en-us_systeminfo.txt"],
        }
        for files in cls.inventories.values():
            run(KBGAP, "--data", cls.data, "devices", "import",
                *[os.path.join(INVENTORIES, f) for f in files])
        cls.server, cls.port = serve(cls.data, cls.dir, "--quiet")
        cls.base = f"http://127.0.0.1:{cls.port}"
        cls.key = os.path.join(cls.data, "keys", "signing-key.pem")
        cls.read = cls.token("Software.Read.All", "Machine.Read.All", "Vulnerability.Read.All")
        cls.writer = cls.token("Machine.ReadWrite.All", app="importer")
        cls.ids = {}
        machines = cls.get("/api/machines", cls.read).json()["value"]
        for name, files in cls.inventories.items():
            scan = json.loads(run(KBGAP, "--data", cls.data, "scan", "--format", "json",
                                  *[os.path.join(INVENTORIES, f) for f in files]).stdout)
            cls.ids[name] = scan
        cls.machines = machines

    @classmethod
    def tearDownClass(cls):
        try:
            server_support.stop(cls.server)
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def token(cls, *roles, app="api-test", ttl="1h"):
        args = [KBGAP, "--data", cls.data, "token", "--ttl", ttl, "--app", app]
        for r in roles:
            args += ["--role", r]
        return run(*args).stdout.strip()

    @classmethod
    def signed(cls, key, **changes):
        now = int(time.time())
        claims = {"iss": "kbgap", "aud": AUDIENCE, "appid": "api-test", "iat": now,
                  "nbf": now - 5, "exp": now + 600, "roles": ["Software.Read.All"]}
        claims.update(changes)
        claims = {k: v for k, v in claims.items() if v is not None}
        return run(TOKEN_TOOL, key, json.dumps(claims)).stdout.strip()

    @classmethod
    def get(cls, path, token=None, headers=None, **kw):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.get(cls.base + path, headers=headers, timeout=60, **kw)

    def machine_id(self, name):
        # The device id kbgap derived for that inventory: the one whose name the scan shows.
        for m in self.machines:
            if self.get(f"/api/machines/{m['id']}/getmissingkbs", self.read).json()["value"] == \
                    self.ids[name]["value"]:
                return m["id"], m["computerDnsName"]
        self.fail(f"no machine for {name}")

    def assert_error(self, r, status, code):
        self.assertEqual(r.status_code, status, r.text)
        body = r.json()
        self.assertEqual(set(body), {"error"})
        self.assertEqual(body["error"]["code"], code)
        self.assertTrue(body["error"]["message"])
        self.assertRegex(body["error"]["target"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
                                                  r"[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertNotIn("Traceback", r.text)
        return body

    def test_getmissingkbs_is_the_seed_contract(self):
        for name in ("win10", "win7", "win11", "srv2019"):
            with self.subTest(name):
                machine_id, dns_name = self.machine_id(name)
                r = self.get(f"/api/machines/{machine_id}/getmissingkbs", self.read)
                self.assertEqual(r.status_code, 200)
                self.assertEqual(r.headers["Content-Type"], ODATA_TYPE)
                self.assertEqual(r.headers["OData-Version"], "4.0")
                body = r.json()
                self.assertEqual(list(body), ["@odata.context", "value"])
                self.assertEqual(
                    body["@odata.context"],
                    f"{self.base}/api/$metadata#Collection("
                    "microsoft.windowsDefenderATP.api.PublicProductFixDto)")
                self.assertGreater(len(body["value"]), 0)
                for kb in body["value"]:
                    self.assertEqual(list(kb), list(SEED_FIELDS))
                    for field, kind in SEED_FIELDS.items():
                        self.assertIsInstance(kb[field], kind, field)
                    self.assertRegex(kb["id"], r"^[0-9]{6,8}$")
                    self.assertEqual(kb["machineMissedOn"], 1)
                    self.assertGreater(kb["cveAddressed"], 0)
                    self.assertTrue(kb["name"].endswith("Security Updates"), kb["name"])
                    self.assertEqual(
                        kb["url"],
                        f"https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB{kb['id']}")
                    self.assertTrue(all(isinstance(p, str) and p == p.lower()
                                        for p in kb["productsNames"]))
                # The same answer as the offline scan of the same inventory.
                self.assertEqual(body["value"], self.ids[name]["value"])
                # By computer name too (any case), and under /api/v1.0.
                for path in (f"/api/machines/{dns_name.lower()}/getmissingkbs",
                             f"/api/v1.0/machines/{machine_id}/getmissingkbs"):
                    self.assertEqual(self.get(path, self.read).json()["value"], body["value"])
                # host and scheme come from the request (a proxy's X-Forwarded-Proto).
                proxied = requests.get(f"{self.base}/api/machines/{machine_id}/getmissingkbs",
                                       headers={"Authorization": f"Bearer {self.read}",
                                                "Host": "kbgap.example.com",
                                                "X-Forwarded-Proto": "https"}, timeout=60)
                self.assertTrue(proxied.json()["@odata.context"].startswith(
                    "https://kbgap.example.com/api/$metadata#Collection("))

    def test_curl_gets_the_same_body(self):
        machine_id, _ = self.machine_id("win10")
        r = run("curl", "-sS", "-i", "-H", f"Authorization: Bearer {self.read}",
                f"{self.base}/api/machines/{machine_id}/getmissingkbs")
        head, body = r.stdout.replace("\r\n", "\n").split("\n\n", 1)
        self.assertTrue(head.startswith("HTTP/1.1 200"))
        self.assertIn("OData-Version: 4.0", head)
        self.assertEqual(json.loads(body)["value"], self.ids["win10"]["value"])

    def test_error_rows(self):
        machine_id, _ = self.machine_id("win10")
        path = f"/api/machines/{machine_id}/getmissingkbs"
        self.assert_error(self.get("/api/machines/bad%20id!/getmissingkbs", self.read),
                          400, "InvalidInput")
        body = self.assert_error(self.get("/api/machines/" + "0" * 40 + "/getmissingkbs",
                                          self.read), 404, "ResourceNotFound")
        self.assertEqual(body["error"]["message"], f"Machine {'0' * 40} was not found")
        self.assert_error(self.get(path), 401, "Unauthorized")
        self.assert_error(self.get(path, "not-a-jwt"), 401, "Unauthorized")
        other = os.path.join(self.dir, "other-key.pem")
        now = int(time.time())
        header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        payload = b64(json.dumps({"iss": "kbgap", "aud": AUDIENCE, "exp": now + 600,
                                  "roles": ["Software.Read.All"]}).encode())
        hs_header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        with open(self.key, "rb") as f:  # HS256 keyed with the key file itself
            hs_sig = b64(hmac.new(f.read(), f"{hs_header}.{payload}".encode(),
                                  hashlib.sha256).digest())
        bad = {
            "alg none": f"{header}.{payload}.",
            "HS256": f"{hs_header}.{payload}.{hs_sig}",
            "another key": self.signed(other),
            "expired": self.signed(self.key, exp=now - 3600, nbf=now - 7200),
            "not yet valid": self.signed(self.key, nbf=now + 3600, exp=now + 7200),
            "no exp": self.signed(self.key, exp=None),
            "wrong audience": self.signed(self.key, aud="https://graph.microsoft.com"),
            "wrong issuer": self.signed(self.key, iss="https://sts.windows.net/x/"),
        }
        good = self.signed(self.key)
        self.assertEqual(self.get(path, good).status_code, 200)
        for why, token in bad.items():
            with self.subTest(why):
                r = self.get(path, token)
                self.assert_error(r, 401, "Unauthorized")
                self.assertIn("Bearer", r.headers["WWW-Authenticate"])
        lacking = self.token("Machine.Read.All")
        body = self.assert_error(self.get(path, lacking), 403, "Forbidden")
        self.assertEqual(body["error"]["message"],
                         "The application does not have any of the required application "
                         "permissions (Software.Read.All) to access the resource.")
        self.assert_error(self.get("/api/nothing-here", self.read), 404, "ResourceNotFound")
        # Bytes that are not UTF-8 in the path (found by fuzz_request_target) and in the Host
        # header: the answer is still JSON that any client can read.
        body = self.assert_error(self.get("/api/machines/01%D0%C8%CF%A0597/getmissingkbs",
                                          self.read), 400, "InvalidInput")
        self.assertIn("01\ufffd\ufffd\u03e0597", body["error"]["message"])  # CF A0: U+03E0
        odd_host = self.get(path, self.read, headers={"Host": "h\xe9\xff\"x"})
        self.assertEqual(odd_host.status_code, 200)
        self.assertTrue(odd_host.json()["@odata.context"].startswith("http://localhost/api/"))

    def test_token_attacks_are_refused_before_any_handler(self):
        """Forged, stale, misdirected and malformed tokens: 401 (403 for a valid token without
        the role) on a read, a write and a delete, and nothing is written or deleted. Every
        attack token claims the write permission, so a handler that ran would show."""
        machine_id, _ = self.machine_id("win10")
        path = f"/api/machines/{machine_id}/getmissingkbs"
        now = int(time.time())
        roles = ["Machine.ReadWrite.All", "Machine.Read.All", "Software.Read.All"]
        valid = self.signed(self.key, roles=roles, appid="attacker")
        header, payload, signature = valid.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

        def forge(alg_header, body, secret):
            h = b64(json.dumps(alg_header).encode())
            p = b64(json.dumps(body).encode())
            return f"{h}.{p}.{b64(hmac.new(secret, f'{h}.{p}'.encode(), hashlib.sha256).digest())}"

        public_pem = run("openssl", "pkey", "-in", self.key, "-pubout").stdout.encode()
        jwks = run(TOKEN_TOOL, self.key, "--jwks").stdout.strip().encode()
        kid = json.loads(jwks)["keys"][0]["kid"]
        with open(self.key, "rb") as f:
            private_pem = f.read()
        other = os.path.join(self.dir, "attacker-key.pem")
        unknown_kid_header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "no-such-key"}).encode())
        raised = b64(json.dumps(dict(claims, roles=roles + ["Vulnerability.Read.All"],
                                     exp=now + 86400)).encode())
        attacks = {
            "alg none": b64(b'{"alg":"none","typ":"JWT"}') + f".{payload}.",
            "alg none, signature kept": b64(b'{"alg":"none","typ":"JWT"}') + f".{payload}.{signature}",
            "alg None": b64(b'{"alg":"None"}') + f".{payload}.",
            "HS256 keyed with the public key (PEM)":
                forge({"alg": "HS256", "typ": "JWT", "kid": kid}, claims, public_pem),
            "HS256 keyed with the JWKS": forge({"alg": "HS256", "kid": kid}, claims, jwks),
            "HS256 keyed with the key file": forge({"alg": "HS256", "kid": kid}, claims, private_pem),
            "RS512 header": b64(json.dumps({"alg": "RS512", "kid": kid}).encode()) + f".{payload}.{signature}",
            "unknown kid": f"{unknown_kid_header}.{payload}.{signature}",
            "no kid": b64(b'{"alg":"RS256","typ":"JWT"}') + f".{payload}.{signature}",
            "signed by another key": self.signed(other, roles=roles),
            "expired": self.signed(self.key, roles=roles, exp=now - 3600, nbf=now - 7200),
            "nbf in the future": self.signed(self.key, roles=roles, nbf=now + 3600, exp=now + 7200),
            "no exp": self.signed(self.key, roles=roles, exp=None),
            "wrong aud": self.signed(self.key, roles=roles, aud="https://graph.microsoft.com"),
            "no aud": self.signed(self.key, roles=roles, aud=None),
            "wrong iss": self.signed(self.key, roles=roles, iss="https://sts.windows.net/x/"),
            "payload changed after signing": f"{header}.{raised}.{signature}",
            "truncated signature": f"{header}.{payload}.{signature[:-8]}",
            "no signature": f"{header}.{payload}.",
            "signature of another token": f"{header}.{payload}.{self.writer.split('.')[2]}",
            "oversized (20 KiB)": self.signed(self.key, roles=roles, pad="x" * 20000),
            "invalid base64url in the payload": f"{header}.{payload[:10]}*{payload[11:]}.{signature}",
            "padded base64": f"{header}.{payload}==.{signature}",
            "standard base64 alphabet": f"{header}.{payload}.{signature.replace('-', '+').replace('_', '/')}x+/",
            "two parts": f"{header}.{payload}",
            "four parts": f"{valid}.{signature}",
            "header not JSON": b64(b"not json") + f".{payload}.{signature}",
            "empty": "",
        }
        self.assertGreater(len(attacks["oversized (20 KiB)"]), 16 * 1024)
        # The control: the untampered token reads and writes.
        self.assertEqual(self.get(path, valid).status_code, 200)
        created = []

        def write(token, n):
            device = {"id": f"{0xa77ac4000 + n:040x}", "computerDnsName": f"attack{n}",
                      "osBuild": "10.0.19045.3803", "osArchitecture": "x64"}
            created.append(device["id"])
            return requests.post(f"{self.base}/api/kbgap/devices", json=[device], timeout=60,
                                 headers={"Authorization": f"Bearer {token}"})

        self.assertEqual(write(valid, 0).status_code, 200)
        for n, (why, token) in enumerate(attacks.items(), start=1):
            with self.subTest(why):
                r = self.get(path, token)
                self.assert_error(r, 401, "Unauthorized")
                self.assertIn("Bearer", r.headers["WWW-Authenticate"])
                self.assert_error(write(token, n), 401, "Unauthorized")
                self.assert_error(requests.delete(f"{self.base}/api/kbgap/devices/{created[0]}",
                                                  headers={"Authorization": f"Bearer {token}"},
                                                  timeout=60), 401, "Unauthorized")
        # A valid token without the role: 403, and no handler ran either.
        no_role = self.signed(self.key, roles=["Vulnerability.Read.All"])
        self.assert_error(self.get(path, no_role), 403, "Forbidden")
        self.assert_error(write(no_role, len(attacks) + 1), 403, "Forbidden")
        stored = {m["id"] for m in self.get("/api/machines", self.read).json()["value"]}
        self.assertIn(created[0], stored)  # the control, and no attack deleted it
        self.assertFalse(stored & set(created[1:]), "an attack token wrote a device")
        requests.delete(f"{self.base}/api/kbgap/devices/{created[0]}",
                        headers={"Authorization": f"Bearer {self.writer}"}, timeout=60)

    def test_health_needs_no_token_and_everything_else_does(self):
        self.assertEqual(self.get("/healthz").status_code, 200)
        self.assertEqual(self.get("/readyz").status_code, 200)
        for path in ("/api/machines", "/api/vulnerabilities", "/api/Software", "/metrics"):
            self.assert_error(self.get(path), 401, "Unauthorized")

    def test_machines_paging_filter_and_count(self):
        everyone = self.get("/api/machines", self.read).json()["value"]
        self.assertEqual(len(everyone), len(self.inventories))
        pages, url = [], f"{self.base}/api/machines?$top=2"
        while url:
            body = requests.get(url, headers={"Authorization": f"Bearer {self.read}"},
                                timeout=60).json()
            pages.append(len(body["value"]))
            everyone_paged = body["value"]
            for m in everyone_paged:
                self.assertIn(m["id"], {x["id"] for x in everyone})
            url = body.get("@odata.nextLink")
        self.assertEqual(pages, [2, 2, 1])
        counted = self.get("/api/machines?$count=true&$top=1", self.read).json()
        self.assertEqual(counted["@odata.count"], len(everyone))
        win10 = self.get("/api/machines", self.read,
                         params={"$filter": "osPlatform eq 'Windows10' and osBuild ge 17763"})
        self.assertEqual([m["osPlatform"] for m in win10.json()["value"]], ["Windows10"])
        either = self.get("/api/machines", self.read,
                          params={"$filter": "(version eq '1809' or startswith(osPlatform,"
                                             "'WindowsServer')) and not (osBuild lt 17000)"})
        self.assertEqual(sorted(m["osPlatform"] for m in either.json()["value"]),
                         ["Windows10", "WindowsServer2019"])
        for bad in ("osPlatform eq", "osPlatform like 'x'", "secret eq 1", "(osBuild gt 1"):
            with self.subTest(bad):
                self.assert_error(self.get("/api/machines", self.read, params={"$filter": bad}),
                                  400, "ODataError")
        self.assert_error(self.get("/api/machines?$top=10001", self.read), 400, "ODataError")
        ordered = self.get("/api/machines?$orderby=computerDnsName desc", self.read).json()
        names = [m["computerDnsName"].lower() for m in ordered["value"]]
        self.assertEqual(names, sorted(names, reverse=True))
        self.assert_error(self.get("/api/machines?$orderby=secret", self.read), 400, "ODataError")
        self.assert_error(self.get("/api/machines?$apply=groupby((osPlatform))", self.read), 400,
                          "ODataError")
        one = self.get(f"/api/machines/{everyone[0]['id']}", self.read).json()
        self.assertTrue(one["@odata.context"].endswith("/api/$metadata#Machines/$entity"))
        self.assertEqual(one["id"], everyone[0]["id"])

    def test_writes_show_at_once_and_need_the_write_permission(self):
        device = {"id": "ab" * 20, "computerDnsName": "fresh.example.com",
                  "osName": "Microsoft Windows 10 Enterprise", "osBuild": "10.0.19045.3803",
                  "osArchitecture": "x64", "installedKbs": ["KB5033372"], "tags": ["new"]}
        self.assert_error(requests.post(f"{self.base}/api/kbgap/devices", json=[device],
                                        headers={"Authorization": f"Bearer {self.read}"},
                                        timeout=60), 403, "Forbidden")
        r = requests.post(f"{self.base}/api/kbgap/devices", json={"devices": [device]},
                          headers={"Authorization": f"Bearer {self.writer}"}, timeout=60)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["created"], 1)
        missing = self.get(f"/api/machines/{device['id']}/getmissingkbs", self.read)
        self.assertEqual(missing.status_code, 200)
        self.assertTrue(missing.json()["value"])
        tagged = self.get("/api/machines", self.read,
                          params={"$filter": "machineTags/any(tag: tag eq 'new')"}).json()
        self.assertEqual([m["id"] for m in tagged["value"]], [device["id"]])
        # Bad batches are refused whole.
        bad = dict(device, id="cd" * 20, osBuild="10.0")
        r = requests.post(f"{self.base}/api/kbgap/devices", json=[dict(device, id="ef" * 20), bad],
                          headers={"Authorization": f"Bearer {self.writer}"}, timeout=60)
        self.assert_error(r, 400, "InvalidInput")
        self.assertEqual(self.get("/api/machines/" + "ef" * 20, self.read).status_code, 404)
        d = requests.delete(f"{self.base}/api/kbgap/devices/{device['id']}",
                            headers={"Authorization": f"Bearer {self.writer}"}, timeout=60)
        self.assertEqual(d.status_code, 204)
        self.assertEqual(self.get(f"/api/machines/{device['id']}", self.read).status_code, 404)

    def test_a_release_newer_than_kbgaps_table_is_learnt_from_the_catalog(self):
        # Windows 11 26H1 (10.0.28000) is in the catalog; 10.0.29999 is in nothing.
        device = {"id": "ac" * 20, "computerDnsName": "w26h1.example.com",
                  "osName": "Microsoft Windows 11 Enterprise", "osBuild": "10.0.28000.1575",
                  "osArchitecture": "x64", "installedKbs": []}
        r = requests.post(f"{self.base}/api/kbgap/devices", json=[device],
                          headers={"Authorization": f"Bearer {self.writer}"}, timeout=60)
        self.assertEqual(r.status_code, 200, r.text)
        machine = self.get(f"/api/machines/{device['id']}", self.read).json()
        self.assertEqual(machine["version"], "26H1", machine)
        self.assertEqual(machine["osPlatform"], "Windows11", machine)
        missing = self.get(f"/api/machines/{device['id']}/getmissingkbs", self.read).json()
        self.assertIn("5089548", [kb["id"] for kb in missing["value"]], missing)
        unknown = dict(device, id="ad" * 20, osBuild="10.0.29999")
        r = requests.post(f"{self.base}/api/kbgap/devices", json=[unknown],
                          headers={"Authorization": f"Bearer {self.writer}"}, timeout=60)
        self.assert_error(r, 400, "InvalidInput")
        self.assertIn("unknown Windows build 10.0.29999", r.json()["error"]["message"])
        requests.delete(f"{self.base}/api/kbgap/devices/{device['id']}",
                        headers={"Authorization": f"Bearer {self.writer}"}, timeout=60)

    def test_a_write_by_another_process_shows_at_once(self):
        before = len(self.get("/api/machines", self.read).json()["value"])
        imported = run(KBGAP, "--data", self.data, "devices", "import",
                       os.path.join(INVENTORIES, "10_22H2_x64_enterprise_en-us_systeminfo.txt"))
        self.assertIn("1 new", imported.stdout)
        after = self.get("/api/machines", self.read).json()["value"]
        # On PostgreSQL another process's write reaches the server by notification: within 1 s.
        deadline = time.time() + (1 if server_support.on_postgres() else 0)
        while len(after) != before + 1 and time.time() < deadline:
            time.sleep(0.05)
            after = self.get("/api/machines", self.read).json()["value"]
        self.assertEqual(len(after), before + 1)
        fresh = [m for m in after if m["version"] == "22H2"]
        self.assertEqual(len(fresh), 1)
        d = requests.delete(f"{self.base}/api/kbgap/devices/{fresh[0]['id']}",
                            headers={"Authorization": f"Bearer {self.writer}"}, timeout=60)
        self.assertEqual(d.status_code, 204)

    def test_software_and_vulnerabilities(self):
        software = self.get("/api/Software", self.read).json()["value"]
        names = {s["name"] for s in software}
        self.assertIn("windows_10", names)
        self.assertTrue(all(s["id"] == f"microsoft-_-{s['name']}" for s in software))
        kbs = self.get("/api/Software/microsoft-_-windows_10/getmissingkbs", self.read).json()
        self.assertTrue(kbs["value"])
        for kb in kbs["value"]:
            self.assertEqual(list(kb), list(SEED_FIELDS))
            self.assertEqual(kb["productsNames"], ["windows_10"])
            self.assertGreaterEqual(kb["machineMissedOn"], 1)
        self.assert_error(self.get("/api/Software/microsoft-_-nothing/getmissingkbs", self.read),
                          404, "ResourceNotFound")
        machine_id, _ = self.machine_id("win10")
        open_cves = self.get(f"/api/machines/{machine_id}/vulnerabilities", self.read).json()
        self.assertTrue(open_cves["value"])
        cve = open_cves["value"][0]["id"]
        one = self.get(f"/api/vulnerabilities/{cve}", self.read).json()
        self.assertEqual(one["id"], cve)
        self.assertGreaterEqual(one["exposedMachines"], 1)
        refs = self.get(f"/api/vulnerabilities/{cve}/machineReferences", self.read).json()
        self.assertIn(machine_id, [m["id"] for m in refs["value"]])
        rows = self.get("/api/vulnerabilities/machinesVulnerabilities", self.read,
                        params={"$filter": f"machineId eq '{machine_id}'", "$top": "5"}).json()
        self.assertEqual(len(rows["value"]), 5)
        self.assertTrue(all(r["fixingKbId"].isdigit() for r in rows["value"]))
        self.assert_error(self.get("/api/vulnerabilities/CVE-1999-0001", self.read), 404,
                          "ResourceNotFound")
        self.assert_error(self.get("/api/vulnerabilities?$top=8001", self.read), 400, "ODataError")

    def test_installed_software_is_served_under_defenders_software_ids(self):
        # A server with SQL Server 2019 on CU 22 and Office 2016 (MSI, 64-bit): their missing
        # updates are the device's, and the fleet's under microsoft-_-sql_server_2019 and
        # microsoft-_-office_2016 (docs/engine.md, "Software beyond the OS").
        device = {"id": "ae" * 20, "computerDnsName": "sql01.example.com",
                  "osName": "Microsoft Windows Server 2019 Datacenter",
                  "osBuild": "10.0.17763.5820", "osArchitecture": "x64", "installedKbs": [],
                  "software": [
                      {"name": "SQL Server 2019 Database Engine Services",
                       "vendor": "Microsoft Corporation", "version": "15.0.4326.1"},
                      {"name": "Microsoft Office Professional Plus 2016",
                       "vendor": "Microsoft Corporation", "version": "16.0.4266.1001",
                       "architecture": "x64"},
                      {"name": "Notepad++ (64-bit x64)", "vendor": "Notepad++ Team",
                       "version": "8.6.4"}]}
        r = requests.post(f"{self.base}/api/kbgap/devices", json=[device],
                          headers={"Authorization": f"Bearer {self.writer}"}, timeout=60)
        self.assertEqual(r.status_code, 200, r.text)
        try:
            mine = self.get(f"/api/machines/{device['id']}/software", self.read).json()["value"]
            ids = {s["id"] for s in mine}
            self.assertIn("microsoft-_-sql_server_2019", ids)
            self.assertIn("microsoft-_-office_2016", ids)
            missing = self.get(f"/api/machines/{device['id']}/getmissingkbs", self.read).json()
            by_product = {}
            for kb in missing["value"]:
                for name in kb["productsNames"]:
                    by_product.setdefault(name, set()).add(kb["id"])
            # One SQL Server update: the CU branch's newest, which contains the others.
            self.assertEqual(len(by_product["sql_server_2019"]), 1, by_product)
            self.assertTrue(by_product["office_2016"])
            for product in ("sql_server_2019", "office_2016"):
                fleet = self.get(f"/api/Software/microsoft-_-{product}/getmissingkbs",
                                 self.read).json()["value"]
                self.assertTrue(by_product[product] <= {kb["id"] for kb in fleet})
                for kb in fleet:
                    self.assertEqual(kb["productsNames"], [product])
                    self.assertGreaterEqual(kb["machineMissedOn"], 1)
            vulns = self.get(f"/api/machines/{device['id']}/vulnerabilities", self.read).json()
            self.assertTrue(vulns["value"])
            r = self.get("/api/recommendations/va-_-microsoft-_-sql_server_2019",
                         self.token("SecurityRecommendation.Read.All"))
            self.assertEqual(r.status_code, 200, r.text)
            self.assertEqual(r.json()["recommendationCategory"], "Application")
        finally:
            requests.delete(f"{self.base}/api/kbgap/devices/{device['id']}",
                            headers={"Authorization": f"Bearer {self.writer}"}, timeout=60)

    def test_two_tenants_see_nothing_of_each_other(self):
        """docs/api.md, "Tenants": every route of the route table (read from api.cpp, so a new
        route is covered too), called with a token of each tenant: the default tenant's answers
        are the same before and after another tenant wrote devices (one of them under an id the
        default tenant also has), and neither tenant's answers name the other's devices or count
        them; writes reach only the writer's own devices."""
        import gzip
        import re
        with open(os.path.join(SOURCE, "src", "server", "api.cpp")) as f:
            routes = re.findall(r'\{"(GET|POST|DELETE)", "(/[^"]*)"', f.read())
        gets = [p for m, p in routes if m == "GET" and "exportfiles" not in p.lower()]
        self.assertGreater(len(gets), 30)
        mine = {m["id"]: m["computerDnsName"] for m in self.machines}
        shared_id, _ = self.machine_id("win10")
        own_id, _ = self.machine_id("win7")
        fab_only = "fa" * 20
        passes = iter(range(100))
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))

        def token(tenant, *roles):
            # A fresh application each time: the rate limits count per application.
            return self.token(*roles, app=f"tenants-{next(passes)}") if tenant is None else run(
                KBGAP, "--data", self.data, "token", "--tenant", tenant, "--app",
                f"tenants-{next(passes)}", *sum((["--role", r] for r in roles), [])).stdout.strip()

        readers = ("Software.Read.All", "Machine.Read.All", "Vulnerability.Read.All",
                   "SecurityRecommendation.Read.All", "Alert.Read.All")

        def answers(tok):
            """Every GET route's answer (body text by path), ids substituted both ways."""
            out = {}
            recs = self.get("/api/recommendations", tok).json().get("value", [])
            for pattern in gets:
                subs = [pattern]
                if "{id}" in pattern:
                    if pattern.startswith("/api/machines/"):
                        subs = [pattern.replace("{id}", i) for i in (shared_id, own_id, fab_only)]
                    elif pattern.startswith("/api/Software/"):
                        subs = [pattern.replace("{id}", "microsoft-_-" + s)
                                for s in ("windows_10", "windows_7", "windows_11")]
                    elif pattern.startswith("/api/vulnerabilities/"):
                        subs = [pattern.replace("{id}", c)
                                for c in ("CVE-2019-0708", "CVE-2024-38063")]
                    elif pattern.startswith("/api/recommendations/"):
                        subs = [pattern.replace("{id}", r["id"]) for r in recs[:2]] or \
                               [pattern.replace("{id}", "va-_-microsoft-_-windows_10")]
                for path in subs:
                    if path.endswith("ChangesByMachine"):
                        path += "?sinceTime=" + since
                    elif path.endswith("findbytag"):
                        path += "?tag=prod"
                    r = self.get(path, tok)
                    self.assertNotIn(r.status_code, (401, 403, 429, 500, 503), (path, r.text[:300]))
                    out[path] = re.sub(r',"target":"[^"]*"', "", r.text)  # an error's own id
                    if path.endswith("Export") and r.status_code == 200:
                        for link in r.json()["exportFiles"]:
                            out[path] += "\n" + gzip.decompress(requests.get(link, timeout=60).content
                                                         ).decode()
            return out

        before = answers(token(None, *readers))
        # Another tenant writes two devices: one under an id the default tenant also has.
        stored = json.loads(run(KBGAP, "--data", self.data, "devices", "list", "--format",
                                "json").stdout)
        by_id = {d["id"]: d for d in stored}
        twin = dict(by_id[shared_id], computerDnsName="fabrikam-twin", installedKbs=[])
        other = dict(by_id[own_id], id=fab_only, computerDnsName="fabrikam-only")
        fab_writer = token("fabrikam", "Machine.ReadWrite.All")
        r = requests.post(self.base + "/api/kbgap/devices", json=[twin, other], timeout=60,
                          headers={"Authorization": f"Bearer {fab_writer}"})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["created"], 2)
        self.addCleanup(lambda: [requests.delete(
            f"{self.base}/api/kbgap/devices/{i}", timeout=60,
            headers={"Authorization": f"Bearer {token('fabrikam', 'Machine.ReadWrite.All')}"})
            for i in (shared_id, fab_only)])
        fab = answers(token("fabrikam", *readers))
        after = answers(token(None, *readers))
        self.assertEqual(before.keys(), after.keys())
        for path in before:
            if path.endswith("Export") or path == "/metrics":  # new links, times and counts
                self.assertNotIn("fabrikam", after[path], path)
                continue
            self.assertEqual(before[path], after[path], path)
        # The other tenant sees its two devices only, and counts no more.
        fab_machines = json.loads(fab["/api/machines"])["value"]
        self.assertEqual(sorted(m["computerDnsName"] for m in fab_machines),
                         ["fabrikam-only", "fabrikam-twin"])
        foreign = [i for i in mine if i != shared_id] + list(mine.values())
        counts = {"machineMissedOn", "exposedMachines", "exposedMachinesCount",
                  "totalMachineCount", "exposedCriticalDevices"}

        def walk(value, path):
            if isinstance(value, dict):
                for k, v in value.items():
                    if k in counts and isinstance(v, int):
                        self.assertLessEqual(v, 2, (path, k))
                    walk(v, path)
            elif isinstance(value, list):
                for v in value:
                    walk(v, path)

        for path, body in fab.items():
            for marker in foreign:
                if marker in path:  # the other tenant's device named in the path: not found
                    self.assertIn('"code":"ResourceNotFound"', body, path)
                    continue
                self.assertNotIn(marker, body, path)
            if path.endswith("Export"):  # the answer, then the files' JSON lines
                answer, _, lines = body.partition("}\n")
                walk(json.loads(answer + "}"), path)
                for line in lines.splitlines():
                    walk(json.loads(line), path)
            elif body.startswith("{"):
                walk(json.loads(body), path)
        self.assertEqual(self.get(f"/api/machines/{own_id}", token("fabrikam", *readers))
                         .status_code, 404)
        # Writes: the other tenant's id is not found; the shared id is the writer's own device.
        headers = {"Authorization": f"Bearer {fab_writer}"}
        self.assertEqual(requests.delete(f"{self.base}/api/kbgap/devices/{own_id}",
                                         headers=headers, timeout=60).status_code, 404)
        r = requests.post(f"{self.base}/api/machines/{shared_id}/tags", headers=headers,
                          json={"Value": "fabrikam-tag", "Action": "Add"}, timeout=60)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["computerDnsName"], "fabrikam-twin")
        default_reader = token(None, *readers)
        self.assertNotIn("fabrikam-tag", self.get(f"/api/machines/{shared_id}",
                                                   default_reader).text)
        self.assertEqual(requests.delete(f"{self.base}/api/kbgap/devices/{shared_id}",
                                         headers=headers, timeout=60).status_code, 204)
        self.assertEqual(self.get(f"/api/machines/{shared_id}", default_reader).status_code, 200)
        # A token whose tid is not a tenant name is refused.
        bad = self.signed(self.key, tid="a/b", roles=["Machine.Read.All"])
        self.assertEqual(self.get("/api/machines", bad).status_code, 401)

    def test_metrics_count_requests(self):
        self.get("/healthz")
        text = self.get("/metrics", self.read).text
        self.assertIn('kbgap_http_requests_total{route="/healthz",status="200"}', text)
        self.assertIn("kbgap_http_request_duration_seconds_bucket", text)


class Configured(unittest.TestCase):
    """A server with a configuration file: an external issuer by JWKS file, one whose JWKS URL
    cannot be fetched, a small rate limit, and small size and time limits."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="kbgap-config-")
        cls.data = os.path.join(cls.dir, "data")
        run(KBGAP, "--data", cls.data, "devices", "import",
            os.path.join(INVENTORIES, "11_24H2_x64_enterprise_systeminfo.txt"))
        cls.external_key = os.path.join(cls.dir, "external.pem")
        jwks = run(TOKEN_TOOL, cls.external_key, "--jwks").stdout
        with open(os.path.join(cls.dir, "jwks.json"), "w") as f:
            f.write(jwks)
        config = os.path.join(cls.dir, "kbgap.toml")
        with open(config, "w") as f:
            f.write(f"""
[server]
request_timeout_seconds = 2
max_header_bytes = 4096
max_body_bytes = 100000
access_log = false

[rate_limits]
machines_per_minute = 3

[[auth.issuers]]
issuer = "https://issuer.example/"
jwks_file = "{os.path.join(cls.dir, 'jwks.json')}"

[[auth.issuers]]
issuer = "https://down.example/"
jwks_url = "http://127.0.0.1:9/keys"

[[auth.issuers]]
issuer = "https://customer.example/"
jwks_file = "{os.path.join(cls.dir, 'jwks.json')}"
tenant = "customer"
""")
        cls.server, cls.port = serve(cls.data, cls.dir, "--config", config)
        cls.base = f"http://127.0.0.1:{cls.port}"

    @classmethod
    def tearDownClass(cls):
        try:
            # A clean stop: exit status 0 and the last word said.
            status, said = server_support.stop(cls.server)
            assert status == 0 and "kbgap: stopped" in said, (status, said)
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def external(self, **changes):
        now = int(time.time())
        claims = {"iss": "https://issuer.example/", "aud": AUDIENCE, "azp": "external-app",
                  "nbf": now - 5, "exp": now + 600, "roles": ["Machine.Read.All"]}
        claims.update(changes)
        return run(TOKEN_TOOL, self.external_key, json.dumps(claims)).stdout.strip()

    def get(self, path, token):
        return requests.get(self.base + path, headers={"Authorization": f"Bearer {token}"},
                            timeout=60)

    def test_issuers_from_the_configuration(self):
        self.assertEqual(self.get("/api/machines", self.external(azp="issuer-test")).status_code,
                         200)
        # An issuer whose JWKS cannot be fetched: its tokens are refused, nothing else breaks.
        r = self.get("/api/machines", self.external(iss="https://down.example/", azp="x"))
        self.assertEqual(r.status_code, 401)
        self.assertEqual(r.json()["error"]["code"], "Unauthorized")
        # Nor does it write, with the write permission claimed.
        down = self.external(iss="https://down.example/", azp="x",
                             roles=["Machine.ReadWrite.All", "Machine.Read.All"])
        device = {"id": "d0" * 20, "computerDnsName": "down", "osBuild": "10.0.19045.3803",
                  "osArchitecture": "x64"}
        r = requests.post(self.base + "/api/kbgap/devices", json=[device], timeout=60,
                          headers={"Authorization": f"Bearer {down}"})
        self.assertEqual(r.status_code, 401)
        listed = json.loads(run(KBGAP, "--data", self.data, "devices", "list", "--format",
                                "json").stdout)
        self.assertNotIn(device["id"], [d["id"] for d in listed])

    def test_an_issuer_pinned_to_a_tenant_names_no_other(self):
        # Tokens of an issuer configured with `tenant` are that tenant's, whatever tid they carry:
        # one that names another tenant is refused, as is a tid that is not a string.
        customer = {"iss": "https://customer.example/", "azp": "customer-app"}
        r = self.get("/api/machines", self.external(**customer))
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["value"], [])  # the customer has no device; the default has one
        self.assertEqual(self.get("/api/machines", self.external(**customer, tid="customer"))
                         .status_code, 200)
        for tid in ("kbgap", "other", 5):
            r = self.get("/api/machines", self.external(**customer, tid=tid))
            self.assertEqual(r.status_code, 401, tid)
            self.assertIn("tid", r.json()["error"]["message"])
        self.assertEqual(len(self.get("/api/machines", self.external(azp="x")).json()["value"]), 1)
        self.assertEqual(self.get("/api/machines", self.external(azp="x", tid=5)).status_code, 401)

    def test_rate_limit_per_application(self):
        token = self.external(azp="limited-app")
        for _ in range(3):
            self.assertEqual(self.get("/api/machines", token).status_code, 200)
        r = self.get("/api/machines", token)
        self.assertEqual(r.status_code, 429)
        self.assertEqual(r.json()["error"]["code"], "TooManyRequests")
        self.assertTrue(1 <= int(r.headers["Retry-After"]) <= 60)
        # Another application has its own budget; so has the same one in another tenant.
        self.assertEqual(self.get("/api/machines", self.external(azp="other-app")).status_code,
                         200)
        self.assertEqual(self.get("/api/machines", self.external(azp="limited-app",
                                                                tid="other-customer")).status_code,
                         200)
        self.assertEqual(self.get("/api/machines", token).status_code, 429)

    def test_size_and_time_limits(self):
        import socket
        token = self.external(azp="limits")
        r = requests.get(self.base + "/api/machines",
                         headers={"Authorization": f"Bearer {token}", "X-Big": "x" * 40000},
                         timeout=60)
        self.assertEqual(r.status_code, 431)
        r = requests.post(self.base + "/api/kbgap/devices", data="[" + " " * 200000 + "]",
                          headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self.assertEqual(r.status_code, 413)
        # A client that starts a request and stalls gets 408 when the request time is up.
        started = time.time()
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            answer = s.recv(4096).decode()
        self.assertTrue(answer.startswith("HTTP/1.1 408"), answer)
        self.assertLess(time.time() - started, 10)


class Stop(unittest.TestCase):
    """SIGTERM while a batch of 5,000 devices is still arriving: it is answered and kept."""

    def test_a_request_in_flight_finishes_on_sigterm(self):
        work = tempfile.mkdtemp(prefix="kbgap-stop-")
        data = os.path.join(work, "data")
        try:
            run(KBGAP, "--data", data, "devices", "import",
                os.path.join(INVENTORIES, "11_24H2_x64_enterprise_systeminfo.txt"))
            server, port = serve(data, work, "--quiet")
            writer = run(KBGAP, "--data", data, "token", "--role",
                         "Machine.ReadWrite.All").stdout.strip()
            devices = [{"id": f"{i:040x}", "computerDnsName": f"pc{i}.example.com",
                        "osName": "Microsoft Windows 10 Enterprise",
                        "osBuild": f"10.0.19045.{3000 + i % 900}", "osArchitecture": "x64",
                        "installedKbs": ["KB5034122", "KB5033372"], "tags": ["bulk"]}
                       for i in range(1, 5001)]
            body = json.dumps(devices).encode()
            head = (f"POST /api/kbgap/devices HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {writer}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            import socket
            with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
                # Half the request, then SIGTERM, then the rest: the request is in flight when
                # the stop begins.
                s.sendall(head + body[: len(body) // 2])
                time.sleep(0.3)
                server.send_signal(signal.SIGTERM)
                time.sleep(0.3)
                s.sendall(body[len(body) // 2:])
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            self.assertEqual(server.wait(timeout=300), 0)
            server.stderr.close()
            status, _, rest = answer.partition(b"\r\n")
            self.assertEqual(status, b"HTTP/1.1 200 OK", answer[:300])
            self.assertIn(b"Connection: close", rest)
            self.assertEqual(json.loads(rest.split(b"\r\n\r\n", 1)[1])["created"], 5000)
            # Everything acknowledged is there after the stop.
            listed = json.loads(run(KBGAP, "--data", data, "devices", "list", "--format",
                                    "json").stdout)
            self.assertEqual(len(listed), 5001)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
