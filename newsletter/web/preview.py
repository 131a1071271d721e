"""`newsletter preview`: a live-reloading page on 127.0.0.1 showing one issue as readers get it.

    watchfiles: content/ templates/ issues/ .env
        └─ build_issue ─▶ build/<id>/ ─▶ Snapshot (filled html/text, findings) ─ version += 1
    HTTP  /             the page: desktop and 375 px frames, subject, From, text, size, checks
          /email.html   build/<id>/email.html, recipient placeholders filled
          /__reload     long poll: answers as soon as the version moves
          /issues       every issue; /issue/<id>/ shows what build/<id>/ holds
          /archive/     the public archive as `newsletter archive --all` would write it

The build is the one `build-issue` does (`build.build_issue`, into `build/<id>/`), and the
frames load that `email.html` with only the recipient placeholders filled. The reload script
lives in the page around the frames, injected at serve time (as mkdocs does), so the file on
disk stays byte for byte the one `send` will mail. A failed rebuild keeps serving the last good
build and shows the error in a banner (`#build-error`); the next good build removes it.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
import webbrowser
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, quote, unquote, urlsplit

from watchfiles import Change, DefaultFilter, watch

from newsletter import archive
from newsletter.compose.build import BuildResult, ChecksFailed, build_issue
from newsletter.compose.checks import GMAIL_CLIP_BYTES, Finding
from newsletter.compose.issue import load_spec
from newsletter.errors import BuildError, IssueError, NewsletterError, SubscriberError
from newsletter.layout import Layout
from newsletter.placeholders import fill
from newsletter.send.message import SAMPLE_READER, Manifest, MessageTemplate
from newsletter.send.subscribers import Subscriber, read_rows
from newsletter.settings import Settings, load_settings

HOST = "127.0.0.1"  # never another interface: the page may show a subscriber's data
DESKTOP_FRAME_PX = 640  # the 600 px email body and its margins
MOBILE_FRAME_PX = 375
#: How long a `/__reload` request is held before it answers "no change" (the page asks again).
LONG_POLL_SECONDS = 20.0
WATCHED_DIRS = ("content", "templates", "issues")

OnEvent = Callable[[str], None]


# -- listing and opening ------------------------------------------------------------------


def describe_issues(layout: Layout) -> list[str]:
    """One line per `issues/*.toml`: id, date, subject, and whether `build/<id>/` exists."""
    files = sorted(layout.issues_dir.glob("*.toml"))
    if not files:
        return [f"no issues in {layout.rel(layout.issues_dir)}/ (create issues/<id>.toml)"]
    width = max(len(p.stem) for p in files)
    lines: list[str] = []
    for path in files:
        issue_id = path.stem
        built = _built_at(layout, issue_id)
        state = f"built {built:%Y-%m-%d %H:%M}" if built else "not built"
        try:
            spec = load_spec(layout, issue_id)
        except NewsletterError as exc:
            lines.append(f"{issue_id:<{width}}  invalid: {exc}  [{state}]")
            continue
        lines.append(f"{issue_id:<{width}}  {spec.date.isoformat()}  {spec.subject}  [{state}]")
    return lines


def _built_at(layout: Layout, issue_id: str) -> dt.datetime | None:
    manifest = layout.build_dir(issue_id) / "manifest.json"
    try:
        return dt.datetime.fromtimestamp(manifest.stat().st_mtime)
    except OSError:
        return None


def open_built(layout: Layout, issue_id: str) -> Path:
    """Open `build/<id>/email.html` in the default browser, as built (placeholders unfilled).

    Raises BuildError when the issue has not been built.
    """
    path = layout.build_dir(issue_id) / "email.html"
    if not path.is_file():
        raise BuildError(
            "the issue has not been built",
            path=layout.rel(path),
            hint=f"run newsletter build-issue {issue_id}",
        )
    webbrowser.open(path.as_uri())
    return path


# -- what the page shows ------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One good build, personalised for display: what the page and its frames show."""

    issue_id: str
    subject: str
    preheader: str
    sender: str
    recipient: str
    html: str  # build/<id>/email.html with the recipient placeholders filled (HTML-escaped)
    text: str  # build/<id>/email.txt, filled
    html_bytes: int  # the size of build/<id>/email.html, as it will be sent
    findings: tuple[Finding, ...]
    built_at: float
    build_ms: int | None = None


