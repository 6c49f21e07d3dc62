#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (fuzz/corpus/<target>/) from kbgap's real data.

Usage: fuzz/make_corpus.py <build dir>   (a normal build: its kbgap and tests/kbgap_token_tool)

- cvrf: real MSRC months (data/catalog), each cut to a few vulnerabilities with KB fixes and
  the products they name, so that a seed is tens of kilobytes and not megabytes.
- inventory_text: the real systeminfo and wmic qfe outputs (data/inventories), one also as
  UTF-16LE with a byte-order mark, as `systeminfo > file` writes it from PowerShell.
- kbgap_json: those systeminfo devices as kbgap stores them (`kbgap devices list --format json`).
- osquery_json: the same devices written as osquery's tables.
- archive: small .tar.zst archives of those cut months (bundled layout, GNU and pax tar, empty).
- odata_filter, request_target, jwt, jwks: written by hand from SPEC.md's examples and the
  tests (fuzz/seeds/); tokens minted with the fuzz key (fuzz/fuzz-key.pem): valid, expired,
  not yet valid, wrong audience or issuer, no role, and the forged kinds (alg none, HS256).
Re-running it rewrites the seeds and leaves what the fuzzers added (files named by hash).
"""
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
MONTHS = ["2016-Apr", "2017-Nov", "2019-Jun", "2021-Feb", "2022-Oct", "2024-Jan", "2026-May", "Oct-OOB"]


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def cut_cvrf(xml, keep=2):
    """The month with its first document note, its `keep` smallest vulnerabilities fixed by a KB,
    the smallest other one, and only the products these name."""
    vulns = re.findall(r"  <vuln:Vulnerability .*?</vuln:Vulnerability>\n", xml, re.S)
    with_kb = [v for v in vulns if re.search(r"<vuln:Description>\d{6,7}</vuln:Description>", v)]
    others = [v for v in vulns if v not in with_kb]
    chosen = sorted(with_kb, key=len)[:keep] + sorted(others, key=len)[:1]
    xml = re.sub(r"(<cvrf:DocumentNotes>\s*<cvrf:Note .*?</cvrf:Note>).*?(\s*</cvrf:DocumentNotes>)",
                 r"\1\2", xml, count=1, flags=re.S)
    ids = set()
    for v in chosen:
        ids.update(re.findall(r"<vuln:ProductID>(\d+(?:-\d+)?)</vuln:ProductID>", v))
    head = xml[: xml.index("  <vuln:Vulnerability ")]
    lines = []
    for line in head.splitlines(keepends=True):
        m = re.search(r'<prod:FullProductName ProductID="([^"]+)"', line)
        if m and m.group(1) not in ids:
            continue
        lines.append(line)
    return "".join(lines) + "".join(chosen) + "</cvrf:cvrfdoc>\n"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_seeds(token_tool):
    key = os.path.join(ROOT, "fuzz", "fuzz-key.pem")
    now = 1795000000  # fuzz_jwt.cpp's fixed time
    good = {"iss": "kbgap", "aud": "https://api.securitycenter.microsoft.com", "appid": "fuzz",
            "tid": "t", "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
            "roles": ["Machine.Read.All", "Vulnerability.Read.All"], "scp": "Machine.Read"}
    variants = {
        "valid": good,
        "expired": dict(good, exp=now - 3600),
        "not-yet-valid": dict(good, nbf=now + 3600),
        "wrong-aud": dict(good, aud="api://other"),
        "aud-list": dict(good, aud=["api://other", good["aud"]]),
        "wrong-iss": dict(good, iss="https://sts.windows.net/x/"),
        "no-role": {k: v for k, v in good.items() if k not in ("roles", "scp")},
    }
    for name, claims in variants.items():
        token = subprocess.run([token_tool, key, json.dumps(claims)], check=True,
                               capture_output=True, text=True).stdout.strip()
        write("jwt", name, token)
    header, payload, _ = token.split(".")
    write("jwt", "alg-none", b64url(b'{"alg":"none","typ":"JWT"}') + "." + payload + ".")
    hs_header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    with open(key, "rb") as f:
        secret = f.read()
    mac = hmac.new(secret, (hs_header + "." + payload).encode(), hashlib.sha256).digest()
    write("jwt", "hs256", hs_header + "." + payload + "." + b64url(mac))
    jwks = subprocess.run([token_tool, key, "--jwks"], check=True, capture_output=True,
                          text=True).stdout.strip()
    write("jwks", "fuzz-key", jwks)


def archive_seeds(cut_documents):
    """Small .tar.zst archives as `catalog import` reads them: cut CVRF months in the bundled
    layout, a directory entry, an empty archive."""
    import io
    import tarfile

    def tar_zst(members, fmt=tarfile.PAX_FORMAT):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
            for name, content in members:
                info = tarfile.TarInfo(name)
                if content is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
        return subprocess.run(["zstd", "-q", "-c"], input=raw.getvalue(), check=True,
                              capture_output=True).stdout

    docs = [(f"cvrf/cvrfDocument-{m}.xml", x.encode()) for m, x in cut_documents[:2]]
    write("archive", "two-months.tar.zst", tar_zst([("cvrf", None)] + docs))
    write("archive", "gnu.tar.zst", tar_zst(docs[:1], tarfile.GNU_FORMAT))
    write("archive", "empty.tar.zst", tar_zst([]))


def wesng_seeds():
    """WES-NG's CSV as `catalog import definitions.zip` reads it: slices of the bundled extract's
    real rows (the header, an Internet Explorer day, a day with swapped columns, .NET rows), and a
    title holding a line end."""
    import zipfile
    with zipfile.ZipFile(os.path.join(ROOT, "data", "catalog", "wesng-before-2016.zip")) as z:
        member = next(n for n in z.namelist() if n.startswith("CVEs_"))
        records = z.read(member).split(b"\r\n")
    header, rows = records[0], [r for r in records[1:] if r]

    def csv(selected):
        return b"".join(r + b"\r\n" for r in [header] + selected)

    write("wesng", "first-rows.csv", csv(rows[:40]))
    write("wesng", "internet-explorer.csv", csv([r for r in rows if b"Internet Explorer" in r][:40]))
    write("wesng", "dotnet.csv", csv([r for r in rows if b".NET Framework" in r][:40]))
    write("wesng", "swapped.csv",
          csv([r for r in rows if r.split(b'","')[5].startswith(b"Windows 7")][:20]))
    write("wesng", "no-cve.csv", csv([r for r in rows if r.split(b'","')[1] == b""][:5]))
    lf = rows[0].split(b'","')
    lf[3] = lf[3] + b"\nsecond line"
    write("wesng", "line-end-in-title.csv", csv([b'","'.join(lf)] + rows[1:3]))


def main():
    build = sys.argv[1]
    kbgap = os.path.join(build, "kbgap")
    jwt_seeds(os.path.join(build, "tests", "kbgap_token_tool"))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(f"zstd -dc {ROOT}/data/catalog/cvrf-2016-2026.tar.zst | tar -x -C {tmp}",
                       shell=True, check=True)
        cut = []
        for month in MONTHS:
            with open(os.path.join(tmp, "cvrf", f"cvrfDocument-{month}.xml"), encoding="utf-8-sig") as f:
                cut.append((month, cut_cvrf(f.read())))
                write("cvrf", month + ".xml", cut[-1][1])
        archive_seeds(cut)
    wesng_seeds()

    inv = os.path.join(ROOT, "data", "inventories")
    systeminfo = []
    for name in sorted(os.listdir(inv)):
        if not name.endswith(".txt") or name == "LICENSE.txt":
            continue
        with open(os.path.join(inv, name), "rb") as f:
            data = f.read()
        write("inventory_text", name, data)
        if name.endswith("_systeminfo.txt"):
            systeminfo.append(os.path.join(inv, name))
    with open(systeminfo[0], "rb") as f:
        write("inventory_text", "utf16le.txt", b"\xff\xfe" + f.read().decode("utf-8", "replace").encode("utf-16-le"))

    with tempfile.TemporaryDirectory() as data_dir:
        subprocess.run([kbgap, "--data", data_dir, "devices", "import", *systeminfo], check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ, CI="true"))
        devices = json.loads(subprocess.run([kbgap, "--data", data_dir, "devices", "list", "--format", "json"],
                                            check=True, capture_output=True).stdout)
    write("kbgap_json", "fleet.json", json.dumps({"devices": devices[:8]}, indent=1))
    for d in devices:
        write("kbgap_json", d["computerDnsName"] + "-" + d["id"][:8] + ".json", json.dumps(d))
        major_minor_build = d["osBuild"].split(".")
        osq = {
            "os_version": [{"name": d["osName"], "version": ".".join(major_minor_build[:3]),
                            "arch": {"x64": "64-bit", "x86": "32-bit"}.get(d["osArchitecture"], "ARM 64-bit"),
                            **({"revision": major_minor_build[3]} if len(major_minor_build) > 3 else {})}],
            "system_info": [{"hostname": d["computerDnsName"], "uuid": d["id"][:8].upper() + "-0000-0000-0000-000000000000"}],
            "patches": [{"hotfix_id": kb} for kb in d["installedKbs"]],
            "windows_update_history": [{"title": f"Security Update ({kb})", "result_code": "2"} for kb in d["installedKbs"][:2]],
            "programs": [{"name": s["name"], "version": s["version"], "publisher": s["vendor"]} for s in d["software"]],
        }
        write("osquery_json", d["computerDnsName"] + "-" + d["id"][:8] + ".json", json.dumps(osq))

    seeds = os.path.join(ROOT, "fuzz", "seeds")
    for target in sorted(os.listdir(seeds)):
        with open(os.path.join(seeds, target), encoding="utf-8") as f:
            for n, line in enumerate(l for l in f.read().splitlines() if l and not l.startswith("#")):
                write(os.path.splitext(target)[0], f"{n:03}", line)


if __name__ == "__main__":
    main()
