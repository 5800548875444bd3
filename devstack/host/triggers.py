"""Inputs of the non-HTTP triggers: timer and Event Grid, shaped as the host sends them."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.functions import meta

from devstack.bindings import FunctionSpec
from devstack.host.ncrontab import Schedule


def timer_datum(
    last: datetime | None, next_at: datetime, now: datetime, past_due: bool
) -> meta.Datum:
    """The `TimerInfo` JSON the host passes to a timer trigger."""
    info = {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": {
            "Last": (last or now).isoformat(),
            "Next": next_at.isoformat(),
            "LastUpdated": now.isoformat(),
        },
        "IsPastDue": past_due,
    }
    return meta.Datum(json.dumps(info), "json")


def event_grid_datum(event: dict[str, Any]) -> meta.Datum:
    """One Event Grid event (the host invokes the function once per event of a delivery)."""
    return meta.Datum(json.dumps(event), "json")


def resolve_settings(text: str, function_name: str) -> str:
    """Replace `%NAME%` with the app setting NAME, as the host does for binding properties."""

    def setting(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if value is None:
            raise ValueError(f"app setting {match.group(1)} (used by {function_name}) is not set")
        return value

    return re.sub(r"%([^%]+)%", setting, text)


@dataclass
class TimerSchedules:
    """When each timer-triggered function is due next."""

    specs: list[FunctionSpec]
    next_at: dict[str, datetime] = field(default_factory=dict)
    last_at: dict[str, datetime] = field(default_factory=dict)
    _schedules: dict[str, Schedule] = field(default_factory=dict)

    def start(self, now: datetime) -> list[FunctionSpec]:
        """Plan the first occurrences; returns the functions that run on startup.

        Schedules may name an app setting (`%NAME%`), resolved from the environment now.
        """
        for spec in self.specs:
            expression = resolve_settings(str(spec.trigger["schedule"]), spec.name)
            self._schedules[spec.name] = Schedule.parse(expression)
            self.next_at[spec.name] = self._schedules[spec.name].next_after(now)
        return [s for s in self.specs if s.trigger.get("runOnStartup")]

    def due(self, now: datetime) -> list[tuple[FunctionSpec, datetime]]:
        """Functions due at `now` (with their planned time); their next occurrence is planned."""
        ready = []
        for spec in self.specs:
            planned = self.next_at.get(spec.name)
            if planned is not None and planned <= now:
                ready.append((spec, planned))
                self.last_at[spec.name] = planned
                self.next_at[spec.name] = self._schedules[spec.name].next_after(now)
        return ready

    def next_wakeup(self) -> datetime | None:
        return min(self.next_at.values(), default=None)
