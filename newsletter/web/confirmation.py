"""The double opt-in confirmation email, rendered from theme/web/serve/confirm_email.* (Jinja
stays in the web wing; the send wing only gets the bytes)."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from newsletter.settings import Settings
from newsletter.web import app as web
from newsletter.web.tokens import confirm_token


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
    # The name the reader typed, if any (the form collapses its spaces and cuts it at 100).
    hello = words["mail_hello_named"].format(name=name) if name else words["mail_hello"]
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
