"""``outbox`` alone prints its usage; every ``--help`` says what the command does, its options and exit codes."""

from __future__ import annotations

import argparse
import re

import pytest

from outbox.cli import build_parser, main


def test_no_command_prints_the_usage_and_commands_on_stderr_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """``outbox`` alone is a usage error: the full help on stderr, nothing on stdout, exit 2."""
    assert main([]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: outbox")
    for command in ("bootstrap", "dev", "demo", "replay"):
        assert command in err
    assert "required" not in err


def _commands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, by name, as ``outbox`` builds them."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


@pytest.mark.parametrize("command", [None, *sorted(_commands())], ids=lambda c: c or "outbox")
def test_every_help_says_what_it_does_each_option_and_the_exit_codes(
    command: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--help`` of ``outbox`` and of each command: a description, a meaning for every option, an exit codes table."""
    parser = _commands()[command] if command else build_parser()

    with pytest.raises(SystemExit) as exited:
        main([*([command] if command else []), "--help"])

    text = capsys.readouterr().out
    assert exited.value.code == 0
    assert parser.description
    undocumented = [a.option_strings for a in parser._actions if a.option_strings and not a.help]
    assert undocumented == []
    assert "\nexit codes:\n" in text
    codes = re.findall(r"^  (\d+) ", text.split("\nexit codes:\n")[1], flags=re.MULTILINE)
    assert {"0", "2"} <= set(codes)


@pytest.mark.parametrize("command", [None, *sorted(_commands())], ids=lambda c: c or "outbox")
def test_no_help_text_carries_restructuredtext_markup(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    """Help is read in a terminal: no ``literal`` backticks, no :option:`roles`, no directives."""
    with pytest.raises(SystemExit):
        main([*([command] if command else []), "--help"])

    text = capsys.readouterr().out
    assert "`" not in text
    assert "::" not in text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sweep", "--endpoint-url", "notaurl"], "--endpoint-url: must be an http:// or https:// URL with a host"),
        (["replay", "--endpoint-url", "ftp://x", "--dry-run"], "must be an http:// or https:// URL with a host"),
        (["dev", "--port", "99999"], "--port: must be a port number from 0 to 65535, not '99999'"),
    ],
)
def test_a_bad_endpoint_or_port_is_one_line(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a traceback: one line on stderr, exit 2, before anything starts."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert expected in line


def test_a_bad_aws_endpoint_url_in_the_environment_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """AWS_ENDPOINT_URL=notaurl: the setting named in one line, exit 2, no client made."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "notaurl")
    assert main(["sweep", "--table-name", "t"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "outbox sweep: AWS_ENDPOINT_URL must be an http:// or https:// URL with a host, not 'notaurl'"
