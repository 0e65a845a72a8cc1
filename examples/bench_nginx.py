"""The benchmarks' nginx: started from a tempdir holding its nginx.conf, stopped and removed.

Used by bench-h2.py and bench-tls.py (each writes its own nginx.conf into the tempdir).
"""
import os
import shutil
import signal
import socket
import subprocess
import time


def start(directory, port, who):
    """Starts nginx on DIRECTORY/nginx.conf and waits until PORT accepts (WHO names the caller
    in the error when it does not)."""
    subprocess.run(["nginx", "-p", directory, "-c", f"{directory}/nginx.conf",
                    "-e", f"{directory}/error.log"], check=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{who}: nginx did not start")


def stop(directory):
    """Stops the nginx whose pid file is in DIRECTORY, then removes DIRECTORY."""
    try:
        with open(f"{directory}/nginx.pid") as f:
            os.kill(int(f.read()), signal.SIGQUIT)
    except (OSError, ValueError):
        pass
    time.sleep(0.3)
    shutil.rmtree(directory, ignore_errors=True)
