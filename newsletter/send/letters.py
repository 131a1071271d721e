"""What leaves for each recipient (`Outgoing`), and the protocols the engine talks to."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from newsletter.send.message import MessageTemplate
from newsletter.send.subscribers import Subscriber
from newsletter.send.transport import Outcome

if TYPE_CHECKING:
    from newsletter.send.dkim import Signer
    from newsletter.send.signing import OffLoopSigner
    from newsletter.send.verp import Verp


class Transport(Protocol):
    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        wire_ready: bool = False,
        before_data: Awaitable[None] | None = None,
    ) -> Outcome:
        """`before_data`: awaited before the message itself is written (the journal's commit
        of its `sending` mark); if it raises, nothing is written and the error propagates."""
        ...

    async def close(self) -> None: ...


class Letter(Protocol):
    """What the engine needs of a message: its envelope sender, bytes and id per recipient."""

    def sender(self, sub: Subscriber) -> str: ...

    def data(self, sub: Subscriber) -> bytes: ...

    def message_id(self, sub: Subscriber) -> str: ...


@dataclass(frozen=True)
class Outgoing:
    """What leaves for one recipient: the envelope sender, and the bytes, signed if DKIM is on."""

    template: MessageTemplate
    signer: Signer | None = None
    verp: Verp | None = None
    off_loop: OffLoopSigner | None = None  # the signer's key operation in worker processes

    def sender(self, sub: Subscriber) -> str:
        if self.verp is None:
            return self.template.sender_address
        return self.verp.return_path(self.template.issue_id, sub.email)

    def data(self, sub: Subscriber, *, message_id: str | None = None) -> bytes:
        """`message_id`: this recipient's, if the caller has it already (a sha256 saved)."""
        data = self.template.personalize(sub, message_id=message_id)
        # Signed here and only here, right after personalising: nothing touches the bytes after.
        return self.signer.sign(data) if self.signer is not None else data

    @property
    def signs_ahead(self) -> bool:
        """Whether `data_async` gains from knowing the next readers (their messages are then
        signed while this one's travels)."""
        return self.off_loop is not None

    async def data_async(
        self,
        sub: Subscriber,
        *,
        message_id: str | None = None,
        ahead: Iterable[Subscriber] = (),
    ) -> bytes:
        """`data`, with the DKIM key operation off the event loop when a pool is set up;
        `ahead`: readers whose messages the send will ask for next, signed from now on."""
        off_loop = self.off_loop
        if off_loop is None:
            return self.data(sub, message_id=message_id)
        message_id = message_id or self.message_id(sub)
        signed = off_loop.signed_ahead(message_id)
        if signed is None:
            signed = off_loop.submit(self.template.personalize(sub, message_id=message_id))
        for reader in ahead:
            next_id = self.message_id(reader)
            off_loop.sign_ahead(next_id, self.template.personalize(reader, message_id=next_id))
        return await signed

    def message_id(self, sub: Subscriber) -> str:
        return self.template.message_id(sub)
