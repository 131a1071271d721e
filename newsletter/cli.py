"""The `newsletter` command: a thin shell over the core. Each command imports its stage late.

The commands live by wing in newsletter/commands/ (compose, send, web); newsletter/clikit.py
gives each one --root/--debug, the loaded folder, and errors as one line.
"""

from __future__ import annotations

import os

import click

from newsletter.clikit import FolderGroup, quiet_broken_pipe
from newsletter.commands import compose, send, web
from newsletter.console import err
from newsletter.errors import ExitCode as ExitCode  # re-exported: the tests import it here

#: The name on PyPI (`pip install newsletter-press`): "newsletter" there is another project.
DISTRIBUTION = "newsletter-press"


@click.group(cls=FolderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION, message="newsletter %(version)s")
def app() -> None:
    """Turn a folder of Markdown articles into a newsletter issue and mail it.

    ISSUE is an issue id (2026-11) or the path of its file (issues/2026-11.toml).
    """


def main() -> None:
    # pydantic looks for plugins in every installed distribution's entry points before its
    # first model (~20 ms of each start); a command-line tool has no use for them. A value
    # the user set is kept (empty: plugins on).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        app.main(prog_name="newsletter")
    except KeyboardInterrupt:  # outside a command's body (which exits 130 itself)
        err("interrupted")
        raise SystemExit(ExitCode.INTERRUPTED) from None
    except BrokenPipeError:
        quiet_broken_pipe()


for _module in (compose, send, web):
    for _command in _module.COMMANDS:
        app.add_command(_command)
