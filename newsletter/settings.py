"""Settings: environment variables `NEWSLETTER_*`, then `.env` in the newsletter folder."""

from __future__ import annotations

import os
from email.utils import parseaddr
from typing import Literal
from urllib.parse import quote

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsletter.errors import ConfigError
from newsletter.layout import Layout

PREFIX = "NEWSLETTER_"


class Settings(BaseSettings):
    """Every setting, documented one by one in `.env.example`."""

    # Unknown NEWSLETTER_* names are ignored by pydantic and reported by `unknown_names`,
    # so a typo is a warning rather than a silent default.
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", extra="ignore", populate_by_name=True
    )

    language: Literal["fr", "en"] = "fr"
    sender: str = Field("Coeur sur Paris <lettre@coeursurparis.example>", alias="NEWSLETTER_FROM")
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
    smtp_timeout: float = Field(30.0, gt=0)
    smtp_concurrency: int = Field(4, ge=1, le=256)
    rate_per_second: float = Field(0.0, ge=0)
    max_per_connection: int = Field(100, ge=0)
    max_attempts: int = Field(5, ge=1, le=50)
    retry_delay: float = Field(1.0, ge=0)
    max_consecutive_failures: int = Field(25, ge=1)

    # Several relays (issue 14, newsletter/send/relays.py): a JSON list of relays; empty: the
    # one relay of the NEWSLETTER_SMTP_* settings above. Parsed (and its errors named) there.
    smtp_relays: str = ""
    # Send processes (issue 14, newsletter/send/processes.py): worker processes that each mail
    # a share of the list with their own connections, into the one journal; 1: one process.
    send_processes: int = Field(1, ge=1, le=64)

    @field_validator("sender")
    @classmethod
    def _sender_has_address(cls, value: str) -> str:
        _, addr = parseaddr(value)
        if "@" not in addr or any(c in value for c in "\r\n"):
            raise ValueError("must be an address such as 'Coeur sur Paris <lettre@example.fr>'")
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
    """Read the environment and `<root>/.env`; a bad value becomes a ConfigError naming it."""
    try:
        return Settings(_env_file=layout.env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        name = env_name(field) if field in Settings.model_fields else field
        source = ".env" if layout.env_file.exists() else "environment"
        raise ConfigError(
            err["msg"],
            path=source,
            field=name,
            hint="fix it in .env or the environment; .env.example documents every setting",
        ) from None


def unknown_names(layout: Layout) -> list[str]:
    """NEWSLETTER_* names set in the environment or .env that no setting has: likely typos."""
    known = {env_name(f) for f in Settings.model_fields}
    names = {k for k in os.environ if k.startswith(PREFIX)}
    if layout.env_file.exists():
        names |= {k for k in dotenv_values(layout.env_file) if k.startswith(PREFIX)}
    return sorted(names - known)
