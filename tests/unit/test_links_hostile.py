"""The hostile-answer corpus: disguised foreign links that check_post must always flag."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engagequeue._links import canonicalise, check_post, find_links, repair_post
from link_oracle import (
    HostileAnswer,
    answers,
    assert_follows_link_rules,
    fold,
    hostile_answers,
    link_sets,
)

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(answer=hostile_answers(), links=link_sets)
@example(HostileAnswer("Deal 93.184.216.34/login now", 5, 24), ())
@example(HostileAnswer("Deal \uff45\uff56\uff49\uff4c.\uff43\uff4f\uff4d now", 5, 13), ())
@example(HostileAnswer("Deal javascript:alert(1) now", 5, 24), ())
def test_check_post_flags_every_disguised_foreign_link(
    answer: HostileAnswer, links: tuple[str, ...]
) -> None:
    codes = [v.code for v in check_post(answer.text, links, 4096)]
    assert "foreign_link" in codes, answer
    assert any(
        f.target is None and f.start < answer.end and answer.start < f.end
        for f in find_links(answer.text, links)
    ), answer


@FAST
@given(answer=hostile_answers(), links=link_sets, limit=st.sampled_from([4096, 1024]))
def test_repair_leaves_no_disguised_link(
    answer: HostileAnswer, links: tuple[str, ...], limit: int
) -> None:
    text = repair_post(answer.text, links, limit)
    if not links and not text:
        return  # nothing usable left: the composer raises CompositionError
    assert check_post(text, links, limit) == ()
    assert_follows_link_rules(text, links, limit)


@FAST
@given(text=answers | hostile_answers().map(lambda a: a.text), links=link_sets)
def test_found_spans_are_ordered_slices_of_the_original_text(
    text: str, links: tuple[str, ...]
) -> None:
    end = 0
    for link in find_links(text, links):
        assert end <= link.start < link.end <= len(text)
        assert link.raw == text[link.start : link.end]
        end = link.end


@FAST
@given(answer=hostile_answers(), links=link_sets)
def test_whatever_the_checker_accepts_follows_the_oracle(
    answer: HostileAnswer, links: tuple[str, ...]
) -> None:
    """The oracle, folding on its own, agrees: only the span left clean can pass."""
    head, tail = answer.text[: answer.start], answer.text[answer.end :]
    for text in (canonicalise(head + tail, links), head + tail):
        if check_post(text, links, 1 << 20) == ():
            assert_follows_link_rules(text, links, 1 << 20)


def test_the_oracle_folds_what_a_parser_folds() -> None:
    assert fold("\uff45\u200bvil\u3002com \uff1a") == "evil.com :"
    assert (
        fold("\u30bb\u30fc\u30eb\u3002\u307f\u3093\u306a")
        == "\u30bb\u30fc\u30eb\u3002\u307f\u3093\u306a"
    )
