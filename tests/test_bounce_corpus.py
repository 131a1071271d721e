"""`newsletter bounces` over flufl.bounce's corpus of real bounces (vendored with its licence).

Every address the corpus shows is put in the journal first, as if the newsletter had mailed
it: the journal check (forged bounces) then filters nothing, and any wrong pick shows.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from conftest import FIXTURES, RunCli
from journalseed import mailed_everyone_in

CORPUS = FIXTURES / "flufl_bounce"
EXPECTED: dict[str, dict[str, list[str]]] = json.loads((CORPUS / "expected.json").read_text())
_LINE_RE = re.compile(r"^(\S+)\.eml: (\S+) \S+ .*\((suppressed|already suppressed|[^)]*)\)$")


def measure(root: Path, run_cli: RunCli) -> dict[str, float]:
    folder = root / "corpus"
    folder.mkdir()
    for p in sorted((CORPUS / "data").glob("*.txt")):
        shutil.copy(p, folder / f"{p.stem}.eml")
    mailed_everyone_in(root, folder)
    result = run_cli("bounces", "corpus", cwd=root)
    assert result.exit_code == 0, result.stderr
    found: set[tuple[str, str]] = set()
    suppressed: set[tuple[str, str]] = set()
    for line in result.stdout.splitlines():
        m = _LINE_RE.match(line)
        if m:
            key = (m.group(1) + ".txt", m.group(2).lower())
            found.add(key)
            if m.group(3) in ("suppressed", "already suppressed"):
                suppressed.add(key)
    permanent = {(f, a.lower()) for f, e in EXPECTED.items() for a in e["permanent"]}
    temporary = {(f, a.lower()) for f, e in EXPECTED.items() for a in e["temporary"]}
    return {
        "found": len(found & (permanent | temporary)) / len(permanent | temporary),
        "suppressed": len(suppressed & permanent) / len(permanent),
        "temporary_suppressed": len(suppressed & temporary),
        "unexpected_suppressed": len(suppressed - permanent),
    }


def test_the_corpus_is_read_as_flufl_bounce_expects(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    figures = measure(newsletter_root, run_cli)
    print(figures)
    assert figures["found"] >= 0.95, figures
    assert figures["suppressed"] >= 0.90, figures
    assert figures["temporary_suppressed"] == 0, figures
    assert figures["unexpected_suppressed"] == 0, figures
