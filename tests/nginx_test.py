"""Two `kbgap serve` on one PostgreSQL behind nginx as the load balancer (docs/scaling.md), over
real HTTP: writes through one server are read through the other and through nginx; then one
server is killed (SIGKILL) while clients read and write through nginx, and no client sees an error
other than ones it retried, and nothing acknowledged is lost.

Usage: nginx_test.py KBGAP SOURCE_DIR. It starts PostgreSQL (scripts/pg_server.sh) and nginx
(Debian's nginx-light) of its own."""
import os
import shutil
import signal
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
PG_SERVER = os.path.join(SOURCE, "scripts", "pg_server.sh")
RETRIED = (502, 503, 504)  # what a client of a load-balanced service retries


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def device(n):
    return {"id": f"{n:040x}", "computerDnsName": f"lb{n}.example.com",
            "osName": "Microsoft Windows 10 Enterprise", "osBuild": "10.0.19045.3803",
            "osArchitecture": "x64", "installedKbs": ["KB5033372"]}


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  client_max_body_size 64m;
  upstream kbgap {{
    server 127.0.0.1:{a} max_fails=1 fail_timeout=5s;
    server 127.0.0.1:{b} max_fails=1 fail_timeout=5s;
    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://kbgap;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host:$server_port;
      # Reads go to the other server when one fails; writes are not re-sent by nginx (the client
      # decides: a batch is idempotent, written again it replaces itself).
      proxy_next_upstream error timeout http_502 http_503;
      proxy_connect_timeout 2s;
    }}
  }}
}}
"""


class BehindNginx(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="kbgap-nginx-")
        os.chmod(cls.dir, 0o755)
        cls.pg = os.path.join(cls.dir, "pg")
        subprocess.run([PG_SERVER, "start", cls.pg], check=True)
        with open(os.path.join(cls.pg, "url")) as f:
            url = f.read().strip()
        # No rate limit: the load below is one application's, far over Defender's 100 a minute.
        cls.env = dict(os.environ, KBGAP_STORAGE_URL=url, KBGAP_CATALOG_SYNC_INTERVAL="0",
                       KBGAP_RATE_LIMITS_MACHINES_PER_MINUTE="0",
                       KBGAP_RATE_LIMITS_MACHINES_PER_HOUR="0")
        cls.servers, cls.ports = {}, {}
        for name in ("a", "b"):
            data = os.path.join(cls.dir, name)
            os.makedirs(data)
            if name == "b":  # one signing key for both
                shutil.copytree(os.path.join(cls.dir, "a", "keys"), os.path.join(data, "keys"))
            work = os.path.join(cls.dir, f"work-{name}")
            os.makedirs(work)
            cls.servers[name], cls.ports[name] = server_support.serve(
                KBGAP, data, work, "--quiet", env=cls.env)
        token = subprocess.run(
            [KBGAP, "--data", os.path.join(cls.dir, "a"), "token", "--role",
             "Machine.ReadWrite.All", "--role", "Machine.Read.All"],
            env=cls.env, capture_output=True, text=True, check=True)
        cls.auth = {"Authorization": f"Bearer {token.stdout.strip()}"}
        prefix = os.path.join(cls.dir, "nginx")
        os.makedirs(prefix)
        cls.lb_port = free_port()
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(prefix=prefix, a=cls.ports["a"], b=cls.ports["b"],
                                      port=cls.lb_port))
        cls.nginx = subprocess.Popen(["nginx", "-c", conf, "-p", prefix],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{cls.lb_port}/healthz", timeout=5)
                break
            except requests.ConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        cls.nginx.terminate()
        cls.nginx.wait()
        for p in cls.servers.values():
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stderr:
                p.stderr.close()
        subprocess.run([PG_SERVER, "stop", cls.pg])
        shutil.rmtree(cls.dir, ignore_errors=True)

    def url(self, where):
        port = self.lb_port if where == "lb" else self.ports[where]
        return f"http://127.0.0.1:{port}"

    def ids(self, where):
        r = requests.get(self.url(where) + "/api/machines", headers=self.auth, timeout=60)
        self.assertEqual(r.status_code, 200, r.text)
        return {m["id"] for m in r.json()["value"]}

    def eventually(self, where, ids, limit=5):
        deadline = time.time() + limit
        while not set(ids) <= self.ids(where):
            if time.time() > deadline:
                self.fail(f"{where} did not show {len(ids)} devices within {limit} s")
            time.sleep(0.02)

    def test_1_writes_through_one_read_through_the_other_and_through_nginx(self):
        batch = [device(100 + i) for i in range(5)]
        r = requests.post(self.url("a") + "/api/kbgap/devices", json=batch, headers=self.auth,
                          timeout=60)
        self.assertEqual(r.status_code, 200, r.text)
        ids = [d["id"] for d in batch]
        self.eventually("b", ids, limit=1)
        self.eventually("lb", ids, limit=1)
        r = requests.post(self.url("lb") + "/api/kbgap/devices", json=[device(200)],
                          headers=self.auth, timeout=60)
        self.assertEqual(r.status_code, 200, r.text)
        for where in ("a", "b"):
            self.eventually(where, [device(200)["id"]], limit=1)

    def test_2_a_server_killed_under_load_costs_clients_only_retries(self):
        stop = threading.Event()
        acknowledged, failures, retries, reads = [], [], [0], [0]
        lock = threading.Lock()

        def write_loop(first):
            n = first
            session = requests.Session()
            while not stop.is_set():
                batch = [device(n + k) for k in range(4)]
                n += 4
                for _attempt in range(20):
                    try:
                        r = session.post(self.url("lb") + "/api/kbgap/devices", json=batch,
                                         headers=self.auth, timeout=30)
                    except requests.RequestException:
                        with lock:
                            retries[0] += 1
                        continue
                    if r.status_code in RETRIED:
                        with lock:
                            retries[0] += 1
                        time.sleep(0.1)
                        continue
                    with lock:
                        if r.status_code == 200:
                            acknowledged.extend(d["id"] for d in batch)
                        else:
                            failures.append(("POST", r.status_code, r.text[:200]))
                    break

        def read_loop():
            session = requests.Session()
            while not stop.is_set():
                try:
                    r = session.get(self.url("lb") + "/api/machines?$top=50", headers=self.auth,
                                    timeout=30)
                except requests.RequestException as e:
                    with lock:
                        failures.append(("GET", "exception", str(e)[:200]))
                    continue
                with lock:
                    if r.status_code == 200:
                        reads[0] += 1
                    else:
                        failures.append(("GET", r.status_code, r.text[:200]))

        threads = [threading.Thread(target=write_loop, args=(10000 * (i + 1),)) for i in range(2)]
        threads += [threading.Thread(target=read_loop) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(2)
        self.servers["b"].send_signal(signal.SIGKILL)
        self.servers["b"].wait()
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join()
        print(f"through nginx: {reads[0]} reads, {len(acknowledged) // 4} batches acknowledged, "
              f"{retries[0]} retried writes, {len(failures)} failures", file=sys.stderr)
        self.assertEqual(failures, [])
        self.assertGreater(reads[0], 0)
        self.assertGreater(len(acknowledged), 0)
        # Nothing acknowledged is lost: all of it through the surviving server and through nginx.
        self.eventually("a", acknowledged)
        self.eventually("lb", acknowledged)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
