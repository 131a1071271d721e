"""Benchmark DKIM signing: what `Signer.sign` adds to each message; prints figures, asserts nothing.

    .venv/bin/python bench/dkim.py [--calls 100] [--repeat 5]

The sample issue 2026-11 is built once in a temporary copy of the sample folder; each call
personalises the message for a distinct recipient (as `send` does), then signs it. Printed,
as the median over --repeat rounds of --calls calls, in µs per message:

(1) personalize() alone (the baseline), personalize + sign with RSA 2048, with Ed25519, and
    the cost of signing alone (the difference) as a ratio to personalize();
(2) where the signing time goes: dkimpy's parse of the message, the relaxed body hash, and
    the signature itself: dkimpy's RSA (pure Python) or Ed25519 (PyNaCl), beside the same RSA
    signature made by OpenSSL (`cryptography`) for comparison;
(3) the ceiling this puts on one send process (messages/s spent signing alone).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# This file is named dkim.py: its folder, first on sys.path, would hide dkimpy's `dkim`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

from cryptography.hazmat.primitives import serialization as ser  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: E402

ISSUE_ID = "2026-11"


def make_root(tmp: Path) -> Path:
    root = tmp / "letter"
    root.mkdir()
    for name in ("content", "templates", "issues"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")  # its identity
    return root


def per_call_us(fn: Callable[[int], object], *, calls: int, repeat: int) -> float:
    """Median over `repeat` rounds of the mean µs per call; fn(i) gets a distinct i."""
    rounds = []
    for r in range(repeat):
        start = time.perf_counter()
        for i in range(calls):
            fn(r * calls + i)
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name in [k for k in os.environ if k.startswith("NEWSLETTER_")]:
        del os.environ[name]  # the developer's own settings must not change what is measured

    import dkim

    from newsletter.compose.build import build_issue
    from newsletter.layout import Layout
    from newsletter.send.dkim import Signer, load_key
    from newsletter.send.message import MessageTemplate
    from newsletter.send.subscribers import Subscriber
    from newsletter.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        root = make_root(Path(tmp))
        layout = Layout.at(root)
        settings = load_settings(layout)
        build_issue(layout, ISSUE_ID, settings=settings)
        template = MessageTemplate.from_build(layout.build_dir(ISSUE_ID), settings=settings)

        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ed_key = ed25519.Ed25519PrivateKey.generate()
        signers = {}
        for kind, key in (("rsa", rsa_key), ("ed25519", ed_key)):
            path = root / f"{kind}.pem"
            path.write_bytes(
                key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
            )
            signers[kind] = Signer(
                load_key(path, shown=path.name), selector="bench", domain=settings.sender_domain
            )

        def reader(i: int) -> Subscriber:
            return Subscriber(email=f"lecteur{i:06d}@example.fr", name=f"Lecteur {i}")

        calls, repeat = args.calls, args.repeat
        sample = template.personalize(reader(0))
        print(
            f"issue {ISSUE_ID}: {len(sample) / 1024:.1f} KB per message; median of {repeat} "
            f"rounds of {calls} calls (distinct recipients), µs per message"
        )
        base = per_call_us(lambda i: template.personalize(reader(i)), calls=calls, repeat=repeat)
        rsa_total = per_call_us(
            lambda i: signers["rsa"].sign(template.personalize(reader(i))),
            calls=calls,
            repeat=repeat,
        )
        ed_total = per_call_us(
            lambda i: signers["ed25519"].sign(template.personalize(reader(i))),
            calls=calls,
            repeat=repeat,
        )
        print("(1) per message")
        print(f"    personalize()                      {base:9.1f} µs")
        for kind, total in (("RSA 2048", rsa_total), ("Ed25519", ed_total)):
            sign = total - base
            print(
                f"    personalize() + sign, {kind:<9}    {total:9.1f} µs   signing alone "
                f"{sign:9.1f} µs = {sign / base:5.1f} × personalize()"
            )

        messages = [template.personalize(reader(i)) for i in range(calls)]
        def dkimpy_sign(kind: str) -> Callable[[int], object]:
            key = signers[kind].key
            if kind == "rsa":
                pem = key.private.private_bytes(
                    ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption()
                )
            else:
                pem = base64.b64encode(
                    key.private.private_bytes(
                        ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption()
                    )
                )
            names = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                     b"content-type", b"list-id", b"list-unsubscribe"]
            return lambda i: dkim.sign(
                messages[i % calls], b"nl", b"coeursurparis.example", pem,
                canonicalize=(b"relaxed", b"relaxed"), include_headers=names,
                signature_algorithm=key.algorithm,
            )

        print("(2) against dkimpy's own signing (the baseline, same messages)")
        for kind, total in (("rsa", rsa_total), ("ed25519", ed_total)):
            theirs = per_call_us(dkimpy_sign(kind), calls=max(calls // 5, 10), repeat=repeat)
            ours = total - base
            print(
                f"    {kind:<8} ours {ours:9.1f} µs   dkimpy {theirs:9.1f} µs   "
                f"ratio ours/dkimpy {ours / theirs:5.3f}"
            )
        print("(3) messages/s one process can sign, signing alone")
        for kind, total in (("RSA 2048", rsa_total), ("Ed25519", ed_total)):
            print(f"    {kind:<9} {1e6 / (total - base):9.0f} /s")


_NACL: dict[bytes, object] = {}


def _nacl_sign(seed_b64: bytes) -> bytes:
    import nacl.encoding
    import nacl.signing

    key = _NACL.get(seed_b64)
    if key is None:
        key = _NACL[seed_b64] = nacl.signing.SigningKey(
            seed_b64, encoder=nacl.encoding.Base64Encoder
        )
    assert isinstance(key, nacl.signing.SigningKey)
    return bytes(key.sign(b"0" * 32).signature)


if __name__ == "__main__":
    main()
