"""Runs the vendors' own JavaScript clients (pinned in ``tests/clients/package-lock.json``) against a live server.

A test writes what the client should do as a small script under ``tests/clients/`` (TypeScript, run with
``tsx``, so that ``@raystack/proton``'s TypeScript descriptors load as published). The script reads its
inputs from the environment variable ``METERBOOK_CLIENT_INPUT`` (JSON) and prints one JSON document on
stdout: what the client returned, or the error it raised. ``scripts/bootstrap`` installs the packages with
``npm ci``; without Node the tests are skipped, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
TSX = HERE / "node_modules" / ".bin" / "tsx"


def require_node() -> None:
    """Skip the test (fail it in CI) when Node or the pinned clients are not installed."""
    reason = None
    if shutil.which("node") is None:
        reason = "Node.js is not installed (Debian: apt-get install nodejs npm)"
    elif not TSX.exists():
        reason = "the vendors' JavaScript clients are not installed (run: npm ci --prefix tests/clients)"
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must test every dialect through its vendor's client", pytrace=False)
    pytest.skip(reason)


def run_client(script: str, **inputs: Any) -> Any:
    """Run ``tests/clients/<script>`` with ``inputs``; the JSON it printed. A script that fails fails the test."""
    require_node()
    environment = {name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")}
    environment["METERBOOK_CLIENT_INPUT"] = json.dumps(inputs)
    environment["NODE_NO_WARNINGS"] = "1"
    completed = subprocess.run(
        [str(TSX), str(HERE / script)],
        cwd=HERE,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, f"{script} exited {completed.returncode}:\n{completed.stderr}\n{completed.stdout}"
    return json.loads(completed.stdout)
