"""Commands of what is served or opened: preview, open, archive."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.clikit import GIVEN_PATH, Folder, command
from newsletter.console import err, out


@command("preview")
@click.argument("issue", required=False)
@click.option("--port", type=int, default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--no-open", is_flag=True, help="Do not open a browser.")
@click.option("--as", "as_email", help="Personalise as this subscriber of the list file.")
@click.option("--subscribers", type=GIVEN_PATH, help="The subscriber list file.")
@click.option("--list", "list_issues", is_flag=True, help="List the issues and exit.")
def preview_command(
    folder: Folder,
    issue: str | None,
    port: int,
    no_open: bool,
    as_email: str | None,
    subscribers: Path | None,
    list_issues: bool,
) -> None:
    """Serve a live-reloading preview of an issue on 127.0.0.1 (desktop and mobile width)."""
    from newsletter.layout import issue_id_from_arg
    from newsletter.web import preview

    layout, settings = folder.layout, folder.settings
    if list_issues or issue is None:
        for line in preview.describe_issues(layout):
            out(line)
        if issue is None:
            return
    try:
        preview.serve(
            layout,
            issue_id_from_arg(issue),
            settings=settings,
            port=port,
            open_browser=not no_open,
            as_email=as_email,
            subscribers_path=folder.list_file(subscribers),
            on_ready=lambda url: out(f"Preview at {url} (Ctrl-C to stop)"),
            on_event=out,
        )
    except KeyboardInterrupt:  # the way to stop a preview: not an interruption
        out("Preview stopped.")


@command("open")
@click.argument("issue")
def open_command(folder: Folder, issue: str) -> None:
    """Open the built email.html in the default browser (no server)."""
    from newsletter.layout import issue_id_from_arg
    from newsletter.web import preview

    path = preview.open_built(folder.layout, issue_id_from_arg(issue))
    out(f"Opened {folder.layout.rel(path)}")


@command("archive")
@click.option("--all", "include_unsent", is_flag=True, help="Also archive the issues never sent.")
def archive_command(folder: Folder, include_unsent: bool) -> None:
    """Write the public archive (index, one page per sent issue, Atom feed) into site/."""
    from newsletter.archive import write_archive
    from newsletter.console import print_archive

    result = write_archive(folder.layout, settings=folder.settings, include_unsent=include_unsent)
    print_archive(result, folder.layout)




@command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="The port to listen on.")
def serve_command(folder: Folder, host: str, port: int) -> None:
    """Serve readers: one-click unsubscribe, sign-up with double opt-in, the archive."""
    from newsletter.web import service

    service.run(folder.layout, folder.settings, host=host, port=port,
                on_ready=lambda url: err(f"Serving {url} (Ctrl-C stops)"))


COMMANDS = [preview_command, open_command, archive_command, serve_command]
