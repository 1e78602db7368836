"""Signed subscriber tokens: they verify, and nothing else does."""

from __future__ import annotations

from subscribers.tokens import TokenSigner


def test_a_signed_token_verifies_to_its_subscriber():
    signer = TokenSigner("secret")
    assert signer.verify("unsubscribe", signer.sign("unsubscribe", 42)) == 42


def test_a_token_for_one_purpose_does_not_verify_for_another():
    signer = TokenSigner("secret")
    assert signer.verify("preferences", signer.sign("unsubscribe", 42)) is None


def test_a_tampered_token_does_not_verify():
    signer = TokenSigner("secret")
    token = signer.sign("unsubscribe", 42)
    other = signer.sign("unsubscribe", 43)
    forged = other.split(".")[0] + "." + token.split(".")[1]
    assert signer.verify("unsubscribe", forged) is None
    assert signer.verify("unsubscribe", token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_another_key_does_not_verify():
    assert (
        TokenSigner("other").verify("unsubscribe", TokenSigner("secret").sign("unsubscribe", 1))
        is None
    )


def test_garbage_does_not_verify():
    signer = TokenSigner("secret")
    for junk in ("", ".", "abc", "abc.", ".abc", "ü.ü", "a.b.c"):
        assert signer.verify("unsubscribe", junk) is None


def test_a_link_mailed_by_an_earlier_version_still_verifies():
    """Unsubscribe links live in inboxes for years: the token's recipe may get faster, never
    different (this one was made before the MAC was computed from a pre-keyed state)."""
    signer = TokenSigner("an-old-secret-key-from-last-year-0123456789")
    assert signer.verify("subscriber-links", "NDI0Mg.w2T8oQ_KXMQ9LrJmwU6bAg") == 4242
    assert signer.sign("subscriber-links", 4242) == "NDI0Mg.w2T8oQ_KXMQ9LrJmwU6bAg"
