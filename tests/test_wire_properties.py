"""Every message is wire-safe whatever the subscriber values (issue 13, defect 5).

No line starts with a dot (messages go out without dot-stuffing), every line is at most 998
octets (RFC 5322), headers included, and the DKIM signature verifies (dkimpy, independently).
"""

from __future__ import annotations

import binascii
import email
import email.policy
from base64 import b64encode

import dkim
import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.send.dkim import Signer, load_key
from newsletter.send.message import MessageTemplate, qp_piece
from newsletter.send.subscribers import Subscriber
from newsletter.settings import Settings

DOMAIN = "coeursurparis.example"
HTML = "<p>{{ greeting }}</p><p>{{ name }} · {{ ville }}</p><p>{{ email }}</p>"
TEXT = "{{ greeting }}\n{{ name }}\n{{ ville }}\n{{ email }}\n"


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Signer, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    path.write_bytes(pem)
    spki = key.public_key().public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + b64encode(spki)
    return Signer(load_key(path, shown="dkim.pem"), selector="s1", domain=DOMAIN), record


def template(subject: str = "Lettre de novembre") -> MessageTemplate:
    return MessageTemplate(
        issue_id="2026-11", subject=subject, html=HTML, text=TEXT, language="fr",
        settings=Settings(sender=f"Lettre <lettre@{DOMAIN}>"),
    )


def assert_wire_safe(data: bytes) -> None:
    assert data.count(b"\n") == data.count(b"\r\n") and data.count(b"\r") == data.count(b"\r\n")
    for n, line in enumerate(data.split(b"\r\n")):
        assert not line.startswith(b"."), (n, line[:80])
        assert len(line) <= 998, (n, len(line), line[:80])


def assert_verifies(data: bytes, record: bytes) -> None:
    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        return record if (name.decode() if isinstance(name, bytes) else name).startswith("s1.") \
            else None

    assert dkim.verify(data, dnsfunc=lookup)


# -- the reproduced cases --------------------------------------------------------------------


@pytest.mark.parametrize("length", [76, 151, 226, 301])
def test_a_value_whose_dot_falls_at_a_line_start_is_never_a_dot_line(length: int) -> None:
    for dot_at in range(length - 4, length):
        value = bytearray(b"x" * length)
        value[dot_at] = ord(".")
        piece = qp_piece(bytes(value))
        assert_wire_safe(piece)
        assert binascii.a2b_qp(piece) == bytes(value)


def test_a_value_of_76_characters_ending_in_dots_arrives_whole(
    signer: tuple[Signer, bytes],
) -> None:
    ville = "paris11fr" + "." * 3
    ville = "x" * (76 - len(ville)) + ville
    data = signer[0].sign(template().personalize(Subscriber("a@example.fr", "A", fields={
        "ville": ville})))
    assert_wire_safe(data)
    assert_verifies(data, signer[1])
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert ville in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_an_ascii_subject_over_998_characters_is_folded() -> None:
    subject = " ".join(["Novembre"] * 150)  # 1,349 characters
    data = template(subject).personalize(Subscriber("a@example.fr", "A"))
    assert_wire_safe(data)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Subject"] == subject
    unbroken = "x" * 1200  # no space to fold at
    data = template(unbroken).personalize(Subscriber("a@example.fr", "A"))
    assert_wire_safe(data)
    assert email.message_from_bytes(data, policy=email.policy.default)["Subject"] == unbroken


@pytest.mark.parametrize(
    "name", ["Amélie " * 200, "A.B " * 300, "x" * 1500, "é" * 700, "Jean-Marc " * 120]
)
def test_a_long_name_is_folded_and_still_the_name(name: str) -> None:
    data = template().personalize(Subscriber("a@example.fr", name))
    assert_wire_safe(data)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == "a@example.fr"


# -- the property ----------------------------------------------------------------------------

ATEXT = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~"
LOCAL = st.lists(st.text(ATEXT, min_size=1, max_size=20), min_size=1, max_size=3).map(".".join)
LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20)
ADDRESS = st.builds(
    lambda local, labels: f"{local[:64].strip('.') or 'a'}@{'.'.join(labels)}.fr",
    LOCAL, st.lists(LABEL, min_size=1, max_size=3),
)
DOTTY = st.text(st.sampled_from("x.é =\t<>&\"'\r\n"), max_size=400)
VALUE = st.one_of(DOTTY, st.text(max_size=400))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=VALUE, address=ADDRESS, ville=VALUE, pad=st.integers(0, 160))
def test_any_subscriber_value_gives_a_wire_safe_message_that_verifies(
    signer: tuple[Signer, bytes], name: str, address: str, ville: str, pad: int
) -> None:
    sub = Subscriber(address, "n" * pad + name, fields={"ville": "v" * pad + ville})
    data = signer[0].sign(template().personalize(sub))
    assert_wire_safe(data)
    assert_verifies(data, signer[1])


