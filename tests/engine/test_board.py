"""The crew board's text: marks per member, and who has a terminal connected when told."""

from __future__ import annotations

from bot.engine.board import CONNECTED, board_text

ROWS = [
    {"name": "Alex", "learner": "discord:42", "task": "Restore the pods",
     "objectives": [{"title": "a", "passed": True}, {"title": "b", "passed": False}]},
    {"name": "Sam", "learner": "discord:43", "task": "Restore the pods",
     "objectives": [{"title": "a", "passed": False}, {"title": "b", "passed": False}]},
]  # fmt: skip


def test_the_board_marks_only_the_members_whose_terminal_is_connected() -> None:
    assert board_text(ROWS).splitlines() == ["**Alex** ✅⬜ Restore the pods",
                                             "**Sam** ⬜⬜ Restore the pods"]  # fmt: skip
    assert board_text(ROWS, {"discord:43", "discord:99"}).splitlines() == [
        "**Alex** ✅⬜ Restore the pods",
        f"**Sam** ⬜⬜ Restore the pods · {CONNECTED}",
    ]
    assert board_text([], {"discord:43"}) == "No crew yet."
