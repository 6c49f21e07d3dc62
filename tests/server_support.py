"""Starting and stopping the real kbgap server for the HTTP tests (api_test, abuse_test,
crash_test)."""
import os
import signal
import subprocess
import time


def start(kbgap, data, work, *args, env=None, stderr=subprocess.PIPE):
    """Starts `kbgap serve` on a free loopback port, without waiting; (process, port file)."""
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
