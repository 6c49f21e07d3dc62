#!/usr/bin/python3
"""Real Defender clients against kbgap (docs/api.md, "Clients"): the requests four open-source
clients send, as they send them, and what they then do with the answers, against the real server
on a loopback port with the demo fleet's real inventories.

The clients, read at these commits (their code is not copied here; their requests and the fields
and types they rely on are):
- check_msdefender (lduchosal/check_msdefender @ 324fc2db, check_msdefender/core/defender.py and
  services/*.py): a monitoring plugin.
- PSMDE (Visorian/PSMDE @ 52127fda, src/public/*.ps1; gbdixg/PSMDE @ c385478c): PowerShell modules.
- CIPP (KelvinTegelaar/CIPP-API @ adf32422, Modules/CIPPCore/Public/Get-DefenderTvmRaw.ps1 and
  Get-DefenderCves.ps1): a multi-tenant admin tool.
- The Azure Sentinel playbook Get-MDATPVulnerabilities (Azure/Azure-Sentinel @ 31fb1f7e and
  e2cfc2eb, Playbooks/Get-MDATPVulnerabilities/azuredeploy.json): its ParseJson schemas.
- kcatta-form's MDVM materialization (form/mdvm.py, as the code search tool stores it): a
  baseline from SoftwareVulnerabilitiesByMachine, then deltas from
  SoftwareVulnerabilityChangesByMachine with a 6-hour overlap, applied in eventTimestamp order.

Usage: clients_test.py <kbgap binary> <kbgap_token_tool binary> <source dir>
"""
import datetime
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import requests

import server_support

KBGAP, TOKEN_TOOL, SOURCE = sys.argv[1], sys.argv[2], sys.argv[3]
INVENTORIES = os.path.join(SOURCE, "data", "inventories")
SEVERITIES = ("Critical", "High", "Medium", "Low")


def run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"{args} failed: {r.stderr}")
    return r.stdout


