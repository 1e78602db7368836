"""The layout's promises, checked: what the worker and the web process load, and which
packages may import which. A new import across a boundary fails here, not in production."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules_loaded_by(*imports: str) -> set[str]:
    """Every module a fresh interpreter holds after importing these (a subprocess, so this
    test's own imports do not count)."""
    code = "import sys\n" + "".join(f"import {name}\n" for name in imports)
    code += "import json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))


def _imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from newsletter import devtools` names the module in its alias.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_worker_loads_no_dev_tool_and_no_browser_driver() -> None:
    loaded = _modules_loaded_by("scheduler", "newsletter.sending.worker")
    assert not {m for m in loaded if m.startswith("newsletter.devtools")}
    assert not {m for m in loaded if m.split(".")[0] in {"playwright", "pytest"}}


def test_the_web_process_loads_no_dev_tool_and_no_browser_driver() -> None:
    loaded = _modules_loaded_by("newsletter.web.app")
    assert not {m for m in loaded if m.startswith("newsletter.devtools")}
    assert not {m for m in loaded if m.split(".")[0] in {"playwright", "pytest"}}


def test_the_command_line_loads_a_dev_tool_only_when_its_command_runs() -> None:
    loaded = _modules_loaded_by("newsletter.cli")
    assert not {m for m in loaded if m.startswith("newsletter.devtools")}


def test_the_subscriber_package_never_imports_the_newsletter_package() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "subscribers").rglob("*.py")
        for name in _imported_names(path)
        if name == "newsletter" or name.startswith("newsletter.")
    }
    assert not offenders


def test_product_code_never_imports_the_dev_tools() -> None:
    """devtools may use the product; the product never reaches back, except the CLI's
    commands that exist to start a dev tool (sandbox, demo, preview), which import lazily."""
    offenders = set()
    for path in (ROOT / "newsletter").rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[1] in {"devtools", "cli"}:
            continue
        for name in _imported_names(path):
            if name.startswith("newsletter.devtools"):
                offenders.add(f"{relative}: {name}")
    assert not offenders
