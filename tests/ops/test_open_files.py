"""``kepler serve`` lifts its open-file limit: every open watch is a socket."""

from __future__ import annotations

import resource
import subprocess
import sys

from bot.ops.open_files import FILES_PER_LEARNER, RESERVED, learners_within


def _in_child(soft: int, code: str) -> str:
    """Run ``code`` in a child whose soft limit starts at ``soft`` (the test's own stays)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run([sys.executable, "-c", code], preexec_fn=lower, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    out = _in_child(256, "import resource\n"
                         "from bot.ops.open_files import raise_open_files\n"
                         "print(*raise_open_files(), *resource.getrlimit(resource.RLIMIT_NOFILE))")
    before, after, soft_now, hard_now = map(int, out.split())
    assert before == 256
    expected = hard if hard != resource.RLIM_INFINITY else 1 << 20
    assert after == soft_now == expected
    assert hard_now == hard  # the hard limit is the operator's


def test_a_limit_already_at_the_hard_one_is_left() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    out = _in_child(hard, "from bot.ops.open_files import raise_open_files\n"
                          "print(*raise_open_files())")
    assert out.split() == [str(hard), str(hard)]


def test_learners_carried_by_a_limit() -> None:
    assert learners_within(1024) == (1024 - RESERVED) // FILES_PER_LEARNER  # 96: too few
    assert learners_within(20_000) >= 2000
    assert learners_within(100) == 0
