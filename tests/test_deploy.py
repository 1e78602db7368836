"""What `deploy/` ships, checked as a new operator would: the systemd units pass
`systemd-analyze verify` (Debian's `systemd`), the worker's stop timeout outlasts a batch,
and the example environment file names only settings that exist."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.doctor import Status, check_secret, check_webhook_key, load_settings
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


def test_the_worker_is_given_longer_to_drain_than_a_batch_may_take():
    service = _unit(DEPLOY / "newsletter-worker@.service")["Service"]
    assert service["KillMode"] == "mixed"  # SIGTERM to the worker, SIGKILL only at the end
    lease = test_settings().NEWSLETTER_LEASE_SECONDS
    assert int(service["TimeoutStopSec"]) > lease


def test_the_web_unit_listens_on_loopback_behind_the_proxy():
    service = _unit(DEPLOY / "newsletter-web.service")["Service"]
    assert "--host 127.0.0.1" in service["ExecStart"]


def test_the_example_environment_names_only_real_settings_and_fails_the_doctor_as_is():
    """Every variable is a setting, and its placeholders are ones `newsletter doctor`
    refuses, so nobody runs production on the example's values."""
    lines = (DEPLOY / "newsletter.env.example").read_text().splitlines()
    variables = dict(
        line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")
    )
    assert set(variables) <= set(Settings.model_fields)
    assert variables["NEWSLETTER_SECRET_KEY"] == ""  # to fill in, never a sample value
    # Loaded as the doctor loads a production file whose secret is refused at load time.
    settings, problems = load_settings(
        lambda **dev: test_settings(
            **{**variables, "NEWSLETTER_TRUSTED_PROXIES": ["127.0.0.1"], **dev}
        )
    )
    assert problems == [] and settings is not None
    assert check_secret(settings).status is Status.FAIL
    assert check_webhook_key(settings).status is Status.FAIL
