"""One message to one reader outside an issue (the double opt-in confirmation), sent as the
issue is: the same relay settings, the same DKIM signature, the same envelope sender."""

from __future__ import annotations

from newsletter.send.dkim import Signer
from newsletter.send.transport import Outcome, SmtpTransport
from newsletter.settings import Settings


async def send_notice(
    data: bytes, /, *, recipient: str, settings: Settings, signer: Signer | None
) -> Outcome:
    """Sign `data` (CRLF line ends) with `signer` (Signer.from_settings, once per process)
    and send it through the relay.

    Never raises for a refused message (the Outcome says so); DeliveryError for a relay
    that refuses our login or TLS.
    """
    if signer is not None:
        data = signer.sign(data)
    transport = SmtpTransport(settings)
    try:
        return await transport.send(settings.sender_address, recipient, data)
    finally:
        await transport.close()
