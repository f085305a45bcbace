"""Every ``outbox`` command that talks to AWS says in one line what to set when region or credentials are missing."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

from outbox.adapters.aws import dynamodb_client
from outbox.cli import NO_CREDENTIALS, NO_REGION, aws_region, build_parser, main

# The least each command needs besides AWS itself.
AWS_COMMANDS = {
    "bootstrap": [],
    "replay": ["--table-name", "outbox", "--queue-url", "https://sqs.eu-west-1.amazonaws.com/1/q"],
    "sweep": ["--table-name", "outbox", "--queue-url", "https://sqs.eu-west-1.amazonaws.com/1/q"],
}


class _Reached(Exception):
    """The command got as far as making its first AWS client."""


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS_* variable at all and an empty home, so ~/.aws holds nothing either."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")  # recorded, so an --endpoint-url a command sets is undone after
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_commands_tested_here_are_every_command_with_aws_options() -> None:
    """Each command with --region also takes --endpoint-url, and each is in AWS_COMMANDS (a new one must be)."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    def options(command: argparse.ArgumentParser) -> set[str]:
        return {option for action in command._actions for option in action.option_strings}

    with_aws = {name for name, command in commands.items() if "--region" in options(command)}
    assert with_aws == set(AWS_COMMANDS)
    assert all("--endpoint-url" in options(commands[name]) for name in with_aws)


@pytest.mark.parametrize("command", sorted(AWS_COMMANDS))
def test_without_a_region_the_command_says_what_to_set(
    command: str, bare_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No region anywhere: one line naming AWS_DEFAULT_REGION, AWS_REGION and --region; exit 2, no traceback."""
    code = main([command, *AWS_COMMANDS[command]])

    out, err = capsys.readouterr()
    assert code == 2
    assert (out, err) == ("", f"outbox {command}: {NO_REGION}\n")
    assert "AWS_DEFAULT_REGION" in NO_REGION


@pytest.mark.parametrize("command", sorted(AWS_COMMANDS))
def test_without_credentials_the_command_says_what_to_set(
    command: str, bare_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A region but no credentials (no variables, no ~/.aws): one line naming the variables; exit 2."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    # Last in its chain botocore asks the instance metadata service over the network; off here (no socket).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    code = main([command, *AWS_COMMANDS[command]])

    out, err = capsys.readouterr()
    assert code == 2
    assert (out, err) == ("", f"outbox {command}: {NO_CREDENTIALS}\n")
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in NO_CREDENTIALS


def test_a_profile_that_does_not_exist_is_one_line_too(
    bare_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """AWS_PROFILE naming no profile: botocore's own reason, on one line, exit 2."""
    monkeypatch.setenv("AWS_PROFILE", "nobody")

    assert main(["bootstrap"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nobody" in err


@pytest.mark.parametrize(
    ("variables", "flag", "expected"),
    [
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, None, "eu-west-1"),  # what botocore itself reads
        ({"AWS_REGION": "eu-west-2"}, None, "eu-west-2"),  # what Lambda sets and the handlers read
        ({"AWS_REGION": "eu-west-2", "AWS_DEFAULT_REGION": "eu-west-1"}, None, "eu-west-2"),
        ({"AWS_REGION": "eu-west-2"}, "ap-south-1", "ap-south-1"),  # --region wins
    ],
)
def test_the_region_comes_from_the_flag_then_aws_region_then_botocore(
    bare_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    flag: str | None,
    expected: str,
) -> None:
    """--region, else AWS_REGION (as the handlers read it), else AWS_DEFAULT_REGION or the profile's."""
    for name, value in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", **variables}.items():
        monkeypatch.setenv(name, value)

    assert aws_region(flag) == expected


def test_replay_takes_endpoint_url_like_bootstrap(
    bare_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``outbox replay --endpoint-url URL --region R``: its clients talk to URL in R."""
    seen: list[tuple[str, str]] = []

    def client(region: str | None = None) -> Any:
        made = dynamodb_client(region)
        seen.append((made.meta.endpoint_url, made.meta.region_name))
        raise _Reached

    monkeypatch.setattr("outbox.replay_cli.dynamodb_client", client)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "local")
    where = ["--endpoint-url", "http://127.0.0.1:4566", "--region", "eu-west-1"]

    with pytest.raises(_Reached):
        main(["replay", *AWS_COMMANDS["replay"], *where])

    assert seen == [("http://127.0.0.1:4566", "eu-west-1")]
