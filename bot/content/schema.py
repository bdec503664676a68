"""The course as data: chapters, beats, lines and personas.

Authors write YAML; these models validate it. ``kepler lint`` reports every problem with
file, line and field (see :mod:`bot.content.loader`). ``chapters/schema.json`` is exported
from :func:`chapter_json_schema` for editor completion.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sandbox.objectives import ObjectiveSpec, unscoped

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- lines ---------------------------------------------------------------------------------


class Line(_Model):
    """One paragraph of the story, presented exactly as written.

    Exactly one of ``scene`` (a scene description), ``narration`` (prose), ``stage`` (a stage
    direction such as "Commander Torres turns to face you:"), ``say`` (dialogue, which needs
    ``speaker``), ``command`` (a shell command the story shows, as code) or ``instruction``
    (instruction text between story lines, spoken by no one) is set.
    """

    scene: str | None = None
    narration: str | None = None
    stage: str | None = None
    say: str | None = None
    command: str | None = Field(default=None, description="A shell command shown as code.")
    instruction: str | None = Field(
        default=None, description="Instruction text, not story: nobody says it."
    )
    speaker: Slug | None = Field(default=None, description="Persona id of whoever says or does it.")

    @model_validator(mode="after")
    def _one_text(self) -> Line:
        texts = [k for k in _LINE_KINDS if getattr(self, k) is not None]
        if len(texts) != 1:
            raise ValueError(f"a line has exactly one of {', '.join(_LINE_KINDS)}")
        if self.say is not None and self.speaker is None:
            raise ValueError("dialogue (say) needs a speaker")
        return self

    @property
    def style(self) -> str:
        for k in _LINE_KINDS:
            if getattr(self, k) is not None:
                return "dialogue" if k == "say" else k
        raise AssertionError("validated line without text")

    @property
    def text(self) -> str:
        return next((t for k in _LINE_KINDS if (t := getattr(self, k)) is not None), "")


_LINE_KINDS = ("scene", "narration", "stage", "say", "command", "instruction")


# --- beats ---------------------------------------------------------------------------------


class _Beat(_Model):
    id: Slug
    pause: bool = Field(
        default=False, description="Wait for the learner to continue after this beat."
    )


class NarrativeBeat(_Beat):
    """Scene text and dialogue."""

    type: Literal["narrative"]
    lines: list[Line] = Field(min_length=1)


class Choice(_Model):
    value: Slug
    label: str
    keywords: list[str] = Field(
        default_factory=list, description="Words in a free answer that pick it."
    )


class FactCheck(_Model):
    """A Think First question whose answer can be compared with the live cluster."""

    measure: Literal["ready_nodes", "nodes", "namespaces", "pods"]
    namespace: str | None = None
    required: bool = Field(
        default=False,
        description="The answer must state the live value; until it does the question stays open "
        "and the crew says what the display shows (a report the learner makes from the cluster).",
    )


class QuestionBeat(_Beat):
    """A question the learner answers ("Think First", or the opening's profile questions)."""

    type: Literal["question"]
    title: str = "Think First"
    lines: list[Line] = Field(min_length=1, description="The question as the crew asks it.")
    intent: str = Field(
        default="", description="What a good answer shows; the voice judges answers against it."
    )
    profile: Literal["style", "review", "feedback", "environment"] | None = Field(
        default=None, description="Store the answer in the learner's profile under this field."
    )
    choices: list[Choice] = Field(default_factory=list)
    fact: FactCheck | None = None
    deferrable: bool = Field(
        default=True,
        description="A hands-on learner meets this question after the next task, not before.",
    )


class Manifest(_Model):
    file: str = Field(description="File name under the chapter's manifests/ folder.")
    solution: bool = Field(
        default=True, description="Part of the chapter's solution (applied by catch-up)."
    )


class Drill(_Model):
    """Something the story does to the learner's cluster, e.g. a node failure."""

    action: Literal["delete_pods"]
    namespace: str
    labels: dict[str, str]
    count: int = 1
    lines: list[Line] = Field(default_factory=list, description="Told as the drill runs.")


Platform = Literal["windows", "macos", "linux", "any", "browser"]
INSTALLED: tuple[Platform, ...] = ("windows", "macos", "linux")  # a machine the learner installs on


class TaskBeat(_Beat):
    """Work on the learner's cluster; the story waits until every objective holds (latched)."""

    type: Literal["task"]
    title: str
    instructions: str = Field(description="Markdown: the steps, commands and checks.")
    setup: dict[Platform, str] = Field(
        default_factory=dict,
        description="Getting ready, per platform: install notes per operating system, ``any`` "
        "for every installed one, ``browser`` for a learner with only a browser (the Discord "
        "browser terminal: nothing to install). Install notes need a ``browser`` entry.",
    )
    manifests: list[Manifest] = Field(default_factory=list)
    objectives: list[ObjectiveSpec] = Field(min_length=1)
    drill: Drill | None = None

    @field_validator("setup")
    @classmethod
    def _browser_too(cls, setup: dict[str, str]) -> dict[str, str]:
        installs = sorted(k for k in setup if k in INSTALLED)
        if installs and "browser" not in setup:
            raise ValueError(
                f"install notes for {', '.join(installs)} need a browser entry too: what a "
                "learner with only a browser does (the terminal from /terminal needs no install)"
            )
        return setup

    @model_validator(mode="after")
    def _unique_objectives(self) -> TaskBeat:
        ids = [o.id for o in self.objectives]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"objective ids repeat: {', '.join(sorted(dupes))}")
        loose = [o.id for o in self.objectives if unscoped(o)]
        if loose:
            raise ValueError(
                f"objectives {', '.join(loose)} must name the namespace the chapter uses: "
                "work in another namespace has to fail, with a reason naming it"
            )
        return self


