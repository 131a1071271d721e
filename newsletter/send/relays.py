"""Several relays: which SMTP servers a send goes through, and which one takes the next message.

    load_relays(settings)  -> [Relay]   NEWSLETTER_SMTP_RELAYS (a JSON list), else one relay
                                         from the NEWSLETTER_SMTP_* settings (the simple case)
    listed_relays(settings) -> RelayList | None   the listed ones and where, for `doctor`
    RelayPool                            shares by weight; takes a failing relay out for a while

`NEWSLETTER_SMTP_RELAYS` is a JSON list of objects, for example
`[{"name": "a", "host": "smtp.a.example", "port": 587, "username": "u", "password": "p",
"concurrency": 8, "rate": 20, "daily_quota": 50000, "weight": 3}, {"host": "10.0.0.5"}]`.
Every key but `host` is optional (port 587, starttls, 4 connections, weight 1: the `Relay` model).
A password is a secret: it is never in an error, a log line or the journal.

Without NEWSLETTER_SMTP_RELAYS, newsletter.toml may list relays as `[[relay]]` tables with
the same keys, but no `password` (a secret does not belong in that committed file) and so no
`username`.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from newsletter.errors import ConfigError
from newsletter.settings import Settings

SETTING = "NEWSLETTER_SMTP_RELAYS"
#: How long a failing relay is left out before it is tried again (doubled each time it fails).
PAUSE = 30.0
#: Connection failures or 421 replies in a row that take a relay out (a refused connection: 1).
STORM = 3


class Relay(BaseModel):
    """One SMTP relay, as NEWSLETTER_SMTP_RELAYS lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""  # how the summary, `report` and the journal name it; default host:port
    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    tls: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password: SecretStr = SecretStr("")
    concurrency: int = Field(4, ge=1, le=256)
    rate: float = Field(0.0, ge=0)  # messages per second, 0: no limit
    daily_quota: int | None = Field(None, ge=1)  # sent through it per UTC day, all issues
    weight: float = Field(1.0, gt=0)

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"

    def settings(self, base: Settings) -> Settings:
        """`base` pointed at this relay: what `SmtpTransport` reads."""
        return base.model_copy(
            update={
                "smtp_host": self.host,
                "smtp_port": self.port,
                "smtp_tls": self.tls,
                "smtp_username": self.username,
                "smtp_password": self.password,
                "smtp_concurrency": self.concurrency,
            }
        )


def load_relays(settings: Settings, *, project_file: Path | None = None) -> list[Relay]:
    """The relays of a send: those listed (`listed_relays`), else the one relay of the
    NEWSLETTER_SMTP_* settings."""
    listed = listed_relays(settings, project_file=project_file)
    if listed is not None:
        return listed.relays
    return [
        Relay(
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            concurrency=settings.smtp_concurrency,
            rate=0.0,  # NEWSLETTER_RATE_PER_SECOND applies to the whole send already
            daily_quota=None,
            weight=1.0,
        )
    ]


@dataclass(frozen=True)
class RelayList:
    """Relays as the user listed them, and where: what a fix must name."""

    relays: list[Relay]
    where: str  # NEWSLETTER_SMTP_RELAYS, or [[relay]] in newsletter.toml


def listed_relays(settings: Settings, *, project_file: Path | None = None) -> RelayList | None:
    """NEWSLETTER_SMTP_RELAYS, else the `[[relay]]` tables of newsletter.toml
    (`project_file`); None when neither lists any (the simple case). A bad list is a
    ConfigError naming the relay and the key, never a password."""
    raw = settings.smtp_relays.strip()
    if not raw:
        tables = _project_relays(project_file) if project_file is not None else None
        if project_file is None or tables is None:
            return None
        relays = parse_relays(tables, where="[[relay]]", path=project_file.name,
                              hint="see docs/sending.md, Several relays", secrets=False,
                              text=project_file.read_text(encoding="utf-8-sig"))
        return RelayList(relays, f"[[relay]] in {project_file.name}")
    hint = 'a JSON list such as [{"host": "smtp.example.org", "port": 587, "weight": 2}]'
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc.msg} at character {exc.pos}", field=SETTING,
                          hint=hint) from None
    return RelayList(parse_relays(items, where=SETTING, hint=hint), SETTING)


