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
