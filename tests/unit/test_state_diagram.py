"""The task life-cycle diagram of docs/architecture.md is what docs/gen_state_diagram.py makes
of engagequeue._state's transition table: a change to the table fails here until regenerated."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from engagequeue import TaskStatus
from engagequeue._state import FINAL_STATUSES, allowed_moves
from markdown_docs import load_docs_script

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    return load_docs_script("gen_state_diagram.py")


def test_the_committed_diagram_is_up_to_date() -> None:
    gen = generator()
    page = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    assert gen.render() in page, (
        "the state diagram in docs/architecture.md is stale: run python docs/gen_state_diagram.py"
    )
    assert gen.updated(page) == page


def test_the_diagram_has_one_arrow_per_move_of_the_table_and_no_other() -> None:
    diagram = generator().render()
    arrows = re.findall(r"^    (\w+) --> (\w+):", diagram, flags=re.MULTILINE)
    assert {(TaskStatus(a), TaskStatus(b)) for a, b in arrows} == set(allowed_moves())
    assert re.findall(r"^    \[\*\] --> (\w+):", diagram, flags=re.MULTILINE) == ["pending"]
    finals = re.findall(r"^    (\w+) --> \[\*\]$", diagram, flags=re.MULTILINE)
    assert {TaskStatus(s) for s in finals} == FINAL_STATUSES


def test_a_table_change_makes_the_committed_diagram_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    import engagequeue._state as state

    gen = generator()
    page = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    changed = dict(state.TRANSITIONS)
    changed["revive"] = state.Transition(
        "revive", TaskStatus.FAILED, frozenset({TaskStatus.PENDING}), "revived"
    )
    monkeypatch.setattr(gen, "TRANSITIONS", changed)
    assert "    failed --> pending: revive\n" in gen.render()
    assert gen.render() not in page


def test_notes_about_an_arrow_the_table_lost_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = generator()
    monkeypatch.setattr(gen, "NOTES", {**gen.NOTES, ("vanish", TaskStatus.FAILED): ("", "gone")})
    with pytest.raises(ValueError, match="no longer has"):
        gen.render()