class Clients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="kbgap-clients-")
        cls.data = os.path.join(cls.dir, "data")
        files = sorted(glob.glob(os.path.join(INVENTORIES, "*systeminfo*.txt")))
        for f in files:
            qfe = f.replace("_systeminfo.txt", "_qfe.txt")
            run(KBGAP, "--data", cls.data, "devices", "import",
                *([f, qfe] if os.path.exists(qfe) else [f]))
        config = os.path.join(cls.dir, "kbgap.toml")
        with open(config, "w") as out:
            out.write('[[machine_groups]]\nname = "Servers"\ntag = "servers"\n')
            # kcatta-form pages by 1,000 rows: the demo fleet's export is more pages than
            # Defender's 30 calls a minute allow (it would wait out each 429's Retry-After).
            out.write('[rate_limits]\nexports_per_minute = 600\nexports_per_hour = 6000\n')
        cls.server, cls.port = server_support.serve(KBGAP, cls.data, cls.dir, "--quiet",
                                                    "--config", config)
        cls.base = f"http://127.0.0.1:{cls.port}"
        cls.key = os.path.join(cls.data, "keys", "signing-key.pem")
        cls.app_roles = ["Machine.Read.All", "Machine.ReadWrite.All", "Vulnerability.Read.All",
                         "Software.Read.All", "Alert.Read.All", "SecurityRecommendation.Read.All"]

    @classmethod
    def tearDownClass(cls):
        try:
            server_support.stop(cls.server)
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def token(cls, audience="https://api.securitycenter.microsoft.com", roles=None, app=None):
        """An application token as Entra issues it for a client credentials grant."""
        now = int(time.time())
        claims = {"iss": "kbgap", "aud": audience, "appid": app or audience, "iat": now,
                  "nbf": now - 5, "exp": now + 3600, "roles": roles or cls.app_roles}
        return run(TOKEN_TOOL, cls.key, json.dumps(claims)).strip()

    def session(self, audience="https://api.securitycenter.microsoft.com", app=None):
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.token(audience, app=app or self.id())}"
        return s

    def get(self, s, path, **kw):
        r = s.get(path if path.startswith("http") else self.base + path, timeout=60, **kw)
        self.assertEqual(r.status_code, 200, f"{path}: {r.text[:300]}")
        return r.json()

    def follow(self, s, path):
        """Every item, following @odata.nextLink as the clients do (verbatim, to its end)."""
        items, url, pages = [], path, 0
        while url:
            body = self.get(s, url)
            items += body["value"]
            url = body.get("@odata.nextLink")
            pages += 1
            self.assertLess(pages, 1000)
        return items

    def machines(self):
        return self.follow(self.session(), "/api/machines")

    # ---- check_msdefender ----

    def test_check_msdefender(self):
        s = self.session()
        s.headers["Content-Type"] = "application/json"
        machines = self.machines()
        self.assertGreater(len(machines), 30)
        for m in machines[:5]:
            dns = m["computerDnsName"]
            # Looking a host up by name: the first item's id, a string it slices.
            found = self.get(s, f"/api/machines?$filter=computerDnsName eq '{dns}'&$select=id")
            self.assertEqual(list(found["value"][0]), ["id"])
            machine_id = found["value"][0]["id"]
            self.assertEqual(len(machine_id[:10]), 10)
            detail = self.get(s, f"/api/machines/{machine_id}")
            # lastseen check: 'Z' made '+00:00', at most 6 fractional digits, then parsed.
            last_seen = detail["lastSeen"].replace("Z", "+00:00")
            self.assertTrue(last_seen)
            datetime.datetime.fromisoformat(last_seen)
            self.assertEqual(detail["onboardingStatus"], "Onboarded")
            # vulnerabilities check: counted by severity, lower-cased, deduplicated by id.
            counts = {"critical": 0, "high": 0, "medium": 0, "low": 0}
            seen = set()
            for v in self.get(s, f"/api/machines/{machine_id}/vulnerabilities")["value"]:
                if v["id"] in seen:
                    continue
                seen.add(v["id"])
                counts[v["severity"].lower()] += 1  # a KeyError for any other word
                description = v.get("description") or ""
                if description.startswith("Summary: "):
                    description = description[len("Summary: "):]
                self.assertTrue(v["name"])
            self.assertEqual(sum(counts.values()), len(seen))
            # alerts check: no OData options; kbgap raises none.
            self.assertEqual(self.follow(s, f"/api/machines/{machine_id}/alerts"), [])
        listed = self.get(s, "/api/machines?$select=id,computerDnsName,onboardingStatus,osPlatform")
        for m in listed["value"]:
            self.assertEqual(list(m), ["id", "computerDnsName", "onboardingStatus", "osPlatform"])
        # products check: the export once, filtered by device on the client, scored with max().
        rows = self.get(s, "/api/machines/SoftwareVulnerabilitiesByMachine"
                           "?pageIndex=1&pageSize=50000")["value"]
        self.assertTrue(rows)
        by_device = {}
        for row in rows:
            by_device.setdefault(row["deviceId"], []).append(row)
            self.assertIsInstance(row["diskPaths"], list)
            self.assertIsInstance(row["registryPaths"], list)
            level = row["vulnerabilitySeverityLevel"] or "Unknown"
            self.assertIn(level, SEVERITIES)
        for device, mine in by_device.items():
            worst = max(r["cvssScore"] for r in mine)  # a None would raise here
            self.assertIsInstance(worst, (int, float))
            self.assertTrue(all(r["softwareName"] and r["softwareVersion"] is not None or
                                not r["softwareName"].startswith("windows") for r in mine))

    # ---- PSMDE ----

    def test_psmde(self):
        s = self.session()
        # Its token checks happen client side: a JWT ("eyJ") with roles and exp.
        self.assertTrue(s.headers["Authorization"].split()[1].startswith("eyJ"))
        machines = self.follow(s, "/api/machines")
        self.assertEqual(len(machines), len(self.machines()))
        server = next(m for m in machines if m["osPlatform"].startswith("WindowsServer"))
        # Get-MdeMachineVulnerability / Software / MissingKb.
        for sub in ("software", "vulnerabilities", "getmissingkbs"):
            self.assertTrue(self.follow(s, f"/api/machines/{server['id']}/{sub}"), sub)
        # Get-MdeVulnerability -Severity High: '+' for spaces, as PowerShell writes the URL.
        high = self.follow(s, "/api/vulnerabilities?$filter=severity+eq+'High'")
        self.assertTrue(high)
        self.assertEqual({v["severity"] for v in high}, {"High"})
        cve = high[0]["id"]
        self.assertEqual(self.get(s, f"/api/vulnerabilities/{cve}")["id"], cve)
        mine = self.follow(s, "/api/vulnerabilities/machinesVulnerabilities?$filter=severity+eq+"
                              f"'High'+and+machineId+eq+'{server['id']}'")
        self.assertTrue(mine)
        for row in mine:
            self.assertEqual((row["severity"], row["machineId"]), ("High", server["id"]))
            one = self.follow(s, "/api/vulnerabilities/machinesVulnerabilities?$filter=severity+eq+"
                                 f"'High'+and+machineId+eq+'{server['id']}'+and+cveId+eq+"
                                 f"'{row['cveId']}'")
            self.assertEqual([r["id"] for r in one], [row["id"]])
            break
        # Get-MdeSoftware -Id -Name -Vendor, and its missing KBs.
        software = self.follow(s, "/api/Software")
        own = {x["name"] for x in self.follow(s, f"/api/machines/{server['id']}/software")}
        windows = next(x for x in software
                       if x["name"].startswith("windows_server") and x["name"] in own)
        same = self.follow(s, f"/api/Software?$filter=id eq '{windows['id']}' and name eq "
                              f"'{windows['name']}' and vendor eq '{windows['vendor']}'")
        self.assertEqual(same, [windows])
        self.assertTrue(self.follow(s, f"/api/Software/{windows['id']}/getmissingkbs"))
        # Get-MdeSoftwareDistribution, -MachineReference, -Vulnerability.
        versions = self.follow(s, f"/api/Software/{windows['id']}/distributions")
        running = self.follow(s, f"/api/Software/{windows['id']}/machineReferences")
        self.assertEqual(sum(v["installations"] for v in versions), len(running))
        self.assertIn(server["id"], [m["id"] for m in running])
        self.assertEqual(len(self.follow(s, f"/api/Software/{windows['id']}/vulnerabilities")),
                         windows["weaknesses"])
        # Get-MdeSecurityRecommendation, for the fleet and for a machine, and what hangs off one.
        recommendations = self.follow(s, "/api/recommendations")
        self.assertTrue(recommendations)
        mine = self.follow(s, f"/api/machines/{server['id']}/recommendations")
        self.assertTrue(mine)
        self.assertLessEqual({r["id"] for r in mine}, {r["id"] for r in recommendations})
        first = mine[0]
        same = self.follow(s, f"/api/recommendations?$filter=id eq '{first['id']}'")
        self.assertEqual([r["id"] for r in same], [first["id"]])
        exposed = self.follow(s, f"/api/recommendations/{first['id']}/machineReferences")
        self.assertIn(server["id"], [m["id"] for m in exposed])
        self.assertEqual(len(exposed), first["exposedMachinesCount"])
        self.assertEqual(len(self.follow(s, f"/api/recommendations/{first['id']}/vulnerabilities")),
                         first["weaknesses"])
        self.assertEqual(self.get(s, f"/api/recommendations/{first['id']}/software")["value"][0]
                         ["name"], first["productName"])
        # Add-MdeMachineTag, then Get-MdeMachine -Tag (findbytag), then the machine group.
        r = s.post(f"{self.base}/api/machines/{server['id']}/tags",
                   json={"Value": "servers", "Action": "Add"}, timeout=60)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertIn("servers", r.json()["machineTags"])
        tagged = self.follow(s, "/api/machines/findbytag?tag=servers&useStartsWithFilter=False")
        self.assertEqual([m["id"] for m in tagged], [server["id"]])
        self.assertEqual(tagged[0]["rbacGroupName"], "Servers")
        self.assertEqual(tagged[0]["rbacGroupId"], 1)
        self.assertEqual(self.follow(s, "/api/machines/findbytag?tag=serv&useStartsWithFilter=True"),
                         tagged)
        r = s.post(f"{self.base}/api/machines/{server['id']}/tags",
                   json={"Value": "servers", "Action": "Remove"}, timeout=60)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(self.follow(s, "/api/machines/findbytag?tag=servers"), [])

    def test_psmde_gbdixg(self):
        s = self.session()
        machines = self.get(s, "/api/machines?$top=10000")["value"]
        name = machines[0]["computerDnsName"]
        # Its own spelling: $Filter, ComputerDNSName; and "Top=1" without the "$".
        found = self.get(s, f"/api/machines?$Filter=ComputerDNSName eq '{name}'&Top=1")["value"]
        self.assertIn(machines[0]["id"], [m["id"] for m in found])
        prefix = name[:3]
        started = self.get(s, f"/api/machines?$Filter=startswith(computerDnsName,'{prefix}')"
                              "&$top=5")["value"]
        self.assertTrue(started)
        self.assertTrue(all(m["computerDnsName"].lower().startswith(prefix.lower())
                            for m in started))
        # Get-MDEDevice's fields.
        for field in ("computerDnsName", "osPlatform", "version", "agentVersion", "osBuild",
                      "healthStatus", "exposureLevel", "riskScore", "machineTags",
                      "onboardingStatus", "lastIpAddress", "lastExternalIpAddress", "id",
                      "lastSeen", "isPotentialDuplication", "defenderAvStatus", "managedBy"):
            self.assertIn(field, machines[0])
        for v in self.get(s, f"/api/machines/{machines[0]['id']}/vulnerabilities")["value"]:
            for field in ("name", "description", "severity", "publicExploit"):
                self.assertIn(field, v)

    # ---- CIPP ----

    def test_cipp(self):
        s = self.session()
        rows = self.follow(s, "/api/machines/SoftwareVulnerabilitiesByMachine")
        self.assertTrue(rows)
        by_cve = {}
        for row in rows:
            by_cve.setdefault(row["cveId"], []).append(row)
            float(row["cvssScore"] or 0)  # [double]
            datetime.datetime.fromisoformat(row["firstSeenTimestamp"])  # [datetime]
            for field in ("deviceId", "deviceName", "osVersion", "osPlatform", "softwareVendor",
                          "softwareName", "exploitabilityLevel", "lastSeenTimestamp",
                          "recommendedSecurityUpdate", "recommendedSecurityUpdateId",
                          "recommendedSecurityUpdateUrl", "securityUpdateAvailable"):
                self.assertIn(field, row)
            self.assertIn(row["exploitabilityLevel"],
                          ("NoExploit", "ExploitIsPublic", "ExploitIsVerified", "ExploitIsInKit"))
        # The same rows as machinesVulnerabilities, device by device.
        count = self.get(s, "/api/vulnerabilities/machinesVulnerabilities?$top=0&$count=true")
        self.assertEqual(len(rows), count["@odata.count"])
        self.assertEqual(len({r["id"] for r in rows}), len(rows))

    def test_export_via_files(self):
        # Defender's sample for large organizations: the export's links, each file downloaded
        # without a token (the link is signed), gunzipped, one JSON object a line.
        s = self.session()
        for export, rows_api in (("SoftwareVulnerabilitiesExport", "SoftwareVulnerabilitiesByMachine"),
                                 ("SoftwareInventoryExport", "SoftwareInventoryByMachine")):
            body = self.get(s, f"/api/machines/{export}?sasValidHours=2")
            datetime.datetime.fromisoformat(body["generatedTime"].replace("Z", "+00:00"))
            self.assertTrue(body["exportFiles"])
            rows = []
            for url in body["exportFiles"]:
                r = requests.get(url, timeout=120)
                self.assertEqual(r.status_code, 200, r.text[:200])
                rows += [json.loads(line) for line in gzip.decompress(r.content).splitlines()]
            # The same rows as the JSON pages.
            paged = self.follow(s, f"/api/machines/{rows_api}?pageSize=200000")
            self.assertEqual([r["id"] for r in rows], [r["id"] for r in paged])
            # A link changed in any way is refused; so is one without its signature.
            url = body["exportFiles"][0]
            for bad in (url.replace("sig=", "sig=0"), url.replace("se=", "se=9"),
                        url.split("?")[0], url.replace("part-00000", "part-00001")):
                self.assertEqual(requests.get(bad, timeout=60).status_code, 403, bad)
        self.assertEqual(self.session().get(self.base + "/api/machines/SoftwareInventoryExport"
                                            "?sasValidHours=7", timeout=60).status_code, 400)

    # ---- kcatta-form's MDVM materialization ----

    def kcatta_fetch(self, s, path, params):
        """Its _fetch: the path with pageSize=1000 (and sinceTime), then each nextLink verbatim,
        which must keep the path."""
        records, url = [], self.base + path
        for _ in range(200):
            r = s.get(url, params=params, headers={"Accept": "application/json"}, timeout=60)
            self.assertEqual(r.status_code, 200, r.text[:300])
            payload = r.json()
            self.assertIsInstance(payload["value"], list)
            records += payload["value"]
            link = payload.get("@odata.nextLink")
            if link is None:
                return records
            self.assertEqual(requests.utils.urlparse(link).path, path)
            url, params = link, None
        self.fail("more than 200 pages")

    def kcatta_change(self, raw, mode, fallback):
        """Its normalize_mdvm_record: the record's key (id and group), action and time."""
        if not raw.get("cveId"):
            return None
        status = str(raw.get("status") or "").strip().lower()
        if mode == "delta":
            self.assertIn(status, ("new", "updated", "fixed"))
        stamp = raw.get("eventTimestamp") or raw.get("lastSeenTimestamp") or \
            raw.get("firstSeenTimestamp")
        observed = datetime.datetime.fromisoformat(stamp) if stamp else fallback
        scope = str(raw.get("rbacGroupId") or raw.get("rbacGroupName") or "")
        score = raw.get("cvssScore")
        self.assertTrue(score is None or 0 <= float(score) <= 10)
        return (f"{raw['id']}\0{scope}", "fixed" if mode == "delta" and status == "fixed"
                else "upsert", observed, raw)

    def test_kcatta_delta_keeps_a_copy_current(self):
        s = self.session(app="kcatta-form")
        baseline_path = "/api/machines/SoftwareVulnerabilitiesByMachine"
        delta_path = "/api/machines/SoftwareVulnerabilityChangesByMachine"
        started = datetime.datetime.now(datetime.timezone.utc)
        state = {}
        for key, _, _, raw in filter(None, (self.kcatta_change(r, "baseline", started) for r in
                                            self.kcatta_fetch(s, baseline_path,
                                                              {"pageSize": "1000"}))):
            state[key] = raw
        watermark = started
        # Meanwhile: a device comes, installs some of its updates, is renamed, then another is
        # written and removed.
        write = {"Authorization": s.headers["Authorization"]}
        device = {"id": "7" * 40, "computerDnsName": "kcatta-delta",
                  "osName": "Microsoft Windows 10 Enterprise", "osBuild": "10.0.19045.3803",
                  "osArchitecture": "x64", "installedKbs": []}
        gone = dict(device, id="8" * 40, computerDnsName="kcatta-gone")
        for batch in ([device, gone], [dict(device, installedKbs=["KB5034122", "KB5033918"])],
                      [dict(device, computerDnsName="kcatta-renamed",
                            installedKbs=["KB5034122", "KB5033918"])]):
            r = requests.post(self.base + "/api/kbgap/devices", json=batch, headers=write,
                              timeout=120)
            self.assertEqual(r.status_code, 200, r.text[:300])
        r = requests.delete(self.base + "/api/kbgap/devices/" + gone["id"], headers=write,
                            timeout=60)
        self.assertEqual(r.status_code, 204, r.text[:300])
        # Its delta: since the watermark less 6 hours, as isoformat() with Z.
        since = (watermark - datetime.timedelta(hours=6)).isoformat().replace("+00:00", "Z")
        changes = list(filter(None, (self.kcatta_change(r, "delta", started) for r in
                                     self.kcatta_fetch(s, delta_path,
                                                       {"pageSize": "1000", "sinceTime": since}))))
        self.assertTrue(changes)
        # Its apply_delta: one action per record and time (else "ambiguous"), then in time order,
        # upserts before fixes.
        actions = {}
        for key, action, observed, _ in changes:
            self.assertEqual(actions.setdefault((key, observed), action), action,
                             f"ambiguous same-time fixed and active records: {key}")
        for key, action, _, raw in sorted(changes, key=lambda c: (c[2], c[1] == "fixed")):
            if action == "fixed":
                state.pop(key, None)
            else:
                state[key] = raw
        # The copy is the server's export now, row for row (a row's own fields).
        now = {key: raw for key, _, _, raw in filter(None, (
            self.kcatta_change(r, "baseline", started)
            for r in self.kcatta_fetch(s, baseline_path, {"pageSize": "1000"})))}
        own = ("id", "cveId", "softwareName", "softwareVersion", "cvssScore",
               "vulnerabilitySeverityLevel", "recommendedSecurityUpdateId", "exploitabilityLevel")
        self.assertEqual(set(state), set(now))
        for key, raw in now.items():
            self.assertEqual({f: state[key][f] for f in own}, {f: raw[f] for f in own})
        # What it went through: the new device's rows New, some Fixed by its updates, the
        # removed device's Fixed and no longer onboarded; none Updated (the catalog did not move).
        mine = [c[3] for c in changes if c[3]["deviceId"] in (device["id"], gone["id"])]
        self.assertTrue(any(c["status"] == "New" and c["deviceId"] == device["id"] for c in mine))
        self.assertTrue(any(c["status"] == "Fixed" and c["deviceId"] == device["id"] for c in mine))
        removed = [c for c in mine if c["deviceId"] == gone["id"] and c["status"] == "Fixed"]
        self.assertTrue(removed)
        self.assertTrue(all(c["isOnboarded"] is False and c["deviceName"] == "kcatta-gone"
                            for c in removed))
        self.assertFalse([c for c in mine if c["status"] == "Updated"])
        r = requests.delete(self.base + "/api/kbgap/devices/" + device["id"], headers=write,
                            timeout=60)
        self.assertEqual(r.status_code, 204)

    # ---- The Azure Sentinel playbook ----

    # Its ParseJson schemas as published (tests/data/clients/, with their source and license).
    with open(os.path.join(SOURCE, "tests", "data", "clients",
                           "sentinel-get-mdatp-vulnerabilities.json")) as f:
        SENTINEL = json.load(f)

    def validate(self, value, schema, where="$"):
        """What Logic Apps' ParseJson checks: type (one or a list), required, properties, items."""
        kinds = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
                 "array": list, "object": dict, "null": type(None)}
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            fits = any(isinstance(value, kinds[n]) and
                       not (isinstance(value, bool) and n in ("integer", "number"))
                       for n in names)
            self.assertTrue(fits, f"{where}: {value!r} is not {names}")
        if isinstance(value, dict):
            for name in schema.get("required", []):
                self.assertIn(name, value, f"{where}: {name} is required")
            for name, sub in schema.get("properties", {}).items():
                key = name.replace("@@", "@")
                if key in value:
                    self.validate(value[key], sub, f"{where}.{key}")
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                self.validate(item, schema["items"], f"{where}[{i}]")

    def test_sentinel_playbook(self):
        # The older playbook: its own token for https://api.securitycenter.windows.com, every
        # machine (no paging), then the vulnerabilities of those a host name matches.
        s = self.session("https://api.securitycenter.windows.com")
        listed = self.get(s, "/api/machines")
        self.validate(listed, self.SENTINEL["machines"])
        machines = listed["value"]
        host = machines[0]["computerDnsName"]
        checked = 0
        matching = [m for m in machines if host.lower() in m["computerDnsName"].lower()]
        for m in matching[:5]:  # within the vulnerabilities' 50 calls a minute
            body = self.get(s, f"/api/machines/{m['id']}/vulnerabilities")
            self.validate(body, self.SENTINEL["vulnerabilities"])
            checked += len(body["value"])
        self.assertGreater(checked, 0)
        # The current one: the Logic Apps connector's audience and a filter on the full name.
        s = self.session("https://securitycenter.onmicrosoft.com/windowsatpservice")
        found = self.get(s, f"/api/machines?$filter=computerDnsName eq '{host}'")["value"]
        self.assertTrue(found)
        for v in self.get(s, f"/api/machines/{found[0]['id']}/vulnerabilities")["value"]:
            for field in ("id", "cvssV3", "description", "name", "severity"):
                self.assertIsNotNone(v[field])
        # Another audience is refused.
        other = self.session("https://graph.microsoft.com")
        self.assertEqual(other.get(self.base + "/api/machines", timeout=60).status_code, 401)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
