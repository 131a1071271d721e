"""Settings: environment variables `NEWSLETTER_*`, then `.env`, then `newsletter.toml`.

Precedence, highest first: the environment > `<root>/.env` > `<root>/newsletter.toml` >
the defaults below. newsletter.toml holds the folder's non-secret settings under the names of
the variables without the prefix (`from`, `language`, `smtp_port`...); secrets stay in .env.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import tomllib
from contextvars import ContextVar
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from newsletter.errors import ConfigError
from newsletter.layout import PROJECT_FILE, Layout

PREFIX = "NEWSLETTER_"


class Settings(BaseSettings):
    """Every setting, documented one by one in `.env.example`."""

    # Unknown NEWSLETTER_* names are ignored by pydantic and reported by `unknown_names`,
    # so a typo is a warning rather than a silent default.
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", extra="ignore", populate_by_name=True
    )

    language: Literal["fr", "en"] = "fr"
    # No identity in the code (issue 11): the newsletter's name is the display name of `from`,
    # set in its newsletter.toml; empty, build and send say where to set it.
    sender: str = Field("", alias="NEWSLETTER_FROM")
    reply_to: str = ""
    list_id: str = ""
    postal_address: str = ""
    archive_dir: str = "site"
    archive_url: str = ""
    unsubscribe_url: str = ""
    unsubscribe_mailto: str = ""
    secret_key: SecretStr = SecretStr("")
    subscribers: str = "subscribers.csv"
    suppressions: str = "suppressions.csv"
    dkim_key_file: str = ""
    dkim_selector: str = ""
    dkim_domain: str = ""
    bounce_domain: str = ""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_timeout: float = Field(30.0, gt=0, le=600, allow_inf_nan=False)
    smtp_concurrency: int = Field(4, ge=1, le=256)
    rate_per_second: float = Field(0.0, ge=0, allow_inf_nan=False)
    max_per_connection: int = Field(100, ge=0)
    max_attempts: int = Field(5, ge=1, le=50)
    retry_delay: float = Field(1.0, ge=0, le=3600, allow_inf_nan=False)
    max_consecutive_failures: int = Field(25, ge=1)

    # mailin (issue 15, issue 10 part 3): bounces, complaints, `newsletter inbox`
    soft_bounce_limit: int = Field(3, ge=1)
    imap_host: str = ""
    imap_port: int = Field(993, ge=1, le=65535)
    imap_tls: Literal["tls", "starttls", "none"] = "tls"
    imap_username: str = ""
    imap_password: SecretStr = SecretStr("")
    imap_folder: str = "INBOX"
    imap_done_folder: str = "newsletter-done"

    # newsletter serve (issue 10): the reader-facing service (docs/serve.md)
    public_url: str = ""
    confirm_hours: int = Field(48, ge=1, le=24 * 30)
    trusted_proxies: str = ""

    @field_validator("public_url")
    @classmethod
    def _public_url_is_a_site(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (the address readers reach the service at)")
        return value.rstrip("/")

    @property
    def effective_unsubscribe_url(self) -> str:
        """NEWSLETTER_UNSUBSCRIBE_URL, else the service's page under NEWSLETTER_PUBLIC_URL."""
        if self.unsubscribe_url or not self.public_url:
            return self.unsubscribe_url
        return f"{self.public_url}/unsubscribe"

    # Relative links in articles (#12, import): the blog's address, the base of an article's
    # relative links and images when the article has no `url`.
    site_url: str = ""

    # Several relays (issue 14, newsletter/send/relays.py): a JSON list of relays; empty: the
    # one relay of the NEWSLETTER_SMTP_* settings above. Parsed (and its errors named) there.
    smtp_relays: str = ""
    # Send processes (issue 14, newsletter/send/processes.py): worker processes that each mail
    # a share of the list with their own connections, into the one journal; 1: one process.
    send_processes: int = Field(1, ge=1, le=64)

    @field_validator("sender")
    @classmethod
    def _sender_has_address(cls, value: str) -> str:
        if not value:
            return value
        _, addr = parseaddr(value)
        if "@" not in addr or any(c in value for c in "\r\n"):
            raise ValueError("must be an address such as 'Ma Lettre <lettre@my-domain.fr>'")
        return value

    # -- safety (issue 13): what reaches a header is one line ---------------------------------
    @field_validator(
        "list_id", "unsubscribe_mailto", "reply_to", "unsubscribe_url", "archive_url",
        "bounce_domain", "dkim_domain", "dkim_selector",
    )
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must be one line: a line break or control character would reach "
                             "the email's headers")
        return value

    @field_validator("unsubscribe_url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https://")
        return value

    @field_validator("archive_url")
    @classmethod
    def _archive_url_is_a_folder(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (the public address of the archive)")
        # Issue pages are <url><id>/: without the slash, `…/archive2026-11/`.
        return value if not value or value.endswith("/") else value + "/"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # newsletter.toml (issue 11): below the environment and .env, above the defaults.
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            ProjectFileSource(settings_cls),
            file_secret_settings,
        )

    def require_sender(self) -> str:
        """The From header; a ConfigError naming newsletter.toml when none is configured."""
        if not self.sender:
            raise ConfigError(
                "no sender configured",
                path=PROJECT_FILE,
                field="from",
                hint='add from = "Your Newsletter <letter@your-domain>" (or NEWSLETTER_FROM)',
            )
        return self.sender

    @field_validator("site_url")
    @classmethod
    def _site_url_is_http(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (the address of the blog)")
        # A base without its final slash would drop its last segment: /blog + img.jpg -> /img.jpg
        return value if not value or value.endswith("/") else value + "/"

    def archive_page_url(self, issue_id: str) -> str:
        """The public page of an issue in the archive, or "" without NEWSLETTER_ARCHIVE_URL."""
        return f"{self.archive_url}{quote(issue_id)}/" if self.archive_url else ""

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]

    @property
    def sender_domain(self) -> str:
        return self.sender_address.rpartition("@")[2]

    @property
    def effective_list_id(self) -> str:
        return self.list_id or f"newsletter.{self.sender_domain}"

    @property
    def effective_unsubscribe_mailto(self) -> str:
        return self.unsubscribe_mailto or self.sender_address


