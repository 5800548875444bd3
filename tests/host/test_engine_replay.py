"""The extension-side replay model on hand-made histories, and timer schedules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devstack.durable import history as h
from devstack.durable.replay import NonDeterminismError, Replayer
from devstack.host.ncrontab import Schedule
from devstack.host.triggers import resolve_settings

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def started() -> list[h.Event]:
    return [h.orchestrator_started(NOW), h.execution_started(NOW, "o", "i", "e", None, None)]


def call(name: str, value: object) -> dict[str, object]:
    return {"actionType": 0, "functionName": name, "input": value}


def test_first_episode_schedules_the_first_awaited_action_only() -> None:
    actions = [call("a", "1")]
    result = Replayer("e").run(started(), actions)
    assert [(w.task_id, w.kind, w.name) for w in result.new_work] == [(0, "activity", "a")]


def test_when_all_schedules_every_child_with_consecutive_ids() -> None:
    actions = [{"actionType": 12, "compoundActions": [call("a", "1"), call("b", "2")]}]
    result = Replayer("e").run(started(), actions)
    assert [(w.task_id, w.name) for w in result.new_work] == [(0, "a"), (1, "b")]


def test_recorded_work_is_not_scheduled_again() -> None:
    past = [
        *started(),
        h.task_scheduled(NOW, 0, "a", "1"),
        h.orchestrator_completed(NOW),
        h.orchestrator_started(NOW),
        h.task_completed(NOW, 0, '"x"'),
    ]
    result = Replayer("e").run(past, [call("a", "1"), call("b", "2")])
    assert [(w.task_id, w.name) for w in result.new_work] == [(1, "b")]


def test_a_different_activity_at_a_recorded_number_is_non_deterministic() -> None:
    past = [*started(), h.task_scheduled(NOW, 0, "a", "1")]
    with pytest.raises(NonDeterminismError, match=r"activity 'a'.*activity 'z'"):
        Replayer("e").run(past, [call("z", "1")])


def test_recorded_work_the_replay_no_longer_schedules_is_non_deterministic() -> None:
    past = [*started(), h.task_scheduled(NOW, 0, "a", "1")]
    with pytest.raises(NonDeterminismError, match="has not scheduled it"):
        Replayer("e").run(past, [])


def test_unnamed_sub_orchestrations_get_execution_scoped_ids() -> None:
    action = {"actionType": 2, "functionName": "c", "input": "null", "instanceId": None}
    result = Replayer("exec").run(started(), [action])
    assert result.new_work[0].instance_id == "exec:0"


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * * *", "2024-01-01T00:00:03", "2024-01-01T00:00:05"),
        ("0 */15 * * * *", "2024-01-01T00:14:59", "2024-01-01T00:15:00"),
        ("0 30 9 * * 1-5", "2024-01-06T10:00:00", "2024-01-08T09:30:00"),  # Saturday -> Monday
        ("0 0 0 1 JAN,jul *", "2024-02-01T00:00:00", "2024-07-01T00:00:00"),
        ("10,20 0 12 * * SUN", "2024-01-07T12:00:10", "2024-01-07T12:00:20"),
        ("00:05:00", "2024-01-01T00:00:00", "2024-01-01T00:05:00"),
    ],
)
def test_schedules(expression: str, after: str, expected: str) -> None:
    when = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert Schedule.parse(expression).next_after(when) == datetime.fromisoformat(expected).replace(
        tzinfo=UTC
    )


@pytest.mark.parametrize(
    "expression", ["* * * * *", "61 * * * * *", "*/0 * * * * *", "x * * * * *"]
)
def test_bad_schedules_are_rejected(expression: str) -> None:
    with pytest.raises(ValueError):
        Schedule.parse(expression)


def test_schedules_may_name_an_app_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICK_SCHEDULE", "0 */5 * * * *")
    assert resolve_settings("%TICK_SCHEDULE%", "tick") == "0 */5 * * * *"
    with pytest.raises(ValueError, match="MISSING_SETTING"):
        resolve_settings("%MISSING_SETTING%", "tick")
