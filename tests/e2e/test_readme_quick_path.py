"""The README's five-minute path, followed word for word: its code blocks, extracted and run in order.

An edit to the README that breaks the path fails here. The section's blocks are read as a user
reads them: a ``python`` block whose first line is ``# <file>.py`` is a file to write; a ``sh``
block is commands (the ``pip install`` line is checked against the package, since the test runs
offline in the installed package; the ``outbox dev`` line runs in its own process, as terminal 1;
the rest run in terminal 2 with the ``export`` lines terminal 1 printed); the ``text`` block is the
line terminal 1 must show, ``<message_id>`` standing for the id the script printed.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Five minutes: your table, your delivery function"
FENCE = re.compile(r"^ *```(\w+)\n(.*?)^ *```$", re.MULTILINE | re.DOTALL)
BASH = "/bin/bash"
WAIT_S = 90.0  # a generous bound on a shared, slow machine: the stack usually starts in a few seconds


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language and its text, the list's indentation removed."""

    language: str
    text: str


def quick_path_blocks(readme: str) -> list[Block]:
    """The fenced blocks of the quick-path section, in order."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else None]
    blocks = []
    for match in FENCE.finditer(section):
        indent = len(match.group(0)) - len(match.group(0).lstrip(" "))
        lines = [line[indent:] for line in match.group(2).splitlines()]
        blocks.append(Block(match.group(1), "\n".join(lines) + "\n"))
    return blocks


def _wait_for(stream: IO[str], pattern: re.Pattern[str], process: subprocess.Popen[str], timeout_s: float) -> str:
    """What ``stream`` (a file the process writes) held when ``pattern`` first matched in it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stream.seek(0)
        text = stream.read()
        if pattern.search(text):
            return text
        assert process.poll() is None, f"outbox dev exited early:\n{text}"
        time.sleep(0.2)
    stream.seek(0)
    raise AssertionError(f"no {pattern.pattern!r} within {timeout_s}s:\n{stream.read()}")


def test_the_quick_path_delivers_the_message_to_your_function(tmp_path: Path) -> None:
    """The install, your function, outbox dev with your table and keys, your transaction: your function got it."""
    workdir = tmp_path  # empty, as a user's project starts
    blocks = quick_path_blocks((ROOT / "README.md").read_text())
    assert [b.language for b in blocks] == ["sh", "python", "sh", "python", "sh", "text"], blocks

    # 1. pip install: offline here, so the line must install this package with the extra the path needs.
    (install,) = blocks[0].text.split("\n")[:1]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name, extra = re.fullmatch(r"pip install '([\w-]+)\[(\w+)\]'", install).groups()  # type: ignore[union-attr]
    assert name == project["name"]
    assert extra in project["optional-dependencies"]
    assert blocks[0].text.strip() == install

    # 2 and 4: the files, named by their first line.
    for block in (blocks[1], blocks[3]):
        first, _, _ = block.text.partition("\n")
        filename = re.fullmatch(r"# (\w+\.py)", first)
        assert filename, first
        (workdir / filename.group(1)).write_text(block.text)

    # The installed package's commands come first on PATH, as in the user's virtualenv.
    bin_dir = str(Path(sys.executable).parent)
    keep = ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")  # /nonexistent: no profile of this machine
    base_env = {k: v for k, v in os.environ.items() if k in keep or not k.startswith(("AWS_", "OUTBOX_"))}
    base_env |= {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": ""}

    # 3. terminal 1: the one command, on any free port (the only word added: other suites use 8080).
    dev_lines = [line for line in blocks[2].text.splitlines() if line.strip()]
    assert len(dev_lines) == 1, dev_lines
    assert " outbox dev " in f" {dev_lines[0]} ", dev_lines
    with (workdir / "stdout.txt").open("w+") as out, (workdir / "stderr.txt").open("w+") as err:
        dev = subprocess.Popen(
            [BASH, "-c", f"exec env {dev_lines[0]} --port 0"],
            cwd=workdir,
            env=base_env,
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,
        )
        try:
            banner = _wait_for(err, re.compile(r"^export OUTBOX_RANGE_KEY=.*$", re.M), dev, WAIT_S)
            exports = dict(
                shlex.split(line.removeprefix("export "))[0].split("=", 1)
                for line in banner.splitlines()
                if line.startswith("export ")
            )
            assert exports["OUTBOX_TABLE_NAME"] == "shop"

            # 4. terminal 2: the pasted exports, then the commands as written.
            script = subprocess.run(
                [BASH, "-e", "-c", blocks[4].text],
                cwd=workdir,
                env=base_env | exports,
                capture_output=True,
                text=True,
                timeout=WAIT_S,
                check=False,
            )
            assert script.returncode == 0, script.stderr
            message_id = re.fullmatch(r"written (\S+)\n", script.stdout)
            assert message_id, script.stdout

            # 5. terminal 1 shows the line the README shows.
            expected = blocks[5].text.strip().replace("<message_id>", message_id.group(1))
            _wait_for(out, re.compile(f"^{re.escape(expected)}$", re.M), dev, WAIT_S)
        finally:
            dev.send_signal(signal.SIGINT)
            try:
                code = dev.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
                raise
        assert code == 0
        err.seek(0)
        assert "Traceback" not in err.read()
