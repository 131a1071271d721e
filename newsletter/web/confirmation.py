"""Double opt-in: the confirmation email, rendered from theme/web/serve/confirm_email.* (Jinja
stays in the web wing; the send wing only gets the bytes), and whether a confirmation link
still has a pending sign-up to confirm (`sign_up_state`)."""

from __future__ import annotations

import datetime as dt
import math
import re
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Literal

from newsletter.send.subscribers import InvalidRow, read_rows
from newsletter.settings import Settings
from newsletter.web import app as web
from newsletter.web.tokens import Confirmation, confirm_token

SignUpState = Literal["pending", "subscribed", "used"]


def confirmation_email(
    email: str, name: str, /, *, settings: Settings, words: dict[str, str], newsletter: str,
    now: float,
) -> bytes:
    """The message (CRLF line ends) holding `<public>/confirm?token=…`, valid CONFIRM_HOURS."""
    hours = settings.confirm_hours
    secret = settings.secret_key.get_secret_value()
    token = confirm_token(
        email, name, issued=now, expires=int(now + hours * 3600), secret=secret
    )
    link = f"{settings.public_url}/confirm?token={token}"
    subject = words["mail_subject"].format(name=newsletter)
    # The name the reader typed, if it reads as a name: this mail goes to whatever address
    # was typed, so a name field holding a link or a pitch would make it spam's carrier.
    greeted = greeting_name(name)
    hello = words["mail_hello_named"].format(name=greeted) if greeted else words["mail_hello"]
    context = {
        "w": words, "lang": settings.language, "link": link, "subject": subject, "hello": hello,
        "newsletter": newsletter, "postal": settings.postal_address,
        "body": words["mail_body"].format(name=newsletter, email=email, hours=hours),
    }
    env = web.environment()
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = email
    msg["Subject"] = subject
    msg["Date"] = formatdate(now)
    msg["Message-ID"] = make_msgid(domain=settings.sender_domain)
    msg["List-Id"] = f"<{settings.effective_list_id}>"
    # RFC 3834 §5: `auto-replied` is for a response to a message; this one answers a web form,
    # not a message, so it is `auto-generated` (still no vacation reply should answer it).
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(env.get_template("serve/confirm_email.txt").render(**context))
    msg.add_alternative(
        env.get_template("serve/confirm_email.html").render(**context), subtype="html"
    )
    return msg.as_bytes(policy=SMTP)


#: A name: words of letters joined by a space, hyphen, apostrophe or dot ("J.-P. O’Neil").
_NAME = re.compile(r"[^\W\d_]+(?:[ '’.-]{1,2}[^\W\d_]+)*\.?")
_DOTTED = re.compile(r"[^\W\d_]\.[^\W\d_]{2}")  # example.org, www.x: a domain, not initials


def greeting_name(name: str, /) -> str | None:
    """`name` if it can greet the reader in the confirmation: at most 40 characters that read
    as a name; else None (the mail then says `Bonjour,`)."""
    name = name.strip()
    if len(name) <= 40 and _NAME.fullmatch(name) and not _DOTTED.search(name):
        return name
    return None


def sign_up_state(
    found: Confirmation, /, *, list_path: Path, rel: str, last_change: float | None
) -> SignUpState:
    """Whether the sign-up of `found` still waits for its confirmation.

    No state of its own: the link's issue time (signed in it) against what the list and
    the change log say about the address. `subscribed`: on the list already. `used`: not
    subscribed, but the address changed at or after the link was mailed (confirmed by
    this link or a later one, unsubscribed since, by any means the list or the log
    records): an old link never undoes that. `pending`: neither, so confirming is
    the reader's consent, as the first time. The change log (state/changes.db: every
    change `serve` and `newsletter unsubscribe` made, with its time: `last_change`) decides
    when it knows the address; else the list's `consent_at`.
    """
    key = found.email.lower()
    consent = 0.0
    for row in read_rows(list_path, rel=rel):
        if isinstance(row, InvalidRow) or row.email.lower() != key:
            continue
        if row.status == "subscribed":
            return "subscribed"
        consent = max(consent, _timestamp(row.fields.get("consent_at", "")))
    # The log has every change made here, to the microsecond; without one for the address
    # (state/ lost, a list from elsewhere), the list's consent_at, to the second.
    if last_change is not None:
        return "used" if last_change >= found.issued else "pending"
    return "used" if consent >= math.floor(found.issued) else "pending"


def _timestamp(iso: str) -> float:
    """`consent_at` (ISO 8601, as the service writes it) as seconds; 0 when empty or unreadable."""
    try:
        at = dt.datetime.fromisoformat(iso.strip())
    except ValueError:
        return 0.0
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).timestamp()
