"""Per-recipient bytes: parsed with the `email` package exactly like a stdlib-built message."""

from __future__ import annotations

import binascii
import email
import email.policy
import random
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import SAMPLE_FROM

from newsletter.send.message import PLACEHOLDER_RE, MessageTemplate, qp, qp_piece
from newsletter.send.subscribers import Subscriber
from newsletter.settings import Settings

READER = Subscriber(
    email="amelie.durand@example.fr", name="Amélie Durand-Lefèvre", fields={"ville": "Paris, 11e"}
)


def template_from(built: Path, **settings: str) -> MessageTemplate:
    settings = {"sender": SAMPLE_FROM, **settings}  # the sample's newsletter.toml
    return MessageTemplate.from_build(built / "build" / "2026-11", settings=Settings(**settings))


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def stdlib_message(template: MessageTemplate, sub: Subscriber, html: str, text: str) -> bytes:
    """How the stdlib would build the same message (slowly)."""
    values = template.values(sub)
    fill = lambda s, esc: PLACEHOLDER_RE.sub(  # noqa: E731
        lambda m: __import__("html").escape(values[m.group(1)]) if esc else values[m.group(1)],
        s,
    )
    msg = EmailMessage()
    msg["Subject"] = template.subject
    msg["To"] = Address(sub.name, addr_spec=sub.email)
    msg.set_content(fill(text, False), cte="quoted-printable")
    msg.add_alternative(fill(html, True), subtype="html", cte="quoted-printable")
    return msg.as_bytes(policy=email.policy.SMTP)


def test_personalized_message_parses_like_the_stdlib_one(built: Path) -> None:
    build = built / "build" / "2026-11"
    html = (build / "email.html").read_text(encoding="utf-8")
    text = (build / "email.txt").read_text(encoding="utf-8")
    template = template_from(built)
    ours = parse(template.personalize(READER))
    theirs = parse(stdlib_message(template, READER, html, text))
    assert ours["Subject"] == theirs["Subject"]
    assert ours["To"].addresses == theirs["To"].addresses
    assert [p.get_content_type() for p in ours.iter_parts()] == [
        p.get_content_type() for p in theirs.iter_parts()
    ]
    for kind in ("plain", "html"):
        mine = ours.get_body((kind,)).get_content().replace("\r\n", "\n")
        ref = theirs.get_body((kind,)).get_content().replace("\r\n", "\n")
        assert mine == ref
    assert ours.defects == [] and all(p.defects == [] for p in ours.walk())


def test_lines_are_crlf_and_at_most_76_characters_in_the_body(built: Path) -> None:
    data = template_from(built).personalize(READER)
    assert b"\n" not in data.replace(b"\r\n", b"")
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert data.isascii()


def test_message_id_is_stable_per_issue_and_recipient(built: Path) -> None:
    t = template_from(built)
    a1 = parse(t.personalize(READER))["Message-ID"]
    a2 = parse(t.personalize(READER))["Message-ID"]
    other = parse(t.personalize(Subscriber(email="x@example.fr")))["Message-ID"]
    assert a1 == a2 != other
    assert a1.endswith("@coeursurparis.example>")


def test_a_missing_name_gives_a_greeting_without_it(built: Path) -> None:
    msg = parse(template_from(built).personalize(Subscriber(email="sans.nom@example.fr")))
    assert msg["To"].addresses[0].addr_spec == "sans.nom@example.fr"
    assert msg["To"].addresses[0].display_name == ""
    assert "\nBonjour,\r\n" in "\n" + msg.get_body(("plain",)).get_content()


def test_english_greeting_follows_the_issue_language(built: Path) -> None:
    t = MessageTemplate(
        issue_id="x",
        subject="Hello",
        html="<p>{{ greeting }}</p>",
        text="{{ greeting }}",
        language="en",
        settings=Settings(),
    )
    msg = parse(t.personalize(Subscriber(email="a@example.com", name="Ann Lee")))
    assert msg.get_body(("plain",)).get_content().startswith("Hello Ann,")


@pytest.mark.parametrize("evil", ["Zoé\r\nBcc: victim@example.com", "Zoé\nX-Evil: 1"])
def test_line_breaks_in_a_name_never_reach_the_headers(built: Path, evil: str) -> None:
    msg = parse(template_from(built).personalize(Subscriber(email="z@example.fr", name=evil)))
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert msg["To"].addresses[0].addr_spec == "z@example.fr"


def test_unsubscribe_url_needs_a_secret_key(built: Path) -> None:
    from newsletter.errors import ConfigError

    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY"):
        template_from(built, unsubscribe_url="https://example.fr/u")