class ReviewRow(_Model):
    """One row of the crew's assessment, with what answers it.

    ``judged_by`` names objectives of this chapter's tasks and/or question beats of this
    chapter: the row shows ✅ when every objective holds (and every question was answered).
    A row that nothing in the cluster can answer says so with ``self_assessed``.
    """

    aspect: str
    assessment: str
    judged_by: list[Slug] = Field(default_factory=list)
    self_assessed: bool = Field(
        default=False, description="Nothing the crew can check answers this row; the learner does."
    )

    @model_validator(mode="after")
    def _answered(self) -> ReviewRow:
        if not self.judged_by and not self.self_assessed:
            raise ValueError("a review row is judged_by objectives or questions, or self_assessed")
        return self


class ReviewBeat(_Beat):
    """The crew's assessment table."""

    type: Literal["review"]
    rows: list[ReviewRow] = Field(min_length=1)


class DebriefBeat(_Beat):
    """The chapter's close, in the story's voice."""

    type: Literal["debrief"]
    lines: list[Line] = Field(min_length=1)


class SummaryBeat(_Beat):
    """Headed lists (the closing's Skills Summary and Next Steps)."""

    type: Literal["summary"]
    heading: str
    sections: dict[str, list[str]] = Field(min_length=1)


Beat = Annotated[
    NarrativeBeat | QuestionBeat | TaskBeat | ReviewBeat | DebriefBeat | SummaryBeat,
    Field(discriminator="type"),
]

Requirement = Literal["storage-class", "network-policy-sync", "metrics-server", "load-balancer"]


class Chapter(_Model):
    id: Slug
    number: int = Field(
        ge=0, description="0 for the opening, 1-6 for chapters, 99 for the closing."
    )
    title: str
    requires: list[Requirement] = Field(
        default_factory=list, description="What the learner's sandbox must provide."
    )
    notes: str = Field(
        default="", description="For operators: why the exercise differs from the seed."
    )
    beats: list[Beat] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_beats(self) -> Chapter:
        ids = [b.id for b in self.beats]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"beat ids repeat: {', '.join(sorted(dupes))}")
        known = {b.id for b in self.beats if isinstance(b, QuestionBeat)} | {
            o.id for b in self.beats if isinstance(b, TaskBeat) for o in b.objectives
        }
        for b in self.beats:
            if isinstance(b, ReviewBeat):
                for row in b.rows:
                    unknown = [j for j in row.judged_by if j not in known]
                    if unknown:
                        raise ValueError(
                            f"review row {row.aspect!r} is judged by unknown ids: "
                            + ", ".join(unknown)
                        )
        return self


# --- personas ------------------------------------------------------------------------------


class Persona(_Model):
    id: Slug
    name: str
    role: str
    colour: str = Field(default="white", description="Terminal colour (rich colour name).")
    avatar: str = Field(default="", description="Image URL for Discord webhooks and embeds.")
    voice: str = Field(description="How they speak, for the model.")
    rules: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list, description="Lines from the seed.")


def chapter_json_schema() -> dict[str, Any]:
    return Chapter.model_json_schema()