def find_subscriber(path: Path, email: str, *, rel: str) -> Subscriber:
    """The row of the list file for `email` (case-insensitive). Raises SubscriberError."""
    wanted = email.strip().lower()
    for row in read_rows(path, rel=rel):
        if isinstance(row, Subscriber) and row.key == wanted:
            return row
    raise SubscriberError(
        f"no subscriber '{email}' in the list",
        path=rel,
        hint="use an address of the list file, or omit --as to preview as the sample reader",
    )


def snapshot_of(
    build_dir: Path,
    *,
    settings: Settings,
    subscriber: Subscriber,
    findings: Iterable[Finding] | None = None,
    build_ms: int | None = None,
) -> Snapshot:
    """Read `build_dir` (email.html, email.txt, manifest.json) and personalise it for display.

    `findings` default to the manifest's. Raises BuildError (not built, unreadable) or
    ConfigError (settings a message cannot be made with).
    """
    manifest = Manifest.read(build_dir)
    template = MessageTemplate.from_build(build_dir, settings=settings)
    html_path = build_dir / "email.html"
    html = html_path.read_text(encoding="utf-8")
    text = (build_dir / "email.txt").read_text(encoding="utf-8")
    if findings is None:
        data = json.loads((build_dir / "manifest.json").read_text(encoding="utf-8"))
        findings = [Finding(**w) for w in data.get("warnings", [])]
    values = template.values(subscriber)
    recipient = f"{subscriber.name} <{subscriber.email}>" if subscriber.name else subscriber.email
    return Snapshot(
        issue_id=manifest.issue_id,
        subject=template.subject,
        preheader=manifest.preheader,
        sender=settings.sender,
        recipient=recipient,
        html=fill(html, values, html=True),
        text=fill(text, values, html=False),
        html_bytes=html_path.stat().st_size,
        findings=tuple(findings),
        built_at=html_path.stat().st_mtime,
        build_ms=build_ms,
    )


# -- the live state -----------------------------------------------------------------------