def test_quoted_printable_pieces_decode_to_their_input_and_respect_76_columns() -> None:
    rng = random.Random(20261123)
    alphabet = "ab =..\t\nçé€<>&\"'"
    for _ in range(5000):
        data = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))).encode()
        for encoded in (qp(data), qp_piece(data)):
            assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
            # No line starts with a dot, so the message needs no SMTP dot-stuffing.
            assert not any(line.startswith(b".") for line in encoded.split(b"\r\n"))
            assert binascii.a2b_qp(encoded).replace(b"\r\n", b"\n") == data


def test_random_templates_and_values_fill_exactly() -> None:
    rng = random.Random(7)
    alphabet = "ab =.\n\tçé€<>&\"'"
    settings = Settings()
    for _ in range(300):
        parts = []
        for _ in range(rng.randint(0, 5)):
            parts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))))
            parts.append(rng.choice(["{{ name }}", "{{ email }}", "{{ ville }}"]))
        body = "".join(parts)
        t = MessageTemplate(
            issue_id="x", subject="S", html=body, text=body, language="fr", settings=settings
        )
        name = "".join(rng.choice(alphabet.replace("\n", "")) for _ in range(rng.randint(0, 60)))
        sub = Subscriber(email="a@example.fr", name=name, fields={"ville": name[::-1]})
        values = t.values(sub)
        expected = PLACEHOLDER_RE.sub(lambda m, v=values: v[m.group(1)], body)
        got = parse(t.personalize(sub)).get_body(("plain",)).get_content()
        assert got.replace("\r\n", "\n") == expected.replace("\r\n", "\n")


def test_a_template_filled_many_times_gives_the_bytes_of_a_fresh_one(built: Path) -> None:
    """Encoded values are kept from reader to reader (and dropped when there are too many):
    every message is still exactly what a template that never saw another reader makes."""
    from newsletter.send import message

    readers = [
        Subscriber(email=f"r{i}@example.fr", name=f"{first} Durand", fields={"ville": town})
        for i, (first, town) in enumerate(
            [("Zoé", "Paris"), ("Loïc", "Paris"), ("Zoé", "Lyon"), ("Ève", "<Nîmes> & co")] * 3
        )
    ]
    reused = template_from(built)
    old_size = message.CHUNK_CACHE_SIZE
    message.CHUNK_CACHE_SIZE = 3  # cleared several times over these readers
    try:
        for sub in readers:
            mid = reused.message_id(sub)
            assert reused.personalize(sub, now=0) == template_from(built).personalize(sub, now=0)
            assert reused.personalize(sub, message_id=mid, now=0) == reused.personalize(sub, now=0)
    finally:
        message.CHUNK_CACHE_SIZE = old_size
    assert 0 < len(reused._chunks) <= 4


@pytest.mark.parametrize(
    "address", ["a.b-c_d~e@x.org", "a+b@x.org", "zoé@x.fr", "a/b@x.org", "o'brien@x.ie", "@x"]
)
def test_the_unsubscribe_subject_quotes_the_address_as_urllib_does(address: str) -> None:
    from urllib.parse import quote

    from newsletter.send.headers import quote_address as _quote_address

    assert _quote_address(address) == quote(address)


@pytest.mark.parametrize("name", ["", "Zoé", "Zoé " * 40, "€" * 14, "€" * 15])
@pytest.mark.parametrize("chunk_bytes", [42, 10_000])
def test_encoded_words_split_only_between_characters_and_decode_to_the_name(
    name: str, chunk_bytes: int
) -> None:
    """RFC 2047: each word at most `chunk_bytes` of UTF-8, whole characters in each (a word
    must decode on its own), as few words as that allows; decoded, the name itself."""
    import base64
    import email.header
    import itertools

    from newsletter.send.headers import _encoded_words

    encoded = _encoded_words(name, chunk_bytes=chunk_bytes)
    if not name:
        assert encoded == ""
        return
    words = encoded.split("\r\n ")
    payloads = []
    for word in words:
        assert word.startswith("=?utf-8?b?") and word.endswith("?=")
        payloads.append(base64.b64decode(word[len("=?utf-8?b?") : -2]))
    assert all(len(p) <= chunk_bytes for p in payloads)
    assert "".join(p.decode("utf-8") for p in payloads) == name  # whole characters each
    # as few words as that allows: no word could have taken the next one's first character
    assert all(
        len(p) + len(nxt.decode("utf-8")[0].encode()) > chunk_bytes
        for p, nxt in itertools.pairwise(payloads)
    )
    decoded = email.header.make_header(email.header.decode_header(encoded.replace("\r\n", "")))
    assert str(decoded) == name
