"""DKIM prepared once per issue: the static parts of every message canonicalised and hashed once."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from newsletter.send.dkim import DkimKey, Signer, _relaxed_body, _relaxed_header, _relaxed_lines


class IssueSigner(Signer):
    """A `Signer` prepared once for one issue: the per-message work shrinks to what differs.

    The body of every message is the template's static pieces with short per-recipient
    pieces between them (message.py). Relaxed body canonicalisation works line by line
    (only the trailing empty lines of the whole body are special), so a static piece that
    starts and ends at a line end is canonicalised here once; per message, the piece is
    found in the body (`bytes.find`, at memory speed) and only the bytes between pieces are
    canonicalised. The hash state after the leading static pieces is computed once and
    copied. Static headers (From, Subject, List-Id, ...) are canonicalised once too.
    A piece is kept from its first line break through its last, so that a field written
    just before it or just after it (on the same line) does not matter. Any piece not
    found, or not on a line boundary, falls back to the plain way: the
    result is byte for byte what `Signer.sign` makes (the tests check both with dkimpy).
    """

    MIN_PIECE = 64  # shorter static pieces are canonicalised with the bytes around them
    MAX_CACHED_HEADERS = 64

    def __init__(
        self, key: DkimKey, *, selector: str, domain: str, static_pieces: Iterable[bytes]
    ) -> None:
        super().__init__(key, selector=selector, domain=domain)
        lined = (_whole_lines(raw) for raw in static_pieces)
        self._pieces: list[tuple[bytes, bytes]] = [
            (raw, _relaxed_lines(raw)) for raw in lined if len(raw) >= self.MIN_PIECE
        ]
        # _states[i]: the hash after the canonical forms of pieces 0..i-1, when they open
        # the body back to back (the common case for the first few).
        self._states = [hashlib.sha256()]
        for _, canonical in self._pieces:
            state = self._states[-1].copy()
            state.update(canonical)
            self._states.append(state)
        self._headers: dict[bytes, bytes] = {}

    @classmethod
    def for_issue(cls, signer: Signer, static_pieces: Iterable[bytes]) -> IssueSigner:
        return cls(
            signer.key, selector=signer.selector, domain=signer.domain,
            static_pieces=static_pieces,
        )

    def body_hash(self, body: bytes) -> bytes:
        pos = 0
        leading = 0  # how many pieces open the body back to back
        spans: list[tuple[int, int, bytes]] = []  # (start, end, canonical) of found pieces
        for i, (raw, canonical) in enumerate(self._pieces):
            at = _find(body, raw, pos)
            if at < 0 or (at and body[at - 2 : at] != b"\r\n"):
                continue
            if at == pos and leading == i:
                leading += 1
            spans.append((at, at + len(raw), canonical))
            pos = at + len(raw)
        h = self._states[leading].copy()
        pos = spans[leading - 1][1] if leading else 0
        for start, end, canonical in spans[leading:]:
            if start > pos:
                h.update(_relaxed_lines(body[pos:start]))
            h.update(canonical)
            pos = end
        h.update(_relaxed_body(body[pos:]))  # the tail: trailing empty lines go here
        return h.digest()

    def _canonical_header(self, raw: bytes) -> bytes:
        canonical = self._headers.get(raw)
        if canonical is None:
            canonical = _relaxed_header(raw)
            if len(self._headers) < self.MAX_CACHED_HEADERS:
                self._headers[raw] = canonical
        return canonical


def _whole_lines(piece: bytes) -> bytes:
    """The lines a static piece holds whole, wherever it lands: from its first line break
    (a field may come just before it, on the same line) through its last one (and just
    after it). Canonicalising them once is then right whatever the fields hold."""
    first = piece.find(b"\r\n")
    last = piece.rfind(b"\r\n")
    if first < 0 or first == last:
        return b""
    return piece[first + 2 : last + 2]


def _find(body: bytes, piece: bytes, start: int) -> int:
    """`body.find(piece, start)` without its cost per call for a long piece (CPython
    prepares the needle each time: ~10 µs for 26 KB): its first bytes are found, then the
    whole compared in place."""
    head = piece[:48]
    at = body.find(head, start)
    while at >= 0 and not body.startswith(piece, at):
        at = body.find(head, at + 1)
    return at
