"""The course loads, and has the shape the story needs: chapters, beats, tasks, personas."""

from __future__ import annotations

import re

import pytest

from bot.content.course import DEFAULT_CHAPTERS, load_course
from bot.content.schema import (
    DebriefBeat,
    NarrativeBeat,
    QuestionBeat,
    ReviewBeat,
    SummaryBeat,
    TaskBeat,
)
from sandbox.objectives import (
    AutoscalerObjective,
    NetworkPolicyObjective,
    NodesReadyObjective,
    PvcBoundObjective,
    RecoveredObjective,
    ServiceEndpointsObjective,
)

# A hint may mention kubectl; it never spells out a command.
COMMAND = re.compile(
    r"\bkubectl\s+(get|describe|apply|create|delete|run|exec|logs|label|set|rollout|top|"
    r"scale|edit|patch|port-forward|config|cluster-info)\b"
)
PERSONAS = {"torres", "tanaka", "webb", "vasquez", "aria", "narrator"}


@pytest.fixture(scope="module")
def course():
    return load_course()


def _chapter(course, number):
    return course.chapters[course.find_chapter(number)]


def test_chapters_in_order(course):
    assert [c.number for c in course.chapters] == [0, 1, 2, 3, 4, 5, 6, 99]
    for chapter, folder in zip(course.chapters, course.chapter_dirs, strict=True):
        assert chapter.id == f"ch{chapter.number:02d}-" + folder.name.split("-", 1)[1]
        assert folder.parent == DEFAULT_CHAPTERS
        assert chapter.notes.strip(), f"{chapter.id}: notes should say how it differs from the seed"


def test_personas(course):
    assert set(course.personas) == PERSONAS
    colours = [p.colour for p in course.personas.values()]
    assert len(set(colours)) == len(colours), "each persona needs its own colour"
    for p in course.personas.values():
        assert p.voice.strip() and p.role.strip() and p.name.strip()
        assert 3 <= len(p.examples) <= 6, p.id
        assert p.avatar == f"portraits/{p.id}.png"  # drawn by personas/portraits/draw.py
    torres = course.personas["torres"]
    assert torres.name == "Commander Sarah Torres"
    rules = " ".join(torres.rules).lower()
    for must in ("never drop character", "the story creates the need", "tutorial paragraph"):
        assert must in rules


def test_opening_asks_the_profile_questions(course):
    opening = _chapter(course, 0)
    questions = [b for b in opening.beats if isinstance(b, QuestionBeat)]
    by_profile = {q.profile: q for q in questions}
    assert list(by_profile) == ["style", "review", "feedback", "environment"]
    expected = {
        "style": {"theory", "hands-on"},
        "review": {"every-change", "independent"},
        "feedback": {"immediate", "discover"},
    }
    for profile, values in expected.items():
        q = by_profile[profile]
        assert {c.value for c in q.choices} == values
        assert all(c.keywords for c in q.choices), profile
    assert by_profile["environment"].choices == []
    assert all(not q.deferrable for q in questions)
    assert not any(isinstance(b, TaskBeat) for b in opening.beats)
    assert isinstance(opening.beats[0], NarrativeBeat)
    assert isinstance(opening.beats[-1], NarrativeBeat)


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5, 6])
def test_chapter_follows_the_seed_alternation(course, number):
    beats = _chapter(course, number).beats
    kinds = [type(b) for b in beats]
    first_question = kinds.index(QuestionBeat)
    assert first_question > 0 and all(k is NarrativeBeat for k in kinds[:first_question])
    # A report (a question whose answer must match the live cluster) may follow the task:
    # the learner's own reading of the cluster, before the crew reviews it.
    reports = [b for b in beats if isinstance(b, QuestionBeat) and b.fact and b.fact.required]
    kinds = [type(b) for b in beats if b not in reports]
    assert kinds[first_question:] == [
        QuestionBeat, TaskBeat, NarrativeBeat, ReviewBeat, DebriefBeat,
    ]  # fmt: skip
    for report in reports:
        assert beats[beats.index(report) - 1].type == "task"
    question = beats[first_question]
    assert question.intent.strip()
    assert all(ln.speaker == "torres" for ln in question.lines)


def test_closing_has_summary_reflection_and_next_steps(course):
    closing = _chapter(course, 99)
    summary = [b for b in closing.beats if isinstance(b, SummaryBeat)]
    assert [s.heading for s in summary] == ["Skills Summary"]
    assert len(summary[0].sections) == 6
    reflection = [b for b in closing.beats if isinstance(b, QuestionBeat)]
    assert [r.title for r in reflection] == ["Reflection"] and reflection[0].intent
    assert isinstance(closing.beats[-1], DebriefBeat)


