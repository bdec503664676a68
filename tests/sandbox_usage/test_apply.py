"""Applying a suggestion: the control plane's requests come from two settings, checked against
its limits, and the render (hence ``kepler sandbox cost`` and placement) follows them."""

from __future__ import annotations

import pytest

from bot.config import Settings, SettingsError
from bot.content.course import load_course
from sandbox.cost import control_plane, report
from sandbox.provision import SandboxSpec, course_requirements, render
from tests.sandbox_lifecycle.conftest import CHART_DEFAULTS

MI = 2**20


def rendered(env: dict[str, str]) -> list[dict]:
    course = load_course()
    spec = SandboxSpec(namespace="kepler-cost", requirements=course_requirements(course.chapters),
                       host=Settings.from_env(env).host_settings(), chart_defaults=CHART_DEFAULTS,
                       learner_id="cost", learner_hash="cost")  # fmt: skip
    return render(spec)


def test_defaults_are_the_pinned_charts_figures() -> None:
    cp = control_plane(rendered({}))
    assert (cp.cpu_m, cp.memory, cp.limit_cpu_m, cp.limit_memory) == (200, 256 * MI, 1000, 2**30)


def test_the_settings_set_the_control_planes_requests_and_cost_shows_them() -> None:
    objs = rendered({"KEPLER_SANDBOX_CONTROL_PLANE_CPU": "125m",
                     "KEPLER_SANDBOX_CONTROL_PLANE_MEMORY": "148Mi"})  # fmt: skip
    [sts] = [o for o in objs if o["kind"] == "StatefulSet"]
    [syncer] = sts["spec"]["template"]["spec"]["containers"]
    assert syncer["resources"]["requests"]["cpu"] == "125m"
    assert syncer["resources"]["limits"]["memory"] == "1Gi"  # limits stay
    cp = control_plane(objs)
    assert (cp.cpu_m, cp.memory) == (125, 148 * MI)
    row = next(line for line in report(objs, load_course()).splitlines()
               if line.startswith("control plane"))  # fmt: skip
    assert row.split()[4:6] == ["125m", "148Mi"]


@pytest.mark.parametrize("variable,value", [
    ("KEPLER_SANDBOX_CONTROL_PLANE_CPU", "2"),  # above the 1 CPU limit
    ("KEPLER_SANDBOX_CONTROL_PLANE_CPU", "0m"),
    ("KEPLER_SANDBOX_CONTROL_PLANE_MEMORY", "2Gi"),  # above the 1Gi limit
    ("KEPLER_SANDBOX_CONTROL_PLANE_MEMORY", "lots"),  # not a quantity
])  # fmt: skip
def test_a_request_the_api_server_would_refuse_fails_at_start(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value}).host_settings()
