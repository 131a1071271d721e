"""Where `newsletter inbox` reads: an IMAP folder, a Maildir, or an mbox file.

    Mailbox.messages()   (key, raw bytes) of each message waiting
    Mailbox.done(key)    move it to the done folder: it is never handled twice
    Mailbox.close()

IMAP is the standard library's imaplib: the protocol steps needed are five (LOGIN, SELECT,
UID SEARCH, UID FETCH, UID MOVE or COPY+EXPUNGE), imaplib is maintained with Python itself,
and it adds no dependency; a richer client (imapclient) would buy nothing here. Messages are
fetched with BODY.PEEK so a message that fails is left unread and in place.
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import re
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from newsletter.errors import ConfigError, NewsletterError
from newsletter.settings import Settings

TIMEOUT = 30.0


class Mailbox(Protocol):
    def messages(self) -> Iterator[tuple[str, bytes]]: ...
    def done(self, key: str) -> None: ...
    def close(self) -> None: ...


class ImapBox:
    """A folder on an IMAP server (NEWSLETTER_IMAP_*)."""

    def __init__(self, settings: Settings) -> None:
        self.folder, self.done_folder = settings.imap_folder, settings.imap_done_folder
        self._where = f"{settings.imap_host}:{settings.imap_port}"
        try:
            self.imap = _connect(settings)
            self.imap.login(settings.imap_username, settings.imap_password.get_secret_value())
            self._check(self.imap.select(_quoted(self.folder)), f"cannot open {self.folder}")
            self.imap.create(_quoted(self.done_folder))  # NO if it exists: fine
        except (OSError, imaplib.IMAP4.error) as exc:
            raise _error(exc, self._where) from None

    def messages(self) -> Iterator[tuple[str, bytes]]:
        typ, data = self.imap.uid("SEARCH", "ALL")
        self._check((typ, data), "cannot list the messages")
        first = data[0] if data and isinstance(data[0], bytes) else b""
        for uid in first.decode().split():
            typ, parts = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((p[1] for p in parts if isinstance(p, tuple)), None)
            if typ == "OK" and isinstance(raw, bytes):
                yield uid, raw

    def done(self, key: str) -> None:
        if "MOVE" in self.imap.capabilities:  # RFC 6851; else the older three steps
            self._check(self.imap.uid("MOVE", key, _quoted(self.done_folder)), "cannot move")
            return
        self._check(self.imap.uid("COPY", key, _quoted(self.done_folder)), "cannot copy")
        self.imap.uid("STORE", key, "+FLAGS.SILENT", r"(\Deleted)")
        self.imap.expunge()

    def close(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.imap.logout()  # the work is done; a server hanging up early changes nothing

    def _check(self, answer: tuple[str, Sequence[object]], what: str) -> None:
        typ, data = answer
        if typ != "OK":
            first = data[0] if data else b""
            detail = first.decode("utf-8", "replace") if isinstance(first, bytes) else ""
            raise NewsletterError(f"IMAP: {what}: {detail}", path=self._where)


class FileBox:
    """A Maildir (its done folder a sub-folder) or an mbox (its done folder `<file>.done`)."""

    def __init__(self, path: Path, *, done_folder: str, shown: str) -> None:
        try:
            if path.is_dir():
                box = mailbox.Maildir(str(path), create=False)
                self.box: mailbox.Mailbox[mailbox.Message] = box
                try:
                    self.target: mailbox.Mailbox[mailbox.Message] = box.get_folder(done_folder)
                except mailbox.NoSuchMailboxError:
                    self.target = box.add_folder(done_folder)
            else:
                self.box = mailbox.mbox(str(path), create=False)
                self.target = mailbox.mbox(f"{path}.done", create=True)
                self.box.lock()
        except (OSError, mailbox.Error) as exc:
            raise NewsletterError(
                f"cannot read: {exc}", path=shown, hint="give a Maildir folder or an mbox file"
            ) from None

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for key in list(self.box.keys()):
            yield key, self.box.get_bytes(key)

    def done(self, key: str) -> None:
        self.target.add(self.box.get_bytes(key))
        self.target.flush()  # the copy is written before the original goes
        self.box.remove(key)

    def close(self) -> None:
        self.box.flush()
        if isinstance(self.box, mailbox.mbox):
            self.box.unlock()
        self.box.close()
        self.target.close()


def open_mailbox(path: Path | None, *, settings: Settings, shown: str) -> Mailbox:
    if path is not None:
        return FileBox(path, done_folder=settings.imap_done_folder, shown=shown)
    if not settings.imap_host:
        raise ConfigError(
            "no mailbox to read",
            path=".env",
            field="NEWSLETTER_IMAP_HOST",
            hint="set NEWSLETTER_IMAP_HOST (and _USERNAME, _PASSWORD), or give a Maildir or mbox",
        )
    return ImapBox(settings)


def _connect(settings: Settings) -> imaplib.IMAP4:
    host, port = settings.imap_host, settings.imap_port
    if settings.imap_tls == "tls":
        context = ssl.create_default_context()
        return imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=TIMEOUT)
    imap = imaplib.IMAP4(host, port, timeout=TIMEOUT)
    if settings.imap_tls == "starttls":
        imap.starttls(ssl.create_default_context())
    return imap


def _quoted(name: str) -> str:
    return '"' + re.sub(r'(["\\])', r"\\\1", name) + '"'


def _error(exc: Exception, where: str) -> NewsletterError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return NewsletterError(
        f"IMAP: {reason}",
        path=where,
        hint="check NEWSLETTER_IMAP_HOST, _PORT, _TLS, _USERNAME and _PASSWORD",
    )