class LivePreview:
    """The last good build of one issue, the last error, and a version the page waits on.

    Shared by the HTTP handler threads and the watcher threads; `rebuild` is serialised.
    """

    def __init__(
        self, layout: Layout, issue_id: str, *, settings: Settings, subscriber: Subscriber,
        on_event: OnEvent,
    ) -> None:
        self.layout = layout
        self.issue_id = issue_id
        self.settings = settings
        self.subscriber = subscriber
        self.on_event = on_event
        self.snapshot: Snapshot | None = None
        self.errors: list[str] = []
        self.error_at: float | None = None
        # A new token per server: a page left open across a restart reloads once it is back.
        self._boot = uuid.uuid4().hex[:8]
        self._count = 0
        self._changed = threading.Condition()
        self._build_lock = threading.Lock()
        self.closed = False

    @property
    def version(self) -> str:
        return f"{self._boot}-{self._count}"

    def rebuild(self, *, reason: str = "", reload_settings: bool = True) -> bool:
        """Build the issue again; on success show it, else keep the last good one and the error."""
        with self._build_lock:
            start = time.perf_counter()
            try:
                if reload_settings:  # so that an edit of .env applies
                    self.settings = load_settings(self.layout)
                result = build_issue(self.layout, self.issue_id, settings=self.settings)
                snapshot = self._snapshot(result, start)
            except ChecksFailed as exc:  # which checks, not only how many
                lines = [f"{f.severity} [{f.code}] {f.where}: {f.message}" for f in exc.findings]
                self._failed([*lines, str(exc)])
                return False
            except NewsletterError as exc:
                self._failed(str(exc).splitlines())
                return False
            except Exception as exc:  # a bug must not stop the preview: show it, keep serving
                self._failed([f"unexpected {type(exc).__name__}: {exc}"])
                return False
            with self._changed:
                self.snapshot = snapshot
                self.errors = []
                self.error_at = None
                self._bump()
            ms = snapshot.build_ms
            self.on_event(f"rebuilt in {ms} ms{reason}" if reload_settings else f"built in {ms} ms")
            return True

    def _snapshot(self, result: BuildResult, start: float) -> Snapshot:
        return snapshot_of(
            result.out_dir,
            settings=self.settings,
            subscriber=self.subscriber,
            findings=result.findings,
            build_ms=round((time.perf_counter() - start) * 1000),
        )

    def _failed(self, lines: list[str]) -> None:
        with self._changed:
            self.errors = lines or ["the build failed"]
            self.error_at = time.time()
            self._bump()
        for line in self.errors:
            self.on_event(f"error: {line}")

    def show_last_build(self) -> None:
        """After a failed first build: show what build/<id>/ holds from an earlier build, if any."""
        try:
            snapshot = snapshot_of(
                self.layout.build_dir(self.issue_id), settings=self.settings,
                subscriber=self.subscriber,
            )
        except (NewsletterError, OSError, ValueError):
            return
        with self._changed:
            self.snapshot = snapshot
            self._bump()

    def _bump(self) -> None:
        self._count += 1
        self._changed.notify_all()

    def view(self) -> tuple[Snapshot | None, list[str], float | None, str]:
        """One consistent reading of (snapshot, error lines, error time, version)."""
        with self._changed:
            return self.snapshot, list(self.errors), self.error_at, self.version

    def wait_for_change(self, seen: str, timeout: float) -> str:
        """The version once it differs from `seen`, or the same one after `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != seen or self.closed, timeout)
            return self.version

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()


# -- the watcher --------------------------------------------------------------------------


def _watch(
    paths: list[Path],
    *,
    recursive: bool,
    accept: Callable[[str], bool],
    on_change: Callable[[list[str]], None],
    stop: threading.Event,
    on_event: OnEvent,
) -> None:
    """Call `on_change` with the changed paths until `stop` is set; survive a vanished folder."""
    default = DefaultFilter()  # editor swap and backup files, .git, __pycache__

    def keep(change: Change, path: str) -> bool:
        return accept(path) and default(change, path)

    while not stop.is_set():
        try:
            for changes in watch(
                *paths, watch_filter=keep, stop_event=stop, recursive=recursive,
                raise_interrupt=False, debounce=800, step=50,
            ):
                on_change(sorted({path for _change, path in changes}))
        except Exception as exc:  # e.g. a watched folder removed and made again
            on_event(f"error: watching {', '.join(map(str, paths))}: {exc}")
            stop.wait(1.0)


def start_watchers(
    preview: LivePreview, stop: threading.Event, on_event: OnEvent
) -> list[threading.Thread]:
    """content/, templates/, issues/ (recursively) and .env at the root: any change rebuilds."""
    layout = preview.layout

    def changed(paths: list[str]) -> None:
        names = ", ".join(layout.rel(Path(p)) for p in paths[:3])
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        preview.rebuild(reason=f" ({names}{more})")

    dirs = [layout.root / name for name in WATCHED_DIRS if (layout.root / name).is_dir()]
    env_file = str(layout.env_file)
    # Two watchers because notify's `recursive` is one flag per watcher: the folders in depth,
    # the root only at its top level (so that a .env created later is seen, build/ is not).
    jobs: list[tuple[list[Path], bool, Callable[[str], bool]]] = [
        (dirs, True, lambda path: True),
        ([layout.root], False, lambda path: path == env_file),
    ]
    threads = []
    for paths, recursive, accept in jobs:
        if not paths:
            continue
        thread = threading.Thread(
            target=_watch,
            args=(paths,),
            kwargs={
                "recursive": recursive, "accept": accept, "on_change": changed, "stop": stop,
                "on_event": on_event,
            },
            name=f"preview-watch-{'dirs' if recursive else 'root'}",
            daemon=True,
        )
        thread.start()
        threads.append(thread)
    return threads


# -- HTTP ---------------------------------------------------------------------------------


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True  # a long poll still open never holds up the shutdown

    def __init__(self, port: int, preview: LivePreview) -> None:
        self.preview = preview
        super().__init__((HOST, port), PreviewHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"


class PreviewHandler(BaseHTTPRequestHandler):
    server_version = "newsletter-preview"

    @property
    def preview(self) -> LivePreview:
        return cast(PreviewServer, self.server).preview

    def log_message(self, format: str, *args: object) -> None:
        pass  # the terminal shows builds, not one line per request (the page polls)

    def do_GET(self) -> None:
        server = cast(PreviewServer, self.server)
        # Only our own names: another site's page rebinding its DNS to 127.0.0.1 gets nothing.
        host = self.headers.get("Host", "")
        if host not in {f"{HOST}:{server.port}", f"localhost:{server.port}"}:
            self._send(HTTPStatus.FORBIDDEN, "text/plain", b"unexpected Host header\n")
            return
        url = urlsplit(self.path)
        path = url.path
        preview = self.preview
        if path == "/__reload":
            seen = parse_qs(url.query).get("v", [""])[0]
            version = preview.wait_for_change(seen, LONG_POLL_SECONDS)
            self._json({"version": version})
        elif path in ("/", "/index.html"):
            self._html(index_page(preview))
        elif path == "/email.html":
            self._email(preview.snapshot, "html")
        elif path == "/email.txt":
            self._email(preview.snapshot, "text")
        elif path in ("/issues", "/issues/"):
            self._html(issues_page(preview))
        elif path.startswith("/issue/"):
            self._other_issue(path.removeprefix("/issue/"))
        elif path == "/archive":
            self._redirect("/archive/")
        elif path.startswith("/archive/"):
            self._archive(path.removeprefix("/archive/"))
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, "image/x-icon", b"")
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

    def _other_issue(self, rest: str) -> None:
        """/issue/<id>/ and /issue/<id>/email.html: what build/<id>/ holds (no rebuild)."""
        issue_id, _, tail = rest.partition("/")
        preview = self.preview
        if issue_id == preview.issue_id and tail == "":
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        known = {p.stem for p in preview.layout.issues_dir.glob("*.toml")}
        if issue_id not in known or tail not in ("", "email.html"):
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"no such issue\n")
            return
        try:
            snapshot = snapshot_of(
                preview.layout.build_dir(issue_id), settings=preview.settings,
                subscriber=preview.subscriber,
            )
        except (NewsletterError, OSError, ValueError) as exc:
            self._html(static_page(preview, issue_id, None, str(exc)), HTTPStatus.NOT_FOUND)
            return
        if tail == "email.html":
            self._email(snapshot, "html")
        else:
            self._html(static_page(preview, issue_id, snapshot, None))

    def _archive(self, rest: str) -> None:
        """/archive/...: the archive generated in memory, built issues included (`--all`)."""
        preview = self.preview
        try:
            site = archive.generate(preview.layout, settings=preview.settings, include_unsent=True)
        except NewsletterError as exc:
            body = f"the archive cannot be generated:\n{exc}\n".encode()
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", body)
            return
        name = unquote(rest)
        if name == "" or name.endswith("/"):
            name += archive.INDEX
        if name in site.files:
            self._send(HTTPStatus.OK, archive.content_type(name), site.files[name])
        elif f"{name}/{archive.INDEX}" in site.files:
            self._redirect(f"/archive/{rest}/")
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not in the archive\n")

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _email(self, snapshot: Snapshot | None, part: str) -> None:
        if snapshot is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"no good build yet\n")
        elif part == "html":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", snapshot.html.encode())
        else:
            self._send(HTTPStatus.OK, "text/plain; charset=utf-8", snapshot.text.encode())

    def _html(self, page: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, "text/html; charset=utf-8", page.encode("utf-8"))

    def _json(self, data: dict[str, str]) -> None:
        self._send(HTTPStatus.OK, "application/json", json.dumps(data).encode())

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page reloaded while we answered


# -- pages --------------------------------------------------------------------------------

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;
 background:#e9e6e1}
header{display:flex;gap:12px;align-items:baseline;flex-wrap:wrap;padding:10px 20px;
 background:#1f2933;color:#f4f1ec}
header a{color:#fdba74}
header .muted{color:#b8c0ca}
#build-error{margin:12px 20px 0;padding:10px 14px;border:2px solid #b91c1c;border-radius:6px;
 background:#fef2f2;color:#7f1d1d}
#build-error pre{margin:6px 0 0;white-space:pre-wrap;font:13px/1.4 ui-monospace,Menlo,monospace}
.frames{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap;padding:16px 20px 8px}
figure{margin:0}
figcaption{font-weight:600;margin:0 0 6px;color:#52606d}
iframe{display:block;height:72vh;min-height:420px;border:1px solid #c8c2b8;background:#fff;
 box-sizing:content-box}
iframe#mobile{border-radius:14px;border-width:8px;border-color:#1f2933}
.empty{padding:40px;width:640px;background:#fff;border:1px dashed #c8c2b8}
.details{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:0 32px;
 padding:4px 20px 28px;max-width:1300px}
.details h2{font-size:15px;margin:18px 0 6px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 12px;margin:0}
dt{color:#52606d}dd{margin:0}
.bar{height:8px;width:100%;max-width:420px;background:#d9d4cc;border-radius:4px;overflow:hidden}
.bar span{display:block;height:100%;background:#15803d}
.bar.over span{background:#b91c1c}
.findings{margin:0;padding-left:18px}
.findings code{background:#fff7ed;padding:0 4px;border-radius:3px}
.ok{color:#15803d}
pre.text{background:#fff;border:1px solid #c8c2b8;padding:12px;max-height:520px;overflow:auto;
 white-space:pre-wrap;font:12.5px/1.45 ui-monospace,Menlo,monospace}
table.issues{border-collapse:collapse;margin:16px 20px}
table.issues td,table.issues th{padding:6px 12px;border-bottom:1px solid #c8c2b8;text-align:left}
@media (max-width:1100px){.details{grid-template-columns:1fr}}
"""

