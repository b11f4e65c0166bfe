"""Issue 16: a mistake in configuration or on the command line is told in one message, never a traceback.

These run the installed ``meterbook`` program as a person would, with the environment variables they would
set, and read what it prints.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rich.progress import Progress

from meterbook.cli import _RateColumn

PROGRAM = [sys.executable, "-m", "meterbook"]


def run(tmp_path: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("METERBOOK_")}
    env.setdefault("METERBOOK_DATABASE_URL", f"sqlite:///{tmp_path / 'meterbook.db'}")
    env.update(environment)
    env["COLUMNS"] = "200"  # one line per message, as a wide terminal shows it
    return subprocess.run(
        [*PROGRAM, *arguments], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_told(result: subprocess.CompletedProcess[str], *words: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) <= 3, output
    for word in words:
        assert word in output, output
    return output


class TestConfiguration:
    def test_an_unreachable_postgresql_says_where_and_what_to_check(self, tmp_path: Path) -> None:
        url = f"postgresql+psycopg://meterbook:hunter2@127.0.0.1:{closed_port()}/meterbook"
        output = assert_told(
            run(tmp_path, "migrate", METERBOOK_DATABASE_URL=url), "Cannot reach the database", "PostgreSQL running"
        )
        assert "hunter2" not in output  # the password is never printed

    def test_another_kind_of_database_names_the_two_it_takes(self, tmp_path: Path) -> None:
        assert_told(
            run(tmp_path, "migrate", METERBOOK_DATABASE_URL="mysql://x/y"),
            "METERBOOK_DATABASE_URL is not valid",
            "sqlite:///meterbook.db",
        )

    def test_a_sqlite_file_in_a_missing_folder(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'm.db'}"
        assert_told(run(tmp_path, "migrate", METERBOOK_DATABASE_URL=url), "Cannot open the SQLite database", "folder")

    @pytest.mark.parametrize(
        ("variable", "value", "example"),
        [
            ("METERBOOK_PORT", "abc", "8000"),
            ("METERBOOK_PORT", "70000", "8000"),
            ("METERBOOK_SQLITE_SYNCHRONOUS", "OFF", "FULL"),
            ("METERBOOK_SESSION_SECRET", "short", "secrets.token_urlsafe"),
        ],
    )
    def test_a_setting_of_the_wrong_shape_is_named_with_an_example(
        self, tmp_path: Path, variable: str, value: str, example: str
    ) -> None:
        output = assert_told(run(tmp_path, "migrate", **{variable: value}), f"{variable} is not valid", example)
        if variable == "METERBOOK_SESSION_SECRET":
            assert value not in output  # a secret, even a bad one, is not echoed

    def test_serve_is_told_before_it_starts(self, tmp_path: Path) -> None:
        assert_told(run(tmp_path, "serve", METERBOOK_PORT="abc"), "METERBOOK_PORT is not valid")


class TestCommands:
    def test_billing_a_month_that_has_not_ended_names_the_option(self, tmp_path: Path) -> None:
        output = assert_told(run(tmp_path, "bill", "--month", "2999-01"), "--month: 2999-01 has not ended")
        assert "body." not in output

    def test_a_single_step_shows_no_rate_of_something_else(self) -> None:
        """verify counts events, then checks balances and invoices in one step each: no 'events/s' there."""
        column = _RateColumn("events")
        with Progress(column) as progress:
            events = progress.add_task("verifying aggregates", total=10)
            progress.advance(events, 5)
            invoices = progress.add_task("verifying invoices", total=1, unit=None)
            progress.advance(invoices)
            rendered = {task.description: column.render(task).plain for task in progress.tasks}
        assert rendered["verifying aggregates"].endswith("events/s")
        assert rendered["verifying invoices"] == ""
