"""The reader's pages as a person meets them: a failed sign-up keeps what they typed and says
what to fix where a screen reader finds it, the timezone is their own, the preferences page
tells the truth about their status, token pages are not cached, and `serve` will not face
the network with the placeholder secret. Over real HTTP and in headless Chromium."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from playwright.sync_api import sync_playwright

from newsletter.cli.common import EX_CONFIG
from newsletter.db import session_scope
from newsletter.devtools.browser import find_chromium
from newsletter.web.app import listens_on_loopback_only
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic
from tests.conftest import clean_env, sqlite_only
from tests.web_support import call, confirm_token, form_csrf, subscribe, token


@pytest.fixture
def energy(engine):
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        add_topic("japan", "Japan", session=session)
    return engine


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@sqlite_only
def test_a_failed_sign_up_keeps_the_values_and_marks_the_field(web, energy):
    url, _ = web
    code, page, _ = subscribe(
        url,
        email="mina@example.com",
        name='Mina "M" <Lee>',
        cadence="weekly",
        timezone="Asia/Tokyo",
    )
    assert code == 400
    assert "<title>Error" in page
    assert 'value="mina@example.com"' in page and 'value="Mina &#34;M&#34; &lt;Lee&gt;"' in page
    assert 'value="weekly" checked' in page and "<option selected>Asia/Tokyo</option>" in page
    # The topics are what is wrong: said in plain words, tied to the field, focused.
    assert 'id="topics-error"' in page and "Choose at least one topic" in page
    assert 'aria-describedby="topics-error"' in page and 'aria-invalid="true"' in page
    assert page.count("autofocus") == 1


@sqlite_only
def test_a_bad_address_is_marked_on_the_email_field(web, energy):
    url, _ = web
    code, page, _ = subscribe(url, email="mina@", topics=["energy", "japan"])
    assert code == 400
    field = page.split('id="email"')[1].split(">")[0]
    assert 'aria-invalid="true"' in field and 'aria-describedby="email-error"' in field
    assert "autofocus" in field
    assert 'value="energy" checked' in page and 'value="japan" checked' in page


@sqlite_only
def test_the_honeypot_is_hidden_from_screen_readers_and_the_keyboard(web, energy):
    url, _ = web
    _, page, _ = call(f"{url}/subscribe")
    trap = page.split('class="trap"')[1].split("</p>")[0]
    assert 'aria-hidden="true"' in page.split('class="trap"')[0].rsplit("<", 1)[1] + trap
    assert 'tabindex="-1"' in trap


@sqlite_only
def test_the_form_lists_utc_and_preselects_the_firms_zone_without_a_script(web, energy):
    url, _ = web
    _, page, headers = call(f"{url}/subscribe")
    assert "<option selected>UTC</option>" in page
    assert '<script src="/static/timezone.js"' in page
    assert "script-src 'self'" in headers["content-security-policy"]


@sqlite_only
def test_the_browser_preselects_the_readers_own_timezone(web, energy, browser):
    url, _ = web
    errors: list[str] = []
    context = browser.new_context(timezone_id="Asia/Tokyo")
    page = context.new_page()
    page.on("console", lambda message: errors.append(message.text))
    page.goto(f"{url}/subscribe")
    assert page.eval_on_selector("#timezone", "select => select.value") == "Asia/Tokyo"
    assert [text for text in errors if "Content Security Policy" in text] == []
    context.close()
    context = browser.new_context(timezone_id="Asia/Tokyo", java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{url}/subscribe")
    assert page.eval_on_selector("#timezone", "select => select.value") == "UTC"
    context.close()


@sqlite_only
def test_after_a_failed_attempt_focus_is_on_the_field_to_fix(web, energy, browser):
    url, _ = web
    context = browser.new_context(timezone_id="Europe/Paris")
    page = context.new_page()
    page.goto(f"{url}/subscribe")
    page.fill("#email", "mina@example.com")
    page.select_option("#timezone", "Asia/Tokyo")
    page.click("button[type=submit]")
    assert page.title().startswith("Error")
    assert page.evaluate("document.activeElement.name") == "topics"
    assert page.input_value("#email") == "mina@example.com"
    # What the reader chose is kept: the script does not override it.
    assert page.eval_on_selector("#timezone", "select => select.value") == "Asia/Tokyo"
    # The topics' message stands above the boxes, not beside the first as if its label.
    message = page.locator("#topics-error").bounding_box()
    first = page.locator("input[name=topics]").first.bounding_box()
    assert message is not None and first is not None
    assert message["y"] + message["height"] <= first["y"] + 1
    context.close()


def test_after_unsubscribing_the_preferences_page_says_so(web, energy):
    url, settings = web
    with session_scope(energy) as session:
        person = add_subscriber("ann@example.com", session=session, topics=["energy"])
    link = f"{url}/preferences/{token(settings, person.id)}"
    csrf = form_csrf(call(link)[1])
    call(link, data={"csrf": csrf, "action": "unsubscribe"})
    code, page, _ = call(link)
    assert code == 200 and "You are unsubscribed" in page
    assert "Saved." not in page and " checked" not in page
    assert 'value="resubscribe"' in page and "confirm" in page


@sqlite_only
@pytest.mark.parametrize("path", ["unsubscribe", "preferences"])
def test_token_pages_are_never_cached(web, energy, path):
    url, settings = web
    with session_scope(energy) as session:
        person = add_subscriber("ann@example.com", session=session, topics=["energy"])
    _, _, headers = call(f"{url}/{path}/{token(settings, person.id)}")
    assert headers["cache-control"] == "no-store"
    _, _, headers = call(f"{url}/confirm/{confirm_token(settings, person.id)}")
    assert headers["cache-control"] == "no-store"


def _serve(db_url, tmp_path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", *args],
        env=clean_env(DATABASE_URL=db_url, **env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("host", "loopback_only"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104 - the case being refused
        ("::", False),
        ("192.0.2.1", False),
        ("news.example.com", False),
    ],
)
def test_which_hosts_count_as_loopback_only(host, loopback_only):
    assert listens_on_loopback_only(host) is loopback_only


@sqlite_only
def test_serve_refuses_the_placeholder_secret_beyond_loopback(db_url, tmp_path):
    # 192.0.2.1 (TEST-NET-1) is on no interface here: were the check missing, binding would
    # fail, nothing would listen, and the message would be the wrong one.
    process = _serve(db_url, tmp_path, "--host", "192.0.2.1", "--port", "0")
    _, stderr = process.communicate(timeout=60)
    # 78 (EX_CONFIG): the web unit does not restart a setting to fix in a loop.
    assert process.returncode == EX_CONFIG and "Traceback" not in stderr
    assert "NEWSLETTER_SECRET_KEY" in stderr and len(stderr.strip().splitlines()) == 1


@sqlite_only
def test_serve_starts_on_loopback_with_the_placeholder_secret(db_url, tmp_path):
    process = _serve(db_url, tmp_path, "--host", "127.0.0.1", "--port", "0")
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while "Application startup complete" not in seen:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, seen
            seen += process.stderr.readline() if process.stderr else ""
    finally:
        process.terminate()
        process.wait(timeout=30)
