"""Starting and stopping the real kbgap server for the HTTP tests (api_test, abuse_test,
crash_test)."""
import hashlib
import os
import signal
import subprocess
import time


def storage_env(data, env=None):
    """The environment for a kbgap command on data directory `data`. With
    KBGAP_TEST_BACKEND=postgres (ctest's *_postgres tests), each data directory gets a database
    of its own on the test server (KBGAP_TEST_POSTGRES names the file with its URL), named by the
    directory, and KBGAP_STORAGE_URL points there; otherwise the SQLite file of the directory."""
    env = dict(os.environ if env is None else env)
    if os.environ.get("KBGAP_TEST_BACKEND") != "postgres":
        return env
    with open(os.environ["KBGAP_TEST_POSTGRES"]) as f:
        admin = f.read().strip()
    name = "kbgap_http_" + hashlib.sha256(os.path.abspath(data).encode()).hexdigest()[:16]
    marker = os.path.abspath(data) + ".postgres"
    if not os.path.exists(marker):
        subprocess.run(["psql", "-q", admin, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                        "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        with open(marker, "w") as f:
            f.write(name)
    env["KBGAP_STORAGE_URL"] = admin.rsplit("/", 1)[0] + "/" + name
    return env


def on_postgres():
    return os.environ.get("KBGAP_TEST_BACKEND") == "postgres"


def start(kbgap, data, work, *args, env=None, stderr=subprocess.PIPE):
    """Starts `kbgap serve` on a free loopback port, without waiting; (process, port file)."""
    env = storage_env(data, env)
    port_file = os.path.join(work, "port")
    if os.path.exists(port_file):
        os.remove(port_file)
    process = subprocess.Popen(
        [kbgap, "--data", data, "serve", "--listen", "127.0.0.1:0", "--port-file", port_file,
         *args], env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    return process, port_file


def wait_port(process, port_file, limit=300):
    """The port, once the server listens (it may import the catalog first)."""
    deadline = time.time() + limit
    while not os.path.exists(port_file):
        if process.poll() is not None or time.time() > deadline:
            said = process.stderr.read() if process.stderr and process.poll() is not None else ""
            raise RuntimeError(f"kbgap serve did not start (status {process.poll()}): {said}")
        time.sleep(0.05)
    with open(port_file) as f:
        return int(f.read())


def serve(kbgap, data, work, *args, env=None):
    """Starts `kbgap serve` and waits until it listens; (process, port)."""
    process, port_file = start(kbgap, data, work, *args, env=env)
    return process, wait_port(process, port_file)


def stop(process, timeout=60):
    """SIGTERM, then (exit status, what it wrote to stderr)."""
    process.send_signal(signal.SIGTERM)
    status = process.wait(timeout=timeout)
    said = ""
    if process.stderr:
        said = process.stderr.read()
        process.stderr.close()
    return status, said