def parse_relays(
    items: Any,
    *,
    where: str,
    hint: str,
    path: str | None = None,
    secrets: bool = True,
    text: str | None = None,
) -> list[Relay]:
    """Relays from decoded JSON or the `[[relay]]` tables of newsletter.toml (`secrets`
    False: a password there is refused, as every secret in that committed file is; `text`:
    the file's, so that an error names its line)."""
    if not isinstance(items, list) or not items:
        raise ConfigError("must be a non-empty list of relays", path=path, field=where,
                          hint=hint)

    def line(n: int, key: str | None) -> int | None:
        return _table_line(text, n, key) if text is not None else None

    relays: list[Relay] = []
    for n, item in enumerate(items, 1):
        if not secrets and isinstance(item, dict) and ("password" in item or "username" in item):
            # Its password cannot be here, so its login could only be refused, relay by relay.
            key = "password" if "password" in item else "username"
            why = ("a secret does not belong in newsletter.toml" if key == "password"
                   else "a login needs its password, which does not belong in newsletter.toml")
            raise ConfigError(
                f"relay {n}: {why}", path=path, line=line(n, key), field=f"{where}.{key}",
                hint="list the relays that log in in NEWSLETTER_SMTP_RELAYS, in .env",
            )
        try:
            relays.append(Relay.model_validate(item))
        except ValidationError as exc:
            # An unknown key first: a typo (`hots`) also makes `host` missing.
            err = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
            key = ".".join(map(str, err["loc"])) or "relay"
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(key, list(Relay.model_fields), n=1)
                why = f"unknown key {key!r}" + (f" (did you mean {close[0]}?)" if close else "")
            else:  # err["input"] may be the password: only the message and the key are shown
                why = f"{key}: {err['msg']}"
            raise ConfigError(f"relay {n}: {why}", path=path, line=line(n, key), field=where,
                              hint=hint) from None
    labels = [r.label for r in relays]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise ConfigError(f"two relays are named {twice[0]}", path=path, field=where,
                          hint="give each relay its own `name`")
    return relays


def _table_line(text: str, n: int, key: str | None) -> int | None:
    """The line of `key = …` in the n-th `[[relay]]` table of `text` (of the table's header
    when the key is not written there): tomllib gives no positions."""
    tables = 0
    header = None
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("["):
            if tables == n:
                break  # the next table: the key is not in ours
            if re.fullmatch(r"\[\[\s*relay\s*\]\]\s*(#.*)?", stripped):
                tables += 1
                header = number if tables == n else header
        elif tables == n and key and re.match(rf"{re.escape(key)}\s*=", stripped):
            return number
    return header


def _project_relays(path: Path) -> Any:
    """The `relay` array of tables of newsletter.toml; None without the file or the key.

    The file's syntax and its other keys are settings.py's to check (and to report)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return data.get("relay")


@dataclass
class _State:
    relay: Relay
    taken: int = 0  # messages handed to it in this send
    used_today: int = 0  # sent through it today before this send (its daily quota)
    failures: int = 0  # connection failures or 421 in a row
    out_until: float = 0.0
    outages: int = 0
    gone: str | None = None  # out for the rest of the send, and why
    why: str = ""


@dataclass
class RelayPool:
    """Which relay takes the next message: each in proportion to its weight, the failing
    ones left out for a while (their messages go to the others), the used-up ones for good.

    A relay may run ahead of its share by its own number of connections, so that a slow
    relay does not hold the others back to its pace message by message.
    """

    relays: Sequence[Relay]
    used_today: dict[str, int] = field(default_factory=dict)
    pause: float = PAUSE
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._states = {
            r.label: _State(r, used_today=self.used_today.get(r.label, 0)) for r in self.relays
        }

    @property
    def several(self) -> bool:
        return len(self._states) > 1

    @property
    def gated(self) -> bool:
        """Must a connection ask before each message? (Not for one relay without a quota.)"""
        return self.several or any(r.daily_quota is not None for r in self.relays)

    def _up(self, s: _State, now: float) -> bool:
        quota = s.relay.daily_quota
        if quota is not None and s.used_today + s.taken >= quota and s.gone is None:
            s.gone = f"its daily quota of {quota} is used up"
        return s.gone is None and now >= s.out_until

    def may_take(self, label: str, now: float) -> bool:
        """May a connection of this relay take the next message now?"""
        me = self._states[label]
        if not self._up(me, now):
            return False
        shares = [s.taken / s.relay.weight for s in self._states.values() if self._up(s, now)]
        return me.taken / me.relay.weight <= min(shares) + me.relay.concurrency / me.relay.weight

    def took(self, label: str) -> None:
        self._states[label].taken += 1
        if self.several:  # a connection waiting for its share may go now
            self._notify()

    def taken(self) -> dict[str, int]:
        return {label: s.taken for label, s in self._states.items()}

    def succeeded(self, label: str) -> None:
        self._states[label].failures = 0

    def failed(self, label: str, why: str, now: float, *, at_once: bool = False) -> bool:
        """A connection failure or a 421; True when the relay is now taken out."""
        s = self._states[label]
        s.failures += 1
        if not at_once and s.failures < STORM:
            return False
        s.outages += 1
        s.failures = 0
        s.out_until = now + self.pause * 2 ** (s.outages - 1)
        s.why = why
        self._notify()
        return True

    def give_up(self, label: str, why: str) -> None:
        """Out for the rest of the send (a refused login: it will not get better by itself)."""
        self._states[label].gone = why
        self._notify()

    def all_gone(self) -> str | None:
        """Why no relay can take anything any more, or None while one can (or will)."""
        if any(s.gone is None for s in self._states.values()):
            return None
        return "; ".join(f"{s.relay.label}: {s.gone}" for s in self._states.values())

    def next_change(self, now: float) -> float:
        """Seconds until a relay that is out comes back (inf if none will)."""
        waits = [s.out_until - now for s in self._states.values()
                 if s.gone is None and s.out_until > now]
        return min(waits, default=math.inf)

    def outages(self) -> list[tuple[str, str]]:
        """(relay, why) for every relay taken out during the send."""
        return [(s.relay.label, s.gone or s.why) for s in self._states.values()
                if s.gone or s.outages]

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()
