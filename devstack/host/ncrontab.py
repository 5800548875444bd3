"""Timer-trigger schedules: 6-field NCRONTAB expressions and `hh:mm:ss` intervals.

The Functions host reads `{second} {minute} {hour} {day} {month} {day-of-week}` (UTC here, as on
Azure without WEBSITE_TIME_ZONE). Fields take `*`, `*/n`, `a-b`, `a-b/n`, lists and month/day names.
Like NCrontab, a time matches when every field matches (day-of-month AND day-of-week).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_FIELDS: list[tuple[str, int, int, list[str]]] = [
    ("second", 0, 59, []),
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
]
_INTERVAL = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")
_SEARCH_DAYS = 366 * 5


def _value(token: str, low: int, names: list[str]) -> int:
    upper = token.upper()
    if upper in names:
        return names.index(upper) + low
    if not token.isdigit():
        raise ValueError(f"not a number or name: {token!r}")
    return int(token)


def _parse_field(text: str, name: str, low: int, high: int, names: list[str]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"{name}: step must be positive in {part!r}")
        if body == "*":
            start, stop = low, high
        elif "-" in body:
            a, b = body.split("-", 1)
            start, stop = _value(a, low, names), _value(b, low, names)
        else:
            start = _value(body, low, names)
            stop = high if step_text else start
        if name == "day-of-week" and stop == 7:  # 7 is Sunday too
            values.add(0)
            stop = 6
        if not (low <= start <= high and low <= stop <= high and start <= stop):
            raise ValueError(f"{name}: {part!r} is outside {low}-{high}")
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A parsed timer schedule: either six cron fields or a fixed interval."""

    fields: tuple[frozenset[int], ...] | None
    interval: timedelta | None

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        text = expression.strip()
        match = _INTERVAL.match(text)
        if match:
            days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
            interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
            if interval <= timedelta(0):
                raise ValueError(f"timer interval must be positive: {expression!r}")
            return cls(None, interval)
        parts = text.split()
        if len(parts) != 6:
            raise ValueError(
                "NCRONTAB needs 6 fields (second minute hour day month day-of-week): "
                f"{expression!r}"
            )
        fields = tuple(
            _parse_field(part, name, low, high, names)
            for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True)
        )
        return cls(fields, None)

    def next_after(self, after: datetime) -> datetime:
        """The first occurrence strictly after `after` (same timezone as `after`)."""
        if self.interval is not None:
            return after + self.interval
        assert self.fields is not None
        _, _, _, days, months, weekdays = self.fields
        start = after.replace(microsecond=0) + timedelta(seconds=1)
        day = start.replace(hour=0, minute=0, second=0)
        for _ in range(_SEARCH_DAYS):
            weekday = (day.weekday() + 1) % 7  # Python: Monday=0; cron: Sunday=0
            if day.month in months and day.day in days and weekday in weekdays:
                found = self._first_in_day(day, start)
                if found is not None:
                    return found
            day += timedelta(days=1)
        raise ValueError("schedule has no occurrence in the next five years")

    def _first_in_day(self, day: datetime, start: datetime) -> datetime | None:
        assert self.fields is not None
        seconds, minutes, hours = self.fields[0], self.fields[1], self.fields[2]
        floor = (start.hour, start.minute, start.second) if day.date() == start.date() else None
        for hour in sorted(hours):
            if floor and hour < floor[0]:
                continue
            for minute in sorted(minutes):
                if floor and (hour, minute) < floor[:2]:
                    continue
                for second in sorted(seconds):
                    if floor and (hour, minute, second) < floor:
                        continue
                    return day.replace(hour=hour, minute=minute, second=second)
        return None
