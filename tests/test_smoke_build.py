from pathlib import Path

from conftest import RunCli


def test_build_writes_every_output(newsletter_root: Path, run_cli: RunCli) -> None:
    result = run_cli("build-issue", "issues/2026-11.toml", root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    out = newsletter_root / "build" / "2026-11"
    assert sorted(p.name for p in out.iterdir()) == [
        "email.eml", "email.html", "email.mjml", "email.txt", "manifest.json"
    ]