def test_every_task_is_checkable(course):
    for chapter in course.chapters:
        tasks = [b for b in chapter.beats if isinstance(b, TaskBeat)]
        assert len(tasks) == (1 if 1 <= chapter.number <= 6 else 0), chapter.id
        for task in tasks:
            assert task.instructions.strip()
            assert task.objectives
            for o in task.objectives:
                assert o.title.strip() and o.reason.strip(), o.id
                assert len(o.hints) == 3 and all(h.strip() for h in o.hints), o.id
                for hint in o.hints:  # hints point the way; they never hand over a command
                    assert not COMMAND.search(hint) and "`" not in hint, f"{o.id}: {hint}"


def test_instructions_name_only_their_own_manifests(course):
    for c, chapter in enumerate(course.chapters):
        for task in course.tasks(c):
            files = {m.file for m in task.manifests}
            named = set(re.findall(r"[\w.-]+\.yaml\b", task.instructions))
            assert named <= files, f"{chapter.id}: instructions name {named - files}"
            assert files <= named, f"{chapter.id}: instructions never mention {files - named}"


def test_requirements_are_declared(course):
    for chapter in course.chapters:
        needs: set[str] = set()
        for beat in chapter.beats:
            if not isinstance(beat, TaskBeat):
                continue
            for o in beat.objectives:
                if isinstance(o, PvcBoundObjective):
                    needs.add("storage-class")
                if isinstance(o, NetworkPolicyObjective):
                    needs.add("network-policy-sync")
                if isinstance(o, AutoscalerObjective):
                    needs.add("metrics-server")
                if isinstance(o, ServiceEndpointsObjective) and o.type == "LoadBalancer":
                    needs.add("load-balancer")
        assert needs <= set(chapter.requires), f"{chapter.id} must require {needs}"
    assert "storage-class" in _chapter(course, 3).requires
    assert "network-policy-sync" in _chapter(course, 4).requires
    assert {"metrics-server", "load-balancer", "storage-class"} <= set(_chapter(course, 6).requires)


def test_chapter_one_checks_nodes(course):
    ch1 = _chapter(course, 1)
    (task,) = course.tasks(course.find_chapter(1))
    assert any(isinstance(o, NodesReadyObjective) and o.min >= 1 for o in task.objectives)
    # The story moves on only after the learner reports what the live cluster shows.
    report = next(b for b in ch1.beats if isinstance(b, QuestionBeat) and b.fact is not None)
    assert report.fact is not None and report.fact.measure == "ready_nodes"
    assert report.fact.required
    assert ch1.beats.index(report) == ch1.beats.index(task) + 1


def test_chapter_six_drills_self_healing(course):
    (task,) = course.tasks(course.find_chapter(6))
    assert task.drill is not None
    assert task.drill.action == "delete_pods"
    assert task.drill.namespace == "research"
    assert task.drill.labels == {"app": "atmospheric-analysis"}
    assert task.drill.count == 1
    assert any("simulate a node failure" in (ln.say or "") for ln in task.drill.lines)
    recovered = [o for o in task.objectives if isinstance(o, RecoveredObjective)]
    assert [(o.deployment, o.namespace) for o in recovered] == [
        ("atmospheric-analysis", "research")
    ]


def test_dialogue_is_attributed(course):
    names = {"Dr. Tanaka": "tanaka", "Marcus Webb": "webb", "Captain Vasquez": "vasquez",
             "ARIA": "aria"}  # fmt: skip
    for chapter in course.chapters:
        for beat in chapter.beats:
            for line in getattr(beat, "lines", []):
                if line.stage:
                    for name, pid in names.items():
                        if line.stage.startswith(name) or line.stage.startswith(
                            f"The station's AI, {name}"
                        ):
                            assert line.speaker == pid, line.stage


ANSWERS = {
    "style": [
        ("I learn better by getting my hands dirty first", "hands-on"),
        ("I prefer to discuss the theory behind each system first", "theory"),
        ("Explain the concepts to me, then I'll do it", "theory"),
        ("Let me jump in and experiment", "hands-on"),
    ],
    "review": [
        ("Please review every change immediately", "every-change"),
        ("I'd rather work independently and ask for feedback when I need it", "independent"),
        ("check my work closely", "every-change"),
    ],
    "feedback": [
        ("Point out problems right away", "immediate"),
        ("I'd rather discover them myself through testing", "discover"),
        ("let me know right away", "immediate"),
        ("let me figure it out", "discover"),
    ],
}


@pytest.mark.parametrize("profile", list(ANSWERS))
def test_free_answers_pick_the_right_choice(course, profile):
    """Keywords are matched as lowercase substrings; the single best-scoring choice wins."""
    question = next(
        b for b in _chapter(course, 0).beats if isinstance(b, QuestionBeat) and b.profile == profile
    )
    for answer, want in ANSWERS[profile]:
        text = answer.lower()
        scores = {c.value: sum(k.lower() in text for k in c.keywords) for c in question.choices}
        best = max(scores.values())
        winners = [v for v, s in scores.items() if s == best]
        assert best > 0 and winners == [want], f"{answer!r} scored {scores}"