def env_name(field: str) -> str:
    info = Settings.model_fields[field]
    return info.alias if info.alias else PREFIX + field.upper()


def load_settings(layout: Layout) -> Settings:
    """Read the environment, `<root>/.env` and `<root>/newsletter.toml`; a bad value becomes a
    ConfigError naming the setting and the place its value came from."""
    read_env_file(layout)  # not UTF-8: one line naming it, before anything reads it
    project = read_project_file(layout.toml_file, rel=layout.rel(layout.toml_file))
    token = _PROJECT_VALUES.set(project)
    try:
        return Settings(_env_file=layout.env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        if field not in Settings.model_fields:  # the loc is the alias: NEWSLETTER_FROM
            field = next((f for f in Settings.model_fields if env_name(f) == field), field)
        raise _value_error(layout, field, str(err["msg"]).removeprefix("Value error, ")) from None
    finally:
        _PROJECT_VALUES.reset(token)


def _value_error(layout: Layout, field: str, msg: str) -> ConfigError:
    """A bad value, named where it came from: the highest source that sets it wins."""
    name = env_name(field) if field in Settings.model_fields else field
    if name.lower() in (k.lower() for k in os.environ):
        return ConfigError(msg, path="environment", field=name, hint="fix the variable")
    if layout.env_file.exists() and name in dotenv_values(layout.env_file):
        return ConfigError(
            msg, path=".env", field=name, hint="fix it in .env"
        )
    key = toml_key(field)
    if layout.toml_file.exists():
        text = layout.toml_file.read_text(encoding="utf-8-sig")
        return ConfigError(
            msg,
            path=layout.rel(layout.toml_file),
            line=_line_of_key(text, key),
            field=key,
            hint="fix it in newsletter.toml; docs/settings.md documents it",
        )
    return ConfigError(msg, field=name, hint="docs/settings.md documents it")


def unknown_names(layout: Layout) -> list[tuple[str, str | None]]:
    """NEWSLETTER_* names set in the environment or .env that no setting has (likely typos),
    each with the known name it is closest to, if one is close."""
    known = {env_name(f) for f in Settings.model_fields}
    names = {k for k in os.environ if k.startswith(PREFIX)}
    names |= {k for k in read_env_file(layout) if k.startswith(PREFIX)}
    return [(name, next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.8)), None))
            for name in sorted(names - known)]


