"""The documentation site (mkdocs.yml) builds with --strict, and README.md's links work there."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from markdown_docs import load_docs_script

ROOT = Path(__file__).resolve().parents[2]


def hooks() -> ModuleType:
    return load_docs_script("mkdocs_hooks.py")


def test_readme_links_into_docs_become_links_between_pages() -> None:
    out = hooks().site_markdown(
        "1. [Architecture](docs/architecture.md), [WAHA](docs/gateways/waha.md#pacing)\n"
        "See [CHANGELOG.md](CHANGELOG.md) and [WAHA](https://waha.devlike.pro/).\n"
        "Figures: [benchmarks/README.md](benchmarks/README.md).\n"
    )
    assert out == (
        "1. [Architecture](architecture.md), [WAHA](gateways/waha.md#pacing)\n"
        "See [CHANGELOG.md](changelog.md) and [WAHA](https://waha.devlike.pro/).\n"
        "Figures: benchmarks/README.md.\n"
    )


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        reason = "MkDocs Material is not installed: pip install -e '.[docs]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI installs the docs extra before the tests)")
        pytest.skip(reason)
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    home = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "Schedule, edit, send and audit engagement posts" in home
    assert 'href="architecture/"' in home
    architecture = (tmp_path / "site" / "architecture" / "index.html").read_text(encoding="utf-8")
    assert 'class="mermaid"' in architecture
    assert (tmp_path / "site" / "reference" / "index.html").exists()
    assert (tmp_path / "site" / "changelog" / "index.html").exists()
