"""What the README tells a newcomer, checked: its "Using it" commands work as written, in
order, on a new database (a brief whose topic was never added once stopped them at the
fourth line), and its configuration table names every setting."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from tests.conftest import SANDBOX_KEY

ROOT = Path(__file__).parent.parent


def using_it_commands() -> list[list[str]]:
    """The `newsletter …` lines of the first shell block under "## Using it"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Using it\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "newsletter":
            commands.append(words[1:])
    return commands


def test_the_readme_commands_run_as_written_on_a_new_database(tmp_path, sandbox, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")  # the paths it names
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/var/newsletter.db")
    monkeypatch.setenv("SENDGRID_API_HOST", sandbox.url)
    monkeypatch.setenv("SENDGRID_API_KEY", SANDBOX_KEY)
    commands = using_it_commands()
    assert commands[0] == ["init"] and len(commands) > 10
    runner = CliRunner()
    for words in commands:
        result = runner.invoke(app, words, env={"COLUMNS": "200"})
        assert result.exit_code == 0, f"newsletter {shlex.join(words)}:\n{result.output}"
    sent = sorted(address for message in sandbox.messages() for address in message.to)
    assert sent == ["aiko@example.com", "editor@example.com"]  # the test copy, then the send


def test_every_setting_is_in_the_readmes_configuration_table():
    table = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Configuration\n")[1]
    rows = [
        line.split("|")[1]
        for line in table.split("\n## ")[0].splitlines()
        if line.startswith("| `")
    ]
    named = {name.strip(" `") for row in rows for name in row.split(",")}
    assert set(Settings.model_fields) - named == set()
