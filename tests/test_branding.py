"""Branding set once in settings: refused when it cannot work, and an accent colour that
stays readable whatever the firm picks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from newsletter.branding import DARK_SURFACES, LIGHT_SURFACES, Branding, contrast
from newsletter.web.app import content_security_policy
from tests.conftest import test_settings


@pytest.mark.parametrize("accent", ["#1d4e89", "#ffcc00", "#ffffff", "#000000", "#0a8f3c", "#e1e"])
def test_any_accent_colour_becomes_text_that_reads_at_4_5_to_1_light_and_dark(accent):
    brand = Branding.from_settings(test_settings(NEWSLETTER_ACCENT_COLOR=accent))
    assert all(contrast(brand.accent, surface) >= 4.5 for surface in LIGHT_SURFACES)
    assert all(contrast(brand.accent_dark, surface) >= 4.5 for surface in DARK_SURFACES)
    assert contrast("#ffffff", brand.accent) >= 4.5  # the buttons' white text


def test_an_accent_that_already_reads_well_is_kept_as_the_firm_chose_it():
    brand = Branding.from_settings(test_settings(NEWSLETTER_ACCENT_COLOR="#1D4E89"))
    assert brand.accent == "#1d4e89"


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("NEWSLETTER_ACCENT_COLOR", "navy", "is not a colour like #1d4e89"),
        ("NEWSLETTER_LOGO_URL", "http://cdn.example.com/logo.png", "absolute https:// URL"),
        ("NEWSLETTER_IMAGE_ORIGINS", "https://charts.example.com/path", "is not an origin"),
        ("NEWSLETTER_IMAGE_ORIGINS", "*", "is not an origin"),
        ("NEWSLETTER_FIRM_NAME", "Line one\nline two", "must be one line"),
        ("NEWSLETTER_FIRM_NAME", "", "at least 1 character"),
        ("NEWSLETTER_ARCHIVE", "private", "'public', 'subscribers' or 'off'"),
    ],
)
def test_a_branding_setting_that_cannot_work_is_refused_by_name(setting, value, words):
    with pytest.raises(ValidationError, match=setting) as raised:
        test_settings(**{setting: value})
    assert words in str(raised.value)


def test_the_pages_allow_images_only_from_the_configured_origins_and_the_logo():
    settings = test_settings(
        NEWSLETTER_IMAGE_ORIGINS="https://Charts.example.com/, https://maps.example.org:8443",
        NEWSLETTER_LOGO_URL="https://cdn.example.net/firm/logo.png",
    )
    policy = content_security_policy(settings)
    assert (
        "img-src 'self' https://charts.example.com https://maps.example.org:8443 "
        "https://cdn.example.net;" in policy
    )
    assert "style-src 'self';" in policy and "unsafe-inline" not in policy
