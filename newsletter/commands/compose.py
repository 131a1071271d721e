"""Commands of the compose wing: build-issue, init, new-issue."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from newsletter.clikit import Folder, command, given_path
from newsletter.console import err, out


@command("build-issue")
@click.argument("issue")
@click.option(
    "--strict", is_flag=True, help="Fail on warnings too (errors always fail; nothing is written)."
)
def build_issue_command(folder: Folder, issue: str, strict: bool) -> None:
    """Build build/<id>/ (email.html, email.txt, email.mjml, email.eml, manifest.json)."""
    from newsletter.compose.build import ChecksFailed, build_issue
    from newsletter.console import print_build, print_findings
    from newsletter.layout import issue_id_from_arg

    try:
        result = build_issue(
            folder.layout, issue_id_from_arg(issue), settings=folder.settings, strict=strict
        )
    except ChecksFailed as exc:
        print_findings(exc.findings)
        raise
    print_build(result, folder.layout)


def _ask(value: str | None, option: str, prompt: str, *, default: str | None = None) -> str:
    """The option's value; else a prompt on a terminal; else the default or a one-line error."""
    from newsletter.errors import ConfigError

    if value is not None:
        return value
    if sys.stdin.isatty():
        answer: str = click.prompt(prompt, default=default, show_default=bool(default))
        return answer
    if default is not None:
        return default
    raise ConfigError(
        "missing", field=option, hint=f"pass {option}; stdin is not a terminal, so nothing is asked"
    )


@command("init", folder=False)
@click.argument("dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The newsletter's name (the From display name).")
@click.option("--from", "sender", metavar="ADDRESS", help="The From address.")
@click.option("--language", type=click.Choice(["fr", "en"]), help="fr or en (default: fr).")
@click.option("--postal-address", help="The sender's postal address, in every email's footer.")
def init_command(
    dir: Path | None,
    name: str | None,
    sender: str | None,
    language: str | None,
    postal_address: str | None,
) -> None:
    """Start a newsletter in DIR (default: here): newsletter.toml, a sample article, an issue."""
    import datetime as dt

    from newsletter.skeleton import create_folder, first_issue_id, identity

    directory = dir  # click names the parameter after the DIR of the usage line
    root = directory or Path(".")
    if sender is None and not sys.stdin.isatty():  # every missing value in one error
        from newsletter.errors import ConfigError

        missing = ["--name", "--from"] if name is None else ["--from"]
        raise ConfigError(
            "missing", field=", ".join(missing),
            hint=f"pass {' and '.join(missing)}; stdin is not a terminal, so nothing is asked",
        )
    who = identity(
        name=_ask(name, "--name", "Newsletter name", default="" if sender else None),
        sender=_ask(sender, "--from", "From address (you@your-domain)"),
        language=_ask(language, "--language", "Language (fr or en)", default="fr"),
        postal_address=_ask(postal_address, "--postal-address", "Postal address", default=""),
    )
    today = dt.date.today()
    for rel in create_folder(root, who, today=today):
        out(f"created {root / rel}")
    cd = "" if directory is None else f"cd {directory} && "
    out("Next:")
    out(f"  {cd}newsletter build-issue {first_issue_id(today)}")
    out(f"  newsletter preview {first_issue_id(today)}")
    out("  newsletter new-issue")


@command("new-issue")
@click.argument("id", required=False)
def new_issue_command(folder: Folder, id: str | None) -> None:
    """Write issues/<id>.toml (default id: this month), picking the articles not yet sent."""
    import datetime as dt

    from newsletter.layout import issue_id_from_arg
    from newsletter.skeleton import plan_new_issue, write_new_issue

    layout = folder.layout
    wanted = issue_id_from_arg(id) if id else None
    # Checked whole first: on any error nothing is written.
    plan = plan_new_issue(
        layout, wanted, today=dt.date.today(), language=folder.settings.language
    )
    write_new_issue(layout, plan)
    out(f"created {layout.rel(plan.path)}")
    out(f"It would contain {len(plan.issue.articles)} article(s), as of today:")
    for article in plan.issue.articles:
        out(f"  {article.title} ({article.slug})")


@command("import")
@click.argument("source", metavar="SOURCE")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Only posts from this date.")
@click.option("--author", "author", metavar="KEY", help="The author of posts whose own is unknown.")
@click.option("--category", metavar="NAME", help="The category of posts that have none.")
@click.option("--dry-run", is_flag=True, help="Say what would be written; write nothing.")
def import_command(
    folder: Folder,
    source: str,
    since: dt.datetime | None,
    author: str | None,
    category: str | None,
    dry_run: bool,
) -> None:
    """Import the posts of an RSS/Atom feed or a WordPress export into content/articles/."""
    import re

    from newsletter.compose.importer import ImportOptions, import_feed

    options = ImportOptions(
        since=since.date() if since else None, author=author, category=category, dry_run=dry_run
    )
    # A file is named from the current folder, as every path on the command line; a URL as is.
    if not re.match(r"^https?://", source, re.I):
        source = str(given_path(source))
    done = import_feed(source, layout=folder.layout, options=options)
    for item in done:
        out(f"{item.status:<9} {item.path}  {item.title}")
        for warning in item.warnings:
            err(f"warning: {warning}")
    counts = {s: sum(i.status == s for i in done) for s in ("written", "updated", "unchanged")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    out(f"{summary}{' (dry run: nothing written)' if dry_run else ''}")


COMMANDS = [build_issue_command, init_command, new_issue_command, import_command]
