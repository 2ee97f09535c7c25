"""MkDocs hooks (mkdocs.yml): README.md is the site's Home page, CHANGELOG.md its Changelog.

Both files stay where GitHub and PyPI show them; the site gets generated copies, so nothing
is written twice. README.md's links point into docs/ (``docs/http.md``): on the site they
point at the pages themselves; a link to a file that is not a page of the site (a script,
benchmarks/README.md) keeps its text and loses the link, which would lead nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GENERATED = {"index.md": "README.md", "changelog.md": "CHANGELOG.md"}
"""Site page -> the file at the repository root it is made from."""

_LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?\)")


def site_markdown(source: str) -> str:
    """A root file's Markdown with its repository-relative links made site-relative."""
    pages = {root: page for page, root in GENERATED.items()}

    def relink(match: re.Match[str]) -> str:
        text, target, anchor = match["text"], match["target"], match["anchor"] or ""
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:...
            return match[0]
        if target.startswith("docs/"):
            return f"[{text}]({target.removeprefix('docs/')}{anchor})"
        if target in pages:
            return f"[{text}]({pages[target]}{anchor})"
        return text

    return _LINK.sub(relink, source)


def on_files(files: Any, config: Any) -> Any:
    """Add the pages made from README.md and CHANGELOG.md."""
    from mkdocs.structure.files import File  # noqa: PLC0415 - site_markdown needs no mkdocs

    for page, root in GENERATED.items():
        text = (ROOT / root).read_text(encoding="utf-8")
        files.append(File.generated(config, page, content=site_markdown(text)))
    return files
