"""One message outside an issue's send: the double opt-in confirmation, `send --test-to`.
Sent as the issue is: the same relays, the same DKIM signature, the same envelope sender.

    send_one(sender, recipient, data, relays=..., settings=...)  -> (Outcome, relay label)
    send_notice(data, recipient=..., settings=..., signer=..., relays=...)  -> Outcome
"""

from __future__ import annotations

from collections.abc import Sequence

from newsletter.errors import DeliveryError
from newsletter.send.dkim import Signer
from newsletter.send.journal import Status
from newsletter.send.relays import Relay
from newsletter.send.transport import Outcome, SmtpTransport
from newsletter.settings import Settings


async def send_one(
    sender: str,
    recipient: str,
    data: bytes,
    *,
    relays: Sequence[Relay],
    settings: Settings,
    wire_ready: bool = False,
) -> tuple[Outcome, str]:
    """`data` through the first relay, by weight, that answers for it: one that cannot be
    reached, answers 421 or refuses the login or TLS is passed over for the next (as a send
    takes a failing relay out). A message written whole whose reply was lost is not sent
    again. Raises the last relay's DeliveryError when every relay refused the login or TLS."""
    error: DeliveryError | None = None
    outcome: Outcome | None = None
    label = ""
    for relay in sorted(relays, key=lambda r: -r.weight):
        transport = SmtpTransport(relay.settings(settings))
        try:
            outcome = await transport.send(sender, recipient, data, wire_ready=wire_ready)
        except DeliveryError as exc:  # the login, TLS: this relay cannot be used
            error = exc
            continue
        finally:
            await transport.close()
        label = relay.label
        relay_trouble = outcome.status is Status.DEFERRED and outcome.code in (None, 421)
        if not relay_trouble or outcome.unanswered:
            break
    if outcome is None:
        assert error is not None  # at least one relay: load_relays never returns none
        raise error
    return outcome, label


async def send_notice(
    data: bytes,
    /,
    *,
    recipient: str,
    settings: Settings,
    signer: Signer | None,
    relays: Sequence[Relay],
) -> Outcome:
    """Sign `data` (CRLF line ends) with `signer` (Signer.from_settings, once per process)
    and send it through the relays (`send_one`).

    Never raises for a refused message (the Outcome says so); DeliveryError when every relay
    refuses our login or TLS.
    """
    if signer is not None:
        data = signer.sign(data)
    outcome, _ = await send_one(
        settings.sender_address, recipient, data, relays=relays, settings=settings
    )
    return outcome
