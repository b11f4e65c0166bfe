"""Real ``meterbook serve`` processes for the reliability tests: start, wait until healthy, kill, stop.

A server runs in a session (and process group) of its own, so that a signal sent to the group reaches
uvicorn's workers too, and no worker outlives the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

MEMBER_BIN = Path(sys.executable).parent / "meterbook"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_healthy(base_url: str, alive: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert alive(), "the server stopped before it answered /healthz"
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{base_url} did not answer /healthz within {timeout} s")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """End the server process and its workers: they share the session (and group) we started it in."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
    # Workers may outlive a supervisor that was killed; the group id is the supervisor's pid.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def group_members(group_id: int) -> list[int]:
    """The live processes of a process group (Linux: read from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if os.getpgid(int(entry.name)) == group_id and "Z" not in _state(entry):
                    members.append(int(entry.name))
    return members


def _state(entry: Path) -> str:
    return entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0]


def serve_environment(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a server on ``database_url``: the product's defaults, whatever this shell has set."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("METERBOOK_")}
    env.update({"METERBOOK_DATABASE_URL": database_url, "METERBOOK_LOG_LEVEL": "warning"})
    env.update(extra)
    return env


class ServeProcess:
    """``meterbook serve`` on one port and database, which can be killed and started again any number of times."""

    def __init__(self, database_url: str, log_path: Path, *, workers: int = 1, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = serve_environment(database_url, **env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60.0) -> None:
        assert self.process is None or self.process.poll() is not None, "the server is running already"
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [str(MEMBER_BIN), "serve", "--workers", str(self.workers), "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        process = self.process
        try:
            wait_until_healthy(self.base_url, lambda: process.poll() is None, timeout=timeout)
        except BaseException:
            print(self.log_path.read_text(errors="replace")[-5000:])
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL to every process of the server at once: no handler runs, nothing is flushed or rolled back."""
        assert self.process is not None
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)
        deadline = time.monotonic() + 15
        while group_members(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not group_members(self.process.pid), "a server process survived SIGKILL"

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