# Injected into the index page only, never into email.html (on disk or served): a long poll on
# /__reload; when the version moves the page reloads, keeping each frame's scroll position.
RELOAD_SCRIPT = """<script>
(() => {
  const version = %s;
  const KEY = "newsletter-preview-scroll";
  const frames = () => [...document.querySelectorAll("iframe[data-frame]")];
  window.addEventListener("load", () => {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (e) {}
    sessionStorage.removeItem(KEY);
    if (!saved) return;
    window.scrollTo(0, saved.page || 0);
    for (const f of frames()) {
      try { f.contentWindow.scrollTo(0, saved[f.id] || 0); } catch (e) {}
    }
  });
  const save = () => {
    const s = {page: window.scrollY};
    for (const f of frames()) {
      try { s[f.id] = f.contentWindow.scrollY; } catch (e) {}
    }
    sessionStorage.setItem(KEY, JSON.stringify(s));
  };
  const poll = () => {
    fetch("/__reload?v=" + encodeURIComponent(version), {cache: "no-store"})
      .then((r) => r.json())
      .then((d) => {
        if (d.version !== version) { save(); location.reload(); } else { poll(); }
      })
      .catch(() => setTimeout(poll, 1000));  // the server is restarting, or gone
  };
  poll();
})();
</script>"""


