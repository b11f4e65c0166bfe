"""The README's tour and docs/dialects.md run as written, so that they and the code never drift apart.

Every ```sh block of each document is cut into commands (a command goes on over lines that end in ``\\`` and
over a quoted string that spans lines), and each ``curl`` command ends with the status it answers, as a comment
that starts with the number: ``curl -s $MB/healthz   # 200``. The test starts ``meterbook demo``'s data on a
fresh SQLite file behind a real uvicorn, runs the ``export`` lines the demo prints, then every command of one
document in order, in one bash (so that a variable one command sets is there for the next), with ``curl``
wrapped to note the status of each call. It fails when a status differs from the one written, when a ``curl``
command says none, or when a command fails (an unset variable, say: bash runs with ``set -u``).

A block with a line that starts with ``# not run by the tour test:`` is skipped, for the reason given there
(``./scripts/demo`` itself, a server of one's own). Without curl the test is skipped, except in CI, where it
fails.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from rich.console import Console

from meterbook.app import create_app
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.demo import print_guide, seed

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", "docs/dialects.md"]
SKIP = "# not run by the tour test:"
FENCE = re.compile(r"^```(\S*)\s*$")
STATUS = re.compile(r"^#\s*(\d{3})\b")
#: Runs before the commands: stop at the first failure or unset variable, and note each curl call's status.
PRELUDE = r"""
set -euo pipefail
__tour_command=0
curl() {
  local headers rc=0 status="" protocol code rest
  headers=$(mktemp)
  command curl --dump-header "$headers" "$@" || rc=$?
  while read -r protocol code rest; do
    if [[ $protocol == HTTP/* ]]; then status=$code; fi
  done < "$headers"
  rm -f "$headers"
  printf '%s %s %s\n' "$__tour_command" "${status:-000}" "$rc" >> "$TOUR_LOG"
  return "$rc"
}
"""


@dataclass(frozen=True)
class Command:
    document: str
    line: int
    text: str
    #: The status its last line's comment names, if it names one.
    status: int | None

    def where(self) -> str:
        first = self.text.splitlines()[0].strip()
        return f"{self.document}:{self.line}: {first[:100]}"


def _scan(text: str) -> tuple[bool, list[tuple[int, str]]]:
    """Whether ``text`` is a whole shell command (no open quote, no trailing ``\\``), and its comments by line."""
    quote: str | None = None
    comments: list[tuple[int, str]] = []
    line = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\n":
            line += 1
        if quote == "'":
            if char == "'":
                quote = None
        elif char == "\\":
            if text[index + 1 : index + 2] == "\n":
                line += 1
            index += 1
        elif quote == '"':
            if char == '"':
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t\n"):
            end = text.find("\n", index)
            end = len(text) if end < 0 else end
            comments.append((line, text[index:end]))
            index = end
            continue
        index += 1
    return quote is None and not text.endswith("\\"), comments


def _blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """Each ```sh block: the line number of its first line, and its lines."""
    block: list[str] | None = None
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if block is None:
            if fence is not None and fence.group(1) == "sh":
                block, start = [], number + 1
        elif fence is not None:
            yield start, block
            block = None
        else:
            block.append(line)
    assert block is None, f"a ```sh block from line {start} is never closed"


def commands(document: str, text: str) -> list[Command]:
    """The commands of every ```sh block that is not marked to be skipped, in order."""
    found: list[Command] = []
    for start, lines in _blocks(text):
        if any(line.startswith(SKIP) for line in lines):
            continue
        pending: list[str] = []
        for offset, line in enumerate(lines):
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending.append(line)
            joined = "\n".join(pending)
            complete, comments = _scan(joined)
            if not complete:
                continue
            last = len(pending) - 1
            marks = [STATUS.match(comment) for number, comment in comments if number == last]
            status = next((int(mark.group(1)) for mark in marks if mark is not None), None)
            found.append(Command(document, start + offset - last, joined, status))
            pending = []
        assert not pending, f"{document}:{start}: a command is never finished: {pending[0]}"
    return found


def run_commands(base_url: str, exports: list[str], listed: list[Command], workdir: Path) -> list[str]:
    """Run the commands in one bash after the demo's export lines; what differs from what they say."""
    log = workdir / "statuses.log"
    log.write_text("")
    script = [PRELUDE, *exports]
    for number, command in enumerate(listed, start=1):
        # Markers on both streams, so that each command's output can be shown with its problem.
        script += [f"__tour_command={number}", f"printf '\\n@@tour {number}\\n'; printf '\\n@@tour {number}\\n' >&2"]
        script.append(command.text)
    (workdir / "tour.sh").write_text("\n".join(script) + "\n")
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),  # no ~/.curlrc of the machine's
        "LANG": "C.UTF-8",
        "TOUR_LOG": str(log),
    }
    result = subprocess.run(
        ["bash", str(workdir / "tour.sh")],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = _by_command(result.stdout, result.stderr)
    statuses: dict[int, list[str]] = defaultdict(list)
    for entry in log.read_text().splitlines():
        command_number, status, exit_code = entry.split()
        # 000: no HTTP answer at all; curl's exit code says why (7: nothing listens there).
        shown_status = status if status != "000" else f"no answer (curl exit code {exit_code})"
        statuses[int(command_number)].append(shown_status)
    reached = max(output, default=0)
    problems: list[str] = []
    for number, command in enumerate(listed[:reached], start=1):
        seen = statuses.get(number, [])
        shown = output.get(number, "").strip()[-1500:]
        if command.status is None:
            if seen:
                problems.append(f"{command.where()}\n  calls curl ({seen}) but says no status: end it with # <status>")
        elif seen != [str(command.status)]:
            got = ", ".join(seen) if seen else "no curl call"
            problems.append(f"{command.where()}\n  says {command.status}, answered {got}\n  output: {shown}")
    if result.returncode != 0:
        stopped = listed[reached - 1].where() if reached else "before the first command"
        problems.append(
            f"bash stopped with exit code {result.returncode} at {stopped}\n  output: {output.get(reached, '')[-1500:]}"
            f"\n  stderr before any command: {output.get(0, '')[-1500:]}"
        )
    elif reached != len(listed):
        problems.append(f"only {reached} of {len(listed)} commands ran")
    return problems


def _by_command(stdout: str, stderr: str) -> dict[int, str]:
    parts: dict[int, str] = defaultdict(str)
    for stream in (stdout, stderr):
        number = 0
        for line in stream.splitlines():
            marker = re.fullmatch(r"@@tour (\d+)", line)
            if marker is not None:
                number = int(marker.group(1))
                parts[number] += ""
            else:
                parts[number] += line + "\n"
    return parts


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class DemoServer:
    base_url: str
    #: The ``export`` lines ``meterbook demo`` prints for this server, as printed.
    exports: list[str]


@pytest.fixture
def demo_server(sqlite_template: Path, tmp_path: Path) -> Iterator[DemoServer]:
    """``meterbook demo``'s data on a fresh SQLite file, served by uvicorn in a thread, with the guide it prints."""
    if shutil.which("curl") is None:
        if os.environ.get("CI"):
            pytest.fail("curl is not installed; CI must run the README's tour", pytrace=False)
        pytest.skip("curl is not installed (Debian: apt-get install curl)")
    path = tmp_path / "tour.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite:///{path}", pool_size=4)
    with database.write() as conn:
        demo = seed(conn)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    printed = io.StringIO()
    print_guide(Console(file=printed, width=120, color_system=None), base_url, demo)
    exports = [line.strip() for line in printed.getvalue().splitlines() if line.strip().startswith("export ")]
    settings = Settings(database_url=f"sqlite:///{path}", migrate_on_start=False, log_level="warning")
    # Without uvicorn's logging setup, which would take its loggers from the process's handlers for good
    # (propagate off), and so from the tests of meterbook's logs that run after this one in the same worker.
    config = uvicorn.Config(
        app=create_app(settings, database),
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="tour-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while True:
        assert thread.is_alive(), "the server stopped before it answered"
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not answer /healthz within 30 s"
        time.sleep(0.05)
    try:
        yield DemoServer(base_url, exports)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        database.dispose()


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_example_answers_the_status_it_says(document: str, demo_server: DemoServer, tmp_path: Path) -> None:
    listed = commands(document, (ROOT / document).read_text())
    assert sum(command.status is not None for command in listed) >= 20, "the document lost its examples"
    problems = run_commands(demo_server.base_url, demo_server.exports, listed, tmp_path)
    assert not problems, f"{len(problems)} example(s) of {document} do not do what it says:\n\n" + "\n\n".join(problems)


def test_the_demo_prints_every_variable_the_documents_use(demo_server: DemoServer) -> None:
    exported = {line.split("=", 1)[0].removeprefix("export ") for line in demo_server.exports}
    for document in DOCUMENTS:
        used = set()
        set_by_document = set()
        for command in commands(document, (ROOT / document).read_text()):
            used |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", command.text))
            set_by_document |= set(re.findall(r"^([A-Z][A-Z0-9_]*)=", command.text, re.MULTILINE))
        assert used - set_by_document <= exported, f"{document} uses variables the demo does not print"


class TestTheTestItself:
    """A wrong or missing status is reported, a skipped block is not run, and a command spans lines and quotes."""

    DOCUMENT = """
```sh
curl -s $MB/healthz     # 200
curl -s $MB/healthz \\
     -o /dev/null       # 404: wrong on purpose
curl -s $MB/healthz
echo "a string that
spans # two lines"; curl -s "$MB/v1/accounts" -H "Authorization: Bearer $KEY"  # 200
```

```sh
# not run by the tour test: it would fail
exit 1
```
"""

    def test_splits_commands(self) -> None:
        listed = commands("doc", self.DOCUMENT)
        assert [command.status for command in listed] == [200, 404, None, 200]
        assert [command.line for command in listed] == [3, 4, 6, 7]

    def test_reports_a_wrong_or_missing_status(self, demo_server: DemoServer, tmp_path: Path) -> None:
        problems = run_commands(demo_server.base_url, demo_server.exports, commands("doc", self.DOCUMENT), tmp_path)
        assert len(problems) == 2, problems
        assert "says 404, answered 200" in problems[0]
        assert "calls curl (['200']) but says no status" in problems[1]

    def test_reports_where_bash_stopped(self, demo_server: DemoServer, tmp_path: Path) -> None:
        listed = commands("doc", "```sh\ncurl -s $MB/healthz  # 200\necho $UNSET_VARIABLE\n```\n")
        problems = run_commands(demo_server.base_url, demo_server.exports, listed, tmp_path)
        assert len(problems) == 1, problems
        assert "exit code" in problems[0]
        assert "UNSET_VARIABLE" in problems[0]
