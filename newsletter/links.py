"""The links in every email, and the per-recipient values and headers built from them.

One signed token per reader serves both the unsubscribe and the preferences link: each
lets its holder change only their own subscription, and signing once halves the cost per
recipient. The confirm link is signed for another purpose, so neither can stand in for
the other. Tokens never expire (an old email's unsubscribe link must keep working; rotating
NEWSLETTER_SECRET_KEY retires them all).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parseaddr

from newsletter.config import ArchiveVisibility, Settings
from newsletter.fields import (
    CONFIRM_FIELD,
    LINKS,
    RECIPIENT_FIELDS,
    uses_legacy_urls,
    value_plan,
    values_of,
)
from newsletter.providers.base import Recipient
from subscribers.tokens import TokenSigner

# What each token is signed for.
LINK_TOKEN_PURPOSE = "subscriber-links"  # noqa: S105 - labels, not secrets
CONFIRM_PURPOSE = "confirm-subscription"
# Opens a subscribers-only archive. Signed apart from the reader token: a forwarded "View in
# browser" link lets its holder read briefs, never change the reader's subscription.
ARCHIVE_PURPOSE = "archive-access"
# The reader a test copy's links are signed for: nobody (ids start at 1), so they change
# nothing and the pages say they came in a test copy.
TEST_COPY_READER = 0


def list_unsubscribe_headers(unsubscribe_url: str) -> dict[str, str]:
    """RFC 8058: mailbox providers show an unsubscribe button that POSTs to this URL."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def list_id_for(from_header: str) -> str:
    """RFC 2919 List-Id from the sender: `Briefings <briefings.example.com>` for
    `Briefings <briefs@example.com>` (the sender's name, and a dot-atom under its domain)."""
    name, address = parseaddr(from_header)
    domain = address.rpartition("@")[2].lower() or "localhost"
    local = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in name.lower())
    label = "-".join(part for part in local.split("-") if part) or "newsletter"
    phrase = "".join(c for c in name if c.isascii() and c.isprintable() and c not in '"\\<>')
    identifier = f"<{label}.{domain}>"
    return f'"{phrase.strip()}" {identifier}' if phrase.strip() else identifier


@dataclass(frozen=True)
class Links:
    """URLs of the reader's side, signed with the settings' secret key."""

    base_url: str
    signer: TokenSigner
    # Sign an archive token per recipient: only when the archive is for subscribers, since
    # each signature costs a little on a million-recipient send.
    archive_tokens: bool = False
    list_id: str = ""  # RFC 2919 List-Id of list mail (see list_id_for)

    @classmethod
    def from_settings(cls, settings: Settings) -> Links:
        return cls(
            base_url=settings.NEWSLETTER_BASE_URL,
            signer=TokenSigner(settings.NEWSLETTER_SECRET_KEY.get_secret_value()),
            archive_tokens=settings.NEWSLETTER_ARCHIVE is ArchiveVisibility.SUBSCRIBERS,
            list_id=list_id_for(settings.NEWSLETTER_FROM),
        )

    def reader_token(self, subscriber_id: int) -> str:
        return self.signer.sign(LINK_TOKEN_PURPOSE, subscriber_id)

    def reader_of(self, token: str) -> int | None:
        """The subscriber a reader link belongs to; None for a forged or broken one."""
        return self.signer.verify(LINK_TOKEN_PURPOSE, token)

    def _url(self, link: str, token: str) -> str:
        """A reader link as the templates spell it (`fields.LINKS`: one list of paths)."""
        return f"{self.base_url}/{LINKS[link][0]}/{token}"

    def unsubscribe_url(self, token: str) -> str:
        return self._url("unsubscribe_url", token)

    def preferences_url(self, token: str) -> str:
        return self._url("preferences_url", token)

    def confirm_url(self, subscriber_id: int) -> str:
        return self._url("confirm_url", self.signer.sign(CONFIRM_PURPOSE, subscriber_id))

    def confirmed_subscriber(self, token: str) -> int | None:
        return self.signer.verify(CONFIRM_PURPOSE, token)

    def archive_url(self, slug: str = "") -> str:
        return f"{self.base_url}/archive" + (f"/{slug}" if slug else "")

    def archive_token(self, subscriber_id: int) -> str:
        return self.signer.sign(ARCHIVE_PURPOSE, subscriber_id)

    def archive_reader(self, token: str) -> int | None:
        """The reader a subscribers-only archive link was made for; None if forged."""
        return self.signer.verify(ARCHIVE_PURPOSE, token) if token.isascii() else None

    def list_headers(self) -> dict[str, str]:
        """Headers every message of the list carries alike (RFC 2919 List-Id lets mailbox
        providers and readers' filters tell this list's mail apart): a batch's, not each
        recipient's, so a 1000-recipient request carries them once."""
        return {"List-Id": self.list_id} if self.list_id else {}

    def recipient(
        self,
        *,
        delivery_id: int,
        subscriber_id: int,
        email: str,
        name: str,
        confirm: bool = False,
        one_click: bool = True,
        used: frozenset[str] | None = None,
    ) -> Recipient:
        """One recipient's token values and headers (see `recipients`)."""
        [recipient] = self.recipients(
            [(delivery_id, subscriber_id, email, name)],
            confirm=confirm,
            one_click=one_click,
            used=used,
        )
        return recipient

    def recipients(
        self,
        readers: Iterable[tuple[int, int, str, str]],
        *,
        confirm: bool = False,
        one_click: bool = True,
        used: frozenset[str] | None = None,
    ) -> list[Recipient]:
        """Each reader's (delivery id, subscriber id, email, name) token values and
        headers. `confirm` adds the confirm link's token (the double opt-in email);
        `one_click` adds RFC 8058's headers (not on a confirmation: there is nothing to
        unsubscribe from yet). `used`: the tokens of the content they go with
        (`fields.tokens_in`), so a request carries no value its content never shows, and no
        token is signed that it never shows; None gives every value.

        What a batch's readers share (which values its content shows) is worked out once:
        this runs for every reader of every send."""
        legacy = uses_legacy_urls(used)
        fields = (*RECIPIENT_FIELDS, *((CONFIRM_FIELD,) if confirm else ()))
        if legacy:
            fields += ("unsubscribe_url", "preferences_url", *(("confirm_url",) if confirm else ()))
        plan = value_plan(fields, used)
        shown = {field for field, _, _ in plan}
        archive = self.archive_tokens and "archive_token" in shown
        confirm_token = confirm and bool(shown & {CONFIRM_FIELD, "confirm_url"})
        sign = self.signer.sign
        made = []
        for delivery_id, subscriber_id, email, name in readers:
            token = sign(LINK_TOKEN_PURPOSE, subscriber_id)
            raw = {
                "name": name or "reader",
                "email": email,
                "reader_token": token,
                # Empty when the archive is not for subscribers, or the content never
                # shows it (`used` drops it then).
                "archive_token": sign(ARCHIVE_PURPOSE, subscriber_id) if archive else "",
            }
            if confirm:
                raw[CONFIRM_FIELD] = sign(CONFIRM_PURPOSE, subscriber_id) if confirm_token else ""
            unsubscribe_url = self.unsubscribe_url(token)
            if legacy:
                raw["unsubscribe_url"] = unsubscribe_url
                raw["preferences_url"] = self.preferences_url(token)
                if confirm:
                    raw["confirm_url"] = self._url("confirm_url", raw[CONFIRM_FIELD])
            headers = list_unsubscribe_headers(unsubscribe_url) if one_click else {}
            made.append(Recipient(delivery_id, email, name, values_of(plan, raw), headers))
        return made