def _page(title: str, body: str, *, script: str = "") -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n{script}\n</body>\n</html>\n"
    )


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def _frames(src: str, snapshot: Snapshot | None, tag: str) -> str:
    if snapshot is None:
        return '<main class="frames"><div class="empty">No good build to show yet.</div></main>'
    # sandbox: no scripts run in the email, as in a mail client; same origin for the scroll.
    sandbox = 'sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox"'
    title = escape(snapshot.subject)
    return (
        '<main class="frames">\n'
        f'<figure><figcaption>Desktop · 600 px</figcaption>'
        f'<iframe id="desktop" name="desktop" data-frame src="{src}?v={tag}" '
        f'width="{DESKTOP_FRAME_PX}" style="width:{DESKTOP_FRAME_PX}px" {sandbox} '
        f'title="{title} (desktop)"></iframe></figure>\n'
        f'<figure><figcaption>Mobile · {MOBILE_FRAME_PX} px</figcaption>'
        f'<iframe id="mobile" name="mobile" data-frame src="{src}?v={tag}" '
        f'width="{MOBILE_FRAME_PX}" style="width:{MOBILE_FRAME_PX}px" {sandbox} '
        f'title="{title} (mobile)"></iframe></figure>\n'
        "</main>"
    )


def _details(snapshot: Snapshot | None) -> str:
    if snapshot is None:
        return ""
    share = snapshot.html_bytes / GMAIL_CLIP_BYTES
    over = snapshot.html_bytes > GMAIL_CLIP_BYTES
    size_note = (
        "over the limit: Gmail will clip this email" if over
        else f"{share:.0%} of the limit"
    )
    if snapshot.findings:
        items = "".join(
            f"<li><code>{escape(f.code)}</code> {escape(f.where)}: {escape(f.message)}</li>"
            for f in snapshot.findings
        )
        checks = f'<ul class="findings" id="findings">{items}</ul>'
    else:
        checks = '<p class="ok" id="findings">All checks passed.</p>'
    return f"""<section class="details">
<div>
<h2>Message</h2>
<dl>
<dt>Subject</dt><dd id="subject">{escape(snapshot.subject)}</dd>
<dt>Preheader</dt><dd id="preheader">{escape(snapshot.preheader) or "<em>(none)</em>"}</dd>
<dt>From</dt><dd id="from">{escape(snapshot.sender)}</dd>
<dt>To</dt><dd id="to">{escape(snapshot.recipient)}</dd>
</dl>
<h2>Size</h2>
<p id="size">email.html is <strong>{_kb(snapshot.html_bytes)}</strong>
({snapshot.html_bytes:,} bytes) against Gmail’s 102 KB clip limit: {size_note}.</p>
<div class="bar{" over" if over else ""}"><span style="width:{min(share, 1.0):.1%}"></span></div>
<h2>Checks ({len(snapshot.findings)})</h2>
{checks}
</div>
<div>
<h2>Plain-text part</h2>
<pre class="text" id="text-part">{escape(snapshot.text)}</pre>
</div>
</section>"""


