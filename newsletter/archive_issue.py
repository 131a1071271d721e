"""One issue as the public archive shows it: read from its build and the send journal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from newsletter.manifest import ArticleDetail

ArchivedArticle = ArticleDetail  # what the manifest records of each article


@dataclass(frozen=True)
class ArchivedIssue:
    id: str
    number: int | None
    date: dt.date
    subject: str
    preheader: str
    language: str
    articles: tuple[ArchivedArticle, ...]
    email_html: str  # build/<id>/email.html as built: recipient placeholders unfilled
    sent_at: float | None  # the first `sent` row in the journal; None: built, never sent

    @property
    def updated(self) -> str:
        """RFC 3339 (UTC): the first send, or the issue's date for an issue never sent."""
        if self.sent_at is not None:
            when = dt.datetime.fromtimestamp(int(self.sent_at), dt.UTC)
        else:
            when = dt.datetime.combine(self.date, dt.time(), dt.UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def authors(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.author for a in self.articles if a.author))