# -- newsletter.toml (issue 11): the folder's own non-secret settings ---------------------------

#: The values read from the newsletter.toml being loaded, for `ProjectFileSource`: a source is
#: built by pydantic-settings from the class alone, so the file's values reach it this way.
_PROJECT_VALUES: ContextVar[dict[str, Any] | None] = ContextVar("newsletter_toml", default=None)


class ProjectFileSource(PydanticBaseSettingsSource):
    """newsletter.toml's values (already checked by `read_project_file`), keyed by field."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_PROJECT_VALUES.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_PROJECT_VALUES.get() or {})


def toml_key(field: str) -> str:
    """The name of a setting in newsletter.toml: the variable's, without the prefix."""
    return env_name(field).removeprefix(PREFIX).lower()


def _secret_fields() -> set[str]:
    return {f for f, info in Settings.model_fields.items() if info.annotation is SecretStr}


#: Tables of newsletter.toml that are not settings: each read by the module named.
TABLES = frozenset({"relay"})


def read_project_file(path: Path, *, rel: str) -> dict[str, Any]:
    """newsletter.toml as {field: value}; missing file: {}. Unknown keys, secrets, bad TOML or
    a file that is not UTF-8 are ConfigErrors naming the file and the line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x})",
            path=rel,
            line=raw[: exc.start].count(b"\n") + 1,
            hint="save the file as UTF-8",
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(
            "malformed TOML: " + re.sub(r"\s*\(at line.*\)", "", str(exc)),
            path=rel,
            line=int(at.group(1)) if at else None,
            hint="fix the TOML syntax",
        ) from None
    by_key = {toml_key(f): f for f in Settings.model_fields}
    secrets = _secret_fields()
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in TABLES:  # read by their own modules (`[[relay]]`: send/relays.py)
            continue
        field = by_key.get(key)
        line = _line_of_key(text, key)
        if field in secrets:
            raise ConfigError(
                "a secret does not belong in newsletter.toml",
                path=rel,
                line=line,
                field=key,
                hint=f"put it in .env as {env_name(field)}=… (never committed)",
            )
        if field is None:
            raise ConfigError(
                "unknown setting",
                path=rel,
                line=line,
                field=key,
                hint="docs/settings.md lists the names (those of .env without NEWSLETTER_)",
            )
        values[field] = value
    return values


def _line_of_key(text: str, key: str) -> int | None:
    """The line of `key = …` (or of a `[key]` table): tomllib gives no positions."""
    quoted = re.escape(key)
    rx = re.compile(
        rf"""^\s*(?:{quoted}|"{quoted}"|'{quoted}')\s*=|^\s*\[+\s*(?:{quoted}|"{quoted}")\s*[\].]"""
    )
    for number, line in enumerate(text.splitlines(), start=1):
        if rx.search(line):
            return number
    return None


_ENV_NAME = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=")


def read_env_file(layout: Layout) -> dict[str, str | None]:
    """`<root>/.env` as python-dotenv reads it ({} without one); not UTF-8: a ConfigError
    naming the line (python-dotenv would raise UnicodeDecodeError)."""
    try:
        data = layout.env_file.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 ({exc.reason} at byte {exc.start})",
            path=".env",
            line=data[: exc.start].count(b"\n") + 1,
            hint="save the file as UTF-8",
        ) from None
    # python-dotenv skips a line it cannot read with a warning on stderr (once per reader), and
    # the setting on it is silently unset: one error naming the line instead.
    # The line is never shown: it may hold a secret.
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            named = _ENV_NAME.match(binding.original.string)
            raise ConfigError(
                "its value cannot be read (an unclosed quote?)" if named
                else "not a NAME=value line",
                path=".env",
                line=binding.original.line,
                field=named[1] if named else None,
                hint="write NAME=value, quoting a value that has spaces or #; start a comment "
                "with #",
            )
    return dotenv_values(layout.env_file, encoding="utf-8")