def _error_banner(snapshot: Snapshot | None, errors: list[str], error_at: float | None) -> str:
    if not errors:
        return ""
    when = _clock(error_at) if error_at else ""
    shown = (
        f"showing the last good build ({_clock(snapshot.built_at)})"
        if snapshot else "nothing to show until a build succeeds"
    )
    lines = escape("\n".join(errors))
    return (
        f'<div id="build-error" role="alert"><strong>The build failed at {when}</strong> '
        f"— {shown}. Fix it and save: the page reloads.<pre>{lines}</pre></div>"
    )


def index_page(preview: LivePreview) -> str:
    """The live page of the served issue, with the reload script."""
    snapshot, errors, error_at, version = preview.view()
    banner = _error_banner(snapshot, errors, error_at)
    built = ""
    if snapshot is not None:
        took = f" in {snapshot.build_ms} ms" if snapshot.build_ms is not None else " (earlier)"
        built = f"built {_clock(snapshot.built_at)}{took}"
    subject = snapshot.subject if snapshot else ""
    header = (
        f"<header><strong>Preview {escape(preview.issue_id)}</strong>"
        f"<span>{escape(subject)}</span>"
        f'<span class="muted">as {escape(_who(preview.subscriber))} · {built}</span>'
        '<a href="/issues">all issues</a> <a href="/email.txt" target="_blank">text</a></header>'
    )
    body = "\n".join([
        header, banner, _frames("/email.html", snapshot, quote(version)), _details(snapshot),
    ])
    return _page(
        f"Preview {preview.issue_id} · {subject}", body,
        script=RELOAD_SCRIPT % json.dumps(version),
    )


