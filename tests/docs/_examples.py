"""What every docs test needs: run an example as a reader would, and keep doc and file in step.

Each guard's doc (``docs/<guard>.md``) shows its runnable examples
(``docs/examples/<guard>/``) verbatim, each under its path; the tests run every file in
a fresh interpreter with warnings as errors, and lint and type-check the folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_LANGUAGES = {".py": "python", ".toml": "toml"}


def tool(name: str) -> str:
    """The path of a dev tool (ruff, mypy), or fail saying how to install it."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'", pytrace=False)
    return found


class Examples:
    """One guard's doc and its folder of examples."""

    def __init__(self, guard: str) -> None:
        self.guard = guard
        self.doc = ROOT / "docs" / f"{guard}.md"
        self.folder = ROOT / "docs" / "examples" / guard

    def names(self) -> set[str]:
        """The example files (Python ones, without a package marker)."""
        return {p.name for p in self.folder.glob("*.py") if p.name != "__init__.py"}

    def run(self, name: str, **env: str) -> list[str]:
        """Run one example in a fresh interpreter; return its stdout lines.

        The store URL is passed only when given, so an example never reaches a server the
        developer happens to have configured.
        """
        environ = {k: v for k, v in os.environ.items() if k != "SENDGUARD_STORE"} | env
        proc = subprocess.run(
            [sys.executable, "-W", "error", str(self.folder / name)],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout.splitlines()

    def assert_shown_verbatim(self, name: str) -> None:
        """The doc shows the file exactly as it is on disk, under its path."""
        source = (self.folder / name).read_text(encoding="utf-8")
        language = _LANGUAGES[Path(name).suffix]
        block = f"`docs/examples/{self.guard}/{name}`:\n\n```{language}\n{source}```\n"
        doc = self.doc.read_text(encoding="utf-8")
        assert block in doc, f"docs/{self.guard}.md does not show {name} as it is on disk"

    def assert_python_blocks_are_files(self) -> None:
        """Every Python block in the doc is one of the example files (none is made up)."""
        doc = self.doc.read_text(encoding="utf-8")
        blocks = re.findall(r"^```python\n(.*?)^```$", doc, flags=re.DOTALL | re.MULTILINE)
        sources = {(self.folder / n).read_text(encoding="utf-8") for n in self.names()}
        assert len(blocks) == len(sources)
        for block in blocks:
            assert block in sources, f"a Python block in the doc is no example file:\n{block}"

    def assert_ruff_clean(self, *also: str | Path) -> None:
        """ruff passes on the examples (and on `also`, the test file)."""
        paths = [str(self.folder), *(str(p) for p in also)]
        run = subprocess.run(
            [tool("ruff"), "check", *paths], cwd=ROOT, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr

    def assert_mypy_strict(self) -> None:
        """mypy --strict passes on the examples."""
        run = subprocess.run(
            [tool("mypy"), "--strict", "--no-error-summary", str(self.folder)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stdout + run.stderr
