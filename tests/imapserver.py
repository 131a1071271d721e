"""A real IMAP server for the tests: Debian's Dovecot, on 127.0.0.1, a throwaway configuration.

Started unprivileged: as the current user when it is not root. As root (CI containers)
Dovecot's login process refuses to run as root and its mail processes refuse uid 0, so
those run as Dovecot's own system users (dovenull, dovecot) with the mail folder in a
directory they can reach; the master and auth stay with the current user.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from smtpserver import free_port

USER, PASSWORD = "lettre", "imap-password-for-the-tests"

CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 0
mail_location = maildir:{mail}/%u/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {base}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


class Dovecot:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        root = os.geteuid() == 0
        me, group = pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
        self.mail = Path(tempfile.mkdtemp(prefix="dovecot-mail-")) if root else base / "mail"
        if root:
            shutil.chown(self.mail, "dovecot", "dovecot")
        (base / "run").mkdir()
        (base / "state").mkdir()
        (base / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        (base / "dovecot.conf").write_text(
            CONF.format(
                base=base,
                mail=self.mail,
                port=self.port,
                internal_user=me,
                internal_group=group,
                login_user="dovenull" if root else me,
                mail_user="dovecot" if root else me,
                mail_group="dovecot" if root else group,
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["/usr/sbin/dovecot", "-F", "-c", str(self.base / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"dovecot did not start: {(self.base / 'dovecot.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.mail, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        return {
            "NEWSLETTER_IMAP_HOST": "127.0.0.1",
            "NEWSLETTER_IMAP_PORT": str(self.port),
            "NEWSLETTER_IMAP_TLS": "none",
            "NEWSLETTER_IMAP_USERNAME": USER,
            "NEWSLETTER_IMAP_PASSWORD": PASSWORD,
        }

    def client(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(USER, PASSWORD)
        return imap

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        imap = self.client()
        try:
            for raw in messages:
                typ, _ = imap.append(folder, None, None, raw)
                assert typ == "OK"
        finally:
            imap.logout()

    def subjects(self, folder: str) -> list[str]:
        imap = self.client()
        try:
            imap.select(f'"{folder}"', readonly=True)
            _, data = imap.search(None, "ALL")
            out = []
            for n in (data[0] or b"").split():
                _, parts = imap.fetch(n, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                header = next(p[1] for p in parts if isinstance(p, tuple))
                out.append(header.decode().partition(":")[2].strip())
            return sorted(out)
        finally:
            imap.logout()
