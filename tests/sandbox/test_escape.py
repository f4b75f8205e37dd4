"""Hostile jobs that try to reach outside: host files, secrets, the network, the system. All blocked."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantfleet.sandbox.isolation import Bind

TRY = """
import sys
def attempt(fn):
    try:
        fn()
        print("REACHED")
    except Exception as exc:
        print("blocked", type(exc).__name__)
"""


def test_host_files_are_out_of_reach(run_job, tmp_path: Path) -> None:
    other = tmp_path / "other-job"  # another job's folder, world-readable on the host
    other.mkdir()
    (other / "strategy.py").write_text("SECRET = 1")
    os.chmod(tmp_path, 0o755)
    job = run_job(
        TRY
        + """
attempt(lambda: open("/etc/shadow").read())
attempt(lambda: print(os.listdir("/root/.ssh")))
attempt(lambda: open(sys.argv[1]).read())
import os
print("root holds", sorted(os.listdir("/root")))
""",
        args=(str(other / "strategy.py"),),
    )
    assert "REACHED" not in job.text, job.text
    assert job.text.count("blocked") == 3, job.text
    assert "root holds ['.pyenv']" in job.text or "root holds []" in job.text


@pytest.fixture
def decoy() -> Iterator[str]:
    """Return a token held only in the environment of a host process (as the worker's secrets are)."""
    token = secrets.token_hex(12)
    proc = subprocess.Popen(["sleep", "60"], env={"AWS_SECRET_ACCESS_KEY": token})
    yield token
    proc.kill()
    proc.wait()


def test_no_secret_reaches_the_environment(run_job, decoy: str) -> None:
    worker_env = {"AWS_SECRET_ACCESS_KEY": decoy, "QUANTFLEET_DATABASE_URL": f"postgresql://u:{decoy}@db", "TZ": "UTC"}
    job = run_job(
        """
        import os, sys
        token = sys.argv[1]
        hits = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    if token.encode() in open(f"/proc/{pid}/environ", "rb").read():
                        hits.append(pid)
                except OSError:
                    pass
        print("hits", hits)
        print("env", token in repr(os.environ), sorted(os.environ))
        print("init", open("/proc/1/environ", "rb").read())
        """,
        args=(decoy,),
        env=worker_env,
    )
    assert "hits []" in job.text
    assert "env False" in job.text
    assert "AWS_SECRET_ACCESS_KEY" not in job.text
    assert "QUANTFLEET_DATABASE" not in job.text
    assert "'TZ'" in job.text  # whitelisted names pass
    assert "init b''" in job.text


@pytest.fixture
def host_listeners() -> Iterator[dict[str, object]]:
    """Start a TCP, a UDP and an abstract Unix listener on the host; record anything they receive."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    name = f"quantfleet-test-{secrets.token_hex(6)}"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind("\0" + name)
    unix.listen()
    received: list[str] = []
    stop = threading.Event()

    def listen() -> None:
        for server in (tcp, udp, unix):
            server.settimeout(0.05)
        while not stop.is_set():
            for server, kind in ((tcp, "tcp"), (unix, "unix")):
                try:
                    server.accept()[0].close()
                    received.append(kind)
                except OSError:
                    pass
            try:
                udp.recv(100)
                received.append("udp")
            except OSError:
                pass

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    yield {"tcp": tcp.getsockname()[1], "udp": udp.getsockname()[1], "unix": name, "received": received}
    stop.set()
    thread.join(2)
    for server in (tcp, udp, unix):
        server.close()


def test_every_kind_of_network_access_is_blocked(run_job, host_listeners: dict[str, object]) -> None:
    job = run_job(
        TRY
        + """
import socket
tcp, udp, unix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
attempt(lambda: socket.create_connection(("127.0.0.1", tcp), timeout=2))
def send_udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("127.0.0.1", udp))
    s.sendto(b"x", ("8.8.8.8", 53))
attempt(send_udp)
attempt(lambda: socket.getaddrinfo("example.com", 443))
attempt(lambda: socket.create_connection(("::1", tcp), timeout=2))
def abstract():
    s = socket.socket(socket.AF_UNIX)
    s.connect("\\0" + unix)
attempt(abstract)
# (not socket.if_nameindex(): it asks netlink, which seccomp refuses)
print("interfaces", [line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]])
""",
        args=(str(host_listeners["tcp"]), str(host_listeners["udp"]), str(host_listeners["unix"])),
    )
    # TCP, UDP (the send to the internet; loopback UDP lands in the sandbox's own lo), DNS, IPv6, abstract socket
    assert "REACHED" not in job.text, job.text
    assert job.text.count("blocked") == 5, job.text
    assert "interfaces ['lo']" in job.text
    assert host_listeners["received"] == []  # nothing reached the host's listeners


def test_writes_outside_work_are_refused(run_job, tmp_path: Path) -> None:
    data = tmp_path / "snapshot"
    data.mkdir()
    (data / "bars.parquet").write_text("pinned")
    job = run_job(
        TRY
        + """
import os
for path in ["/usr/evil", "/etc/evil", "/evil", "/run/quantfleet/data/bars.parquet", sys.executable + "-evil"]:
    attempt(lambda: open(path, "w").write("x"))
attempt(lambda: os.mkdir("/root/.pyenv/evil"))
""",
        binds=(Bind(data, Path("/run/quantfleet/data")),),
    )
    assert "REACHED" not in job.text, job.text
    assert job.text.count("blocked") == 6, job.text
    assert (data / "bars.parquet").read_text() == "pinned"
