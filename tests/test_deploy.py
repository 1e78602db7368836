"""What `deploy/` ships, checked as a new operator would: the systemd units pass
`systemd-analyze verify` (Debian's `systemd`), the worker's stop timeout outlasts a batch,
and the example environment file names only settings that exist."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.cli.common import EX_CONFIG
from newsletter.config import Settings
from tests.conftest import clean_env, test_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))
INSTALLED_AT = "/srv/newsletter"


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(path.read_text())
    return parser


def test_deploy_ships_a_web_unit_and_a_worker_unit():
    assert [unit.name for unit in UNITS] == ["newsletter-web.service", "newsletter-worker@.service"]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is missing (Debian's `systemd` package; .ci/run installs it)",
)
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    """The units as installed from this checkout: /srv/newsletter becomes where the checkout
    is, so `verify` also finds the `newsletter` command each ExecStart names."""
    assert (ROOT / ".venv" / "bin" / "newsletter").exists(), "run `make` first"
    for unit in UNITS:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_AT, str(ROOT)))
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / unit.name) for unit in UNITS)],
        env=clean_env(SYSTEMD_LOG_LEVEL="notice"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Any warning (an unknown key, a key in the wrong section) fails too, not only errors.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_units_restart_on_failure_and_stop_with_sigterm():
    for path in UNITS:
        service = _unit(path)["Service"]
        assert service["Restart"] == "on-failure", path.name
        assert service["KillSignal"] == "SIGTERM", path.name
        assert service["ExecStart"].startswith(f"{INSTALLED_AT}/.venv/bin/newsletter "), path.name


def test_the_units_stop_restarting_only_on_a_setting_to_fix():
    """A database slow to come up after a reboot must not leave the worker down for good
    (systemd's start limit once did); a bad setting (exit 78) must not restart in a loop."""
    for path in UNITS:
        unit = _unit(path)
        assert unit["Service"]["RestartPreventExitStatus"] == str(EX_CONFIG), path.name
        assert unit["Unit"]["StartLimitIntervalSec"] == "0", path.name


def test_the_worker_is_given_longer_to_drain_than_a_batch_may_take():
    service = _unit(DEPLOY / "newsletter-worker@.service")["Service"]
    assert service["KillMode"] == "mixed"  # SIGTERM to the worker, SIGKILL only at the end
    lease = test_settings().NEWSLETTER_LEASE_SECONDS
    assert int(service["TimeoutStopSec"]) > lease


def test_the_web_unit_listens_on_loopback_behind_the_proxy():
    service = _unit(DEPLOY / "newsletter-web.service")["Service"]
    assert "--host 127.0.0.1" in service["ExecStart"]


def test_the_example_environment_loads_as_the_readme_says_and_fails_the_doctor_as_is(
    sandbox, tmp_path
):
    """Sourced by a shell as the README does (`set -a; . FILE`), every value reaches the
    settings intact (quotes, spaces, JSON), and `newsletter doctor` refuses each value left
    to fill in, so nobody runs production on the example."""
    example = DEPLOY / "newsletter.env.example"
    result = subprocess.run(
        [
            "sh",
            "-c",
            'set -a; . "$0"; set +a; export SENDGRID_API_HOST="$1"; '
            'exec "$2" -m newsletter doctor --json',
            str(example),
            sandbox.url,  # never SendGrid itself from a test
            sys.executable,
        ],
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    names = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert names <= set(Settings.model_fields)
    assert "settings" not in checks  # every value was read
    failed = {name for name, check in checks.items() if check["status"] == "fail"}
    assert failed == set(checks) - {"trusted_proxies"}, checks
