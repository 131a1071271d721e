"""build/<id>/manifest.json: what a build made, read and written only here.

Written by `compose.build`, read by `send` (what to mail, and the content hash a resume is
bound to), `web` (the preview's details) and `archive` (the index's article list). One frozen
dataclass, with a format version so that a manifest from another version of the tool is
refused with a clear line instead of being half-understood.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from newsletter.errors import BuildError
from newsletter.findings import Finding

FORMAT = 1
FILE_NAME = "manifest.json"


@dataclass(frozen=True)
class ArticleDetail:
    """What the public archive lists for each article."""

    slug: str
    title: str
    category: str
    author: str
    url: str | None


@dataclass(frozen=True)
class Manifest:
    id: str
    subject: str
    preheader: str
    date: str  # ISO date of the issue
    number: int | None
    language: str
    mode: str
    articles: tuple[str, ...]
    article_details: tuple[ArticleDetail, ...]
    placeholders: tuple[str, ...]
    content_hash: str
    sizes: dict[str, int] = field(default_factory=dict)
    warnings: tuple[Finding, ...] = ()
    format: int = FORMAT

    @property
    def issue_id(self) -> str:
        return self.id

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "format": self.format,
            "id": self.id,
            "subject": self.subject,
            "preheader": self.preheader,
            "date": self.date,
            "number": self.number,
            "language": self.language,
            "mode": self.mode,
            "articles": list(self.articles),
            "article_details": [asdict(a) for a in self.article_details],
            "placeholders": list(self.placeholders),
            "content_hash": self.content_hash,
            "sizes": self.sizes,
            "warnings": [f.as_dict() for f in self.warnings],
        }
        return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")

    @classmethod
    def read(cls, build_dir: Path, *, shown: str | None = None) -> Manifest:
        """Read `build_dir/manifest.json`. Raises BuildError naming the file and what to run.

        `shown`: how the folder is named in messages (default `build/<id>`).
        """
        issue_id = build_dir.name
        where = shown or f"build/{issue_id}"
        rebuild = f"rebuild with `newsletter build-issue {issue_id}`"
        try:
            raw = (build_dir / FILE_NAME).read_bytes()
        except FileNotFoundError:
            raise BuildError(
                "the issue has not been built",
                path=where,
                hint=f"run `newsletter build-issue {issue_id}` first",
            ) from None
        try:
            return cls.from_dict(json.loads(raw.decode("utf-8")))
        except _OtherVersion as exc:
            raise BuildError(str(exc), path=f"{where}/{FILE_NAME}", hint=rebuild) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BuildError(
                f"unreadable manifest ({type(exc).__name__}: {exc})",
                path=f"{where}/{FILE_NAME}",
                hint=rebuild,
            ) from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = int(data.get("format", 1))  # builds made before the field are format 1
        if version != FORMAT:
            age = "newer" if version > FORMAT else "older"
            raise _OtherVersion(f"manifest format {version} is {age} than this tool's ({FORMAT})")
        return cls(
            id=str(data["id"]),
            subject=str(data["subject"]),
            preheader=str(data["preheader"]),
            date=str(data["date"]),
            number=None if data.get("number") is None else int(data["number"]),
            language=str(data["language"]),
            mode=str(data.get("mode", "excerpt")),
            articles=tuple(str(s) for s in data.get("articles", [])),
            article_details=tuple(
                ArticleDetail(**{k: d.get(k) for k in ("slug", "title", "category", "author")},
                              url=d.get("url"))
                for d in data.get("article_details", [])
            ),
            placeholders=tuple(str(p) for p in data["placeholders"]),
            content_hash=str(data["content_hash"]),
            sizes={str(k): int(v) for k, v in data.get("sizes", {}).items()},
            warnings=tuple(Finding(**w) for w in data.get("warnings", [])),
            format=version,
        )


class _OtherVersion(ValueError):
    """A manifest of another format version: refused, never half-understood."""


def read(path: Path, /, *, shown: str | None = None) -> Manifest:
    """Read a build's manifest: `path` is build/<id>/ or build/<id>/manifest.json.

    Raises BuildError naming the file and the rebuild to run (missing, corrupt, or another
    format version).
    """
    build_dir = path.parent if path.name == FILE_NAME and not path.is_dir() else path
    return Manifest.read(build_dir, shown=shown)