def static_page(
    preview: LivePreview, issue_id: str, snapshot: Snapshot | None, problem: str | None
) -> str:
    """Another issue, as build/<id>/ holds it: no rebuild, no reload."""
    note = (
        f"build/{escape(issue_id)}/ as built; for a live preview run "
        f"<code>newsletter preview {escape(issue_id)}</code>"
    )
    header = (
        f"<header><strong>Issue {escape(issue_id)}</strong>"
        f'<span class="muted">{note}</span><a href="/">back to {escape(preview.issue_id)}</a>'
        '<a href="/issues">all issues</a></header>'
    )
    banner = (
        f'<div id="build-error" role="alert"><pre>{escape(problem)}</pre></div>' if problem else ""
    )
    tag = str(int(snapshot.built_at)) if snapshot else "0"
    body = "\n".join([
        header, banner, _frames(f"/issue/{quote(issue_id)}/email.html", snapshot, tag),
        _details(snapshot),
    ])
    return _page(f"Issue {issue_id}", body)


def issues_page(preview: LivePreview) -> str:
    layout = preview.layout
    rows = []
    for path in sorted(layout.issues_dir.glob("*.toml")):
        issue_id = path.stem
        built = _built_at(layout, issue_id)
        try:
            spec = load_spec(layout, issue_id)
            date, subject = spec.date.isoformat(), spec.subject
        except NewsletterError as exc:
            date, subject = "", f"invalid: {exc}"
        link = "/" if issue_id == preview.issue_id else f"/issue/{quote(issue_id)}/"
        state = (
            "live" if issue_id == preview.issue_id
            else f"built {built:%Y-%m-%d %H:%M}" if built else "not built"
        )
        rows.append(
            f'<tr><td><a href="{link}">{escape(issue_id)}</a></td><td>{escape(date)}</td>'
            f"<td>{escape(subject)}</td><td>{escape(state)}</td></tr>"
        )
    table = (
        '<table class="issues"><tr><th>Issue</th><th>Date</th><th>Subject</th><th></th></tr>'
        + "".join(rows) + "</table>"
    )
    header = (
        f'<header><strong>Issues</strong><a href="/">back to {escape(preview.issue_id)}</a>'
        '<a href="/archive/">public archive</a>'
        "</header>"
    )
    return _page("Issues", header + table)


def _who(subscriber: Subscriber) -> str:
    return f"{subscriber.name} <{subscriber.email}>" if subscriber.name else subscriber.email


# -- serve --------------------------------------------------------------------------------


def serve(
    layout: Layout,
    issue_id: str,
    *,
    settings: Settings,
    port: int,
    open_browser: bool,
    as_email: str | None,
    subscribers_path: Path,
    on_ready: Callable[[str], None],
    on_event: OnEvent,
    stop: threading.Event | None = None,
) -> None:
    """Build the issue, serve its preview on 127.0.0.1:`port` (0: a free one), rebuild on change.

    Blocks until Ctrl-C (or until `stop` is set), then closes the server and the watchers and
    returns. Raises before serving: IssueError (no such issue), SubscriberError (`as_email`
    not in the list), NewsletterError (the port is taken). A failed build, first or later,
    does not stop the preview: the page shows the error until a build succeeds.
    """
    subscriber = SAMPLE_READER
    if as_email is not None:
        subscriber = find_subscriber(subscribers_path, as_email, rel=layout.rel(subscribers_path))
    if not layout.issue_file(issue_id).is_file():
        load_spec(layout, issue_id)  # raises the IssueError that names the known issues
        raise IssueError("issue file not found", path=layout.rel(layout.issue_file(issue_id)))

    preview = LivePreview(
        layout, issue_id, settings=settings, subscriber=subscriber, on_event=on_event
    )
    if not preview.rebuild(reload_settings=False):
        preview.show_last_build()
    try:
        server = PreviewServer(port, preview)
    except OSError as exc:
        raise NewsletterError(
            f"cannot listen on {HOST}:{port}: {exc.strerror or exc}",
            hint="pick another port with --port, or omit it for a free one",
        ) from None

    closing = threading.Event()
    threads = [
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="preview-http",
            daemon=True,
        )
    ]
    threads[0].start()
    try:
        threads += start_watchers(preview, closing, on_event)
        on_ready(server.url)
        if open_browser:  # in a thread: a console browser would block until it quits
            threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        closing.set()
        preview.close()  # answers the long polls now
        server.shutdown()
        server.server_close()
        for thread in threads:
            thread.join(timeout=5)
    on_event("Preview stopped.")
