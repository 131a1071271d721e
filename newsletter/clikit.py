"""What every `newsletter` command needs, once (as Flask's AppGroup gives its commands an app).

`command(...)` (and `FolderGroup.command`) adds `--root` and `--debug`, loads the folder's
`Layout` and `Settings` (warning about unknown setting names), and turns a `NewsletterError` or
`OSError` into one line on stderr and exit 1 (the traceback only with --debug). A command body
takes the loaded `Folder` first, prints through newsletter.console and returns its exit code.

Paths, the one rule: a path typed on the command line (an argument or an option: `GIVEN_PATH`,
`given_path`) is relative to the current folder, as for any Unix tool, wherever the newsletter
folder is; a path in a setting (NEWSLETTER_SUBSCRIBERS...) is relative to the newsletter
folder (`Layout.resolve`). `Folder.list_file` picks between the two for --subscribers.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from newsletter.console import err
from newsletter.errors import ExitCode

if TYPE_CHECKING:
    from newsletter.layout import Layout
    from newsletter.settings import Settings

ROOT_HELP = "The newsletter folder (default: the nearest newsletter.toml, here or above)."
Body = Callable[..., "int | None"]


@dataclass(frozen=True)
class Folder:
    """The newsletter folder a command runs in (`--root`), with its settings loaded."""

    layout: Layout
    settings: Settings

    def list_file(self, given: Path | None) -> Path:
        """`--subscribers FILE` (from the current folder), else NEWSLETTER_SUBSCRIBERS (from
        the newsletter folder)."""
        return given if given is not None else self.layout.resolve(self.settings.subscribers)


def given_path(typed: str | Path) -> Path:
    """A path typed on the command line, made absolute from the current folder (not from the
    newsletter folder: `newsletter bounces ../bounces/b1.eml` run in content/ reads the file
    next to content/). Nothing is resolved or checked here: the command says what is wrong."""
    return Path.cwd() / typed  # an absolute `typed` stays as it is


class GivenPath(click.Path):
    """`click.Path` for the paths of arguments and options: absolute, from the current folder."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(path_type=Path, **kwargs)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return given_path(os.fsdecode(super().convert(value, param, ctx)))


#: The type of every path argument and option of the commands (but --root and init's DIR,
#: which are folders made absolute where they are used, also from the current folder).
GIVEN_PATH = GivenPath()


def command(
    name: str, *, folder: bool = True, **kwargs: Any
) -> Callable[[Body], click.Command]:
    """A command for `FolderGroup.add_command`; `folder=False`: no --root, no `Folder` (`init`)."""

    def decorator(body: Body) -> click.Command:
        wrapped = in_folder(body) if folder else outside_folder(body)
        made: click.Command = click.command(name, **kwargs)(wrapped)  # type: ignore[no-untyped-call]
        return made

    return decorator


class FolderGroup(click.Group):
    """A click group whose commands run in a newsletter folder (as Flask's AppGroup runs its
    commands in an app context)."""

    def command(  # type: ignore[override]
        self, *args: Any, folder: bool = True, **kwargs: Any
    ) -> Callable[[Body], click.Command]:
        """`folder=False`: a command that makes a folder (`init`): no --root, no `Folder`."""

        def decorator(body: Body) -> click.Command:
            wrapped = in_folder(body) if folder else outside_folder(body)
            command: click.Command = super(FolderGroup, self).command(*args, **kwargs)(wrapped)
            return command

        return decorator


def in_folder(body: Body) -> Callable[..., None]:
    """`body(folder, **params)` with --root/--debug added and the errors turned into one line."""

    @functools.wraps(body)
    def run(*, root: Path | None, debug: bool, **params: Any) -> None:
        guarded(lambda: body(load_folder(root), **params), debug=debug)

    # click lists the options of the decorators top-down from a list built bottom-up: placed
    # first, --root and --debug come last in every command's --help, as they always have.
    params = run.__dict__.setdefault("__click_params__", [])
    params[:0] = [
        debug_option(),
        click.Option(
            ["--root"],
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            show_default=False,
            help=ROOT_HELP,
        ),
    ]
    return run


def debug_option() -> click.Option:
    return click.Option(["--debug"], is_flag=True, help="Show a traceback on errors.")


def outside_folder(body: Body) -> Callable[..., None]:
    """`body(**params)` with --debug and the one-line errors, for a command that needs no folder."""

    @functools.wraps(body)
    def run(*, debug: bool, **params: Any) -> None:
        guarded(lambda: body(**params), debug=debug)

    run.__dict__.setdefault("__click_params__", []).insert(0, debug_option())
    return run


def guarded(call: Callable[[], int | None], *, debug: bool) -> None:
    """Run a command's body: errors become one line, its return value the exit code."""
    from newsletter.errors import NewsletterError

    try:
        code = call()
    except BrokenPipeError:
        quiet_broken_pipe()
    except KeyboardInterrupt:
        err("interrupted")
        raise SystemExit(ExitCode.INTERRUPTED) from None
    except (NewsletterError, OSError) as exc:
        fail(exc, debug=debug)
    if code:
        raise SystemExit(code)


def load_folder(root: Path | None) -> Folder:
    """The folder of `--root DIR`, or the nearest newsletter.toml at or above the current one."""
    from newsletter.layout import Layout
    from newsletter.settings import load_settings, unknown_names

    layout = Layout.find(Path.cwd()) if root is None else Layout.given(root)
    for name, close in unknown_names(layout):
        guess = f"did you mean {close}?" if close else "no setting has this name"
        err(f"warning: unknown setting {name} (ignored; {guess})")
    return Folder(layout, load_settings(layout))


def fail(exc: BaseException, *, debug: bool) -> NoReturn:
    """One line per problem on stderr, exit 1; the traceback only with --debug."""
    from newsletter.errors import NewsletterError

    if debug:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, NewsletterError):
        err("\n".join(f"error: {line}" for line in str(exc).splitlines() or [""]))
    else:
        err(f"error: unexpected {type(exc).__name__}: {exc} (run again with --debug and report it)")
    raise SystemExit(ExitCode.USER_ERROR)


def quiet_broken_pipe() -> NoReturn:
    """The reader went away (`newsletter report X | head -1`): stop without a word.

    As Python's documentation on SIGPIPE says: point stdout at devnull so that the flush at
    exit does not fail a second time, and exit as a process killed by SIGPIPE would (141).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(ExitCode.BROKEN_PIPE)
