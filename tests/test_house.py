"""The house keeps its shape: small rooms, one job each, and the wings' import rules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_outgrows_one_job() -> None:
    big = {
        str(p.relative_to(PACKAGE)): n
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert big == {}


def test_no_function_outgrows_one_screen() -> None:
    long: dict[str, int] = {}
    for p in _modules():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{p.relative_to(PACKAGE)}:{node.lineno} {node.name}"] = n
    assert long == {}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_send_wing_never_imports_compose_web_or_the_rendering_stack() -> None:
    heavy = ("newsletter.compose", "newsletter.web", "newsletter.cli", "jinja2", "mjml",
             "premailer", "markdown_it")
    found = {
        f"{p.relative_to(PACKAGE)} -> {name}"
        for p in sorted((PACKAGE / "send").glob("*.py"))
        for name in _imports(p)
        if name.startswith(heavy)
    }
    assert found == set()


def test_nothing_imports_the_cli_and_wing_inits_are_empty() -> None:
    users = {str(p.relative_to(PACKAGE)) for p in _modules()
             if p.name not in ("cli.py", "__main__.py") and "newsletter.cli" in _imports(p)}
    assert users == set()
    for wing in ("compose", "send", "web"):
        assert (PACKAGE / wing / "__init__.py").read_text(encoding="utf-8").strip() == ""
