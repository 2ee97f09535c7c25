"""Collect the Python blocks of README.md and docs/**/*.md as tests: tests/markdown_docs.py."""

from markdown_docs import pytest_collect_file

__all__ = ["pytest_collect_file"]
