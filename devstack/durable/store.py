"""Durable state in SQLite: instances, their histories, their inboxes and the activity queue.

This plays the part of the Azure Storage task hub. Every orchestration episode commits in one
transaction (new history, consumed messages, new work), so a host killed at any point restarts
from a consistent state: uncommitted episodes run again, unfinished activities run again
(at-least-once, like Azure), timers stay queued until due. `path=None` keeps it all in memory.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from devstack.durable.history import Event, fmt_time, parse_time

TERMINAL = frozenset({"Completed", "Failed", "Terminated", "Canceled"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    parent TEXT
);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    visible_at TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (visible_at);
-- an episode reads its own instance's inbox: without this, every visible message of every instance
CREATE INDEX IF NOT EXISTS messages_inbox ON messages (instance_id, visible_at);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass
class Instance:
    """One orchestration instance (its current execution)."""

    instance_id: str
    name: str
    execution_id: str
    status: str
    input: str | None
    output: str | None
    custom_status: str | None
    created: datetime
    updated: datetime
    parent: dict[str, Any] | None  # ParentInstance of the ExecutionStarted event

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class Message:
    """A queued event for an instance; `execution_id` None means any execution (external events)."""

    id: int
    instance_id: str
    execution_id: str | None
    event: Event


@dataclass(frozen=True)
class ActivityItem:
    """A queued activity execution."""

    id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None
    attempts: int


def _text(ev: Event) -> str:
    """An event as stored: the engine's events hold only strings (payloads are JSON text),
    numbers, booleans and nulls, so orjson writes them as json would, several times faster."""
    return orjson.dumps(ev).decode()


class Store:
    """All durable state behind one lock; `transaction()` groups writes atomically."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", isolation_level=None, check_same_thread=False
        )
        self._lock = threading.RLock()
        self._depth = 0
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Hold the store and commit everything done inside at once (nested ones join)."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _run(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._lock:
            cursor = self._db.execute(sql, args)
            return cursor.lastrowid or 0

    # --- instances ----------------------------------------------------------------------------

    @staticmethod
    def _instance(row: tuple[Any, ...]) -> Instance:
        return Instance(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            parse_time(row[7]),
            parse_time(row[8]),
            json.loads(row[9]) if row[9] else None,
        )

    def instance(self, instance_id: str) -> Instance | None:
        rows = self._rows("SELECT * FROM instances WHERE instance_id = ?", (instance_id,))
        return self._instance(rows[0]) if rows else None

    def save_instance(self, inst: Instance) -> None:
        self._run(
            "INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                inst.instance_id,
                inst.name,
                inst.execution_id,
                inst.status,
                inst.input,
                inst.output,
                inst.custom_status,
                fmt_time(inst.created),
                fmt_time(inst.updated),
                json.dumps(inst.parent) if inst.parent else None,
            ),
        )

    def instances(self) -> list[Instance]:
        return [self._instance(r) for r in self._rows("SELECT * FROM instances ORDER BY created")]

    def status_counts(self) -> dict[str, int]:
        """How many instances are in each runtime status (one query, whatever their number)."""
        rows = self._rows("SELECT status, COUNT(*) FROM instances GROUP BY status")
        return {status: int(count) for status, count in rows}

    def active_instance_count(self) -> int:
        marks = ",".join("?" * len(TERMINAL))
        sql = f"SELECT COUNT(*) FROM instances WHERE status NOT IN ({marks})"  # noqa: S608
        rows = self._rows(sql, [*TERMINAL])
        return int(rows[0][0])

    def delete_instance(self, instance_id: str) -> None:
        with self.transaction():
            for table in ("instances", "history", "messages"):
                self._run(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))  # noqa: S608 - fixed table names

    # --- history ------------------------------------------------------------------------------

    def history(self, instance_id: str) -> list[Event]:
        rows = self._rows(
            "SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,)
        )
        return [orjson.loads(r[0]) for r in rows]

    def append_history(self, instance_id: str, events: list[Event]) -> None:
        rows = self._rows(
            "SELECT COALESCE(MAX(seq), -1) FROM history WHERE instance_id = ?", (instance_id,)
        )
        start = int(rows[0][0]) + 1
        with self._lock:
            self._db.executemany(
                "INSERT INTO history VALUES (?, ?, ?)",
                [(instance_id, start + i, _text(ev)) for i, ev in enumerate(events)],
            )

    def clear_history(self, instance_id: str) -> None:
        self._run("DELETE FROM history WHERE instance_id = ?", (instance_id,))

    # --- messages (the instance inboxes) ------------------------------------------------------

    def send(
        self, instance_id: str, ev: Event, visible_at: datetime, execution_id: str | None = None
    ) -> None:
        self._run(
            "INSERT INTO messages (instance_id, execution_id, visible_at, event) "
            "VALUES (?, ?, ?, ?)",
            (instance_id, execution_id, fmt_time(visible_at), _text(ev)),
        )

    def visible_messages(self, instance_id: str, now: datetime) -> list[Message]:
        rows = self._rows(
            "SELECT id, instance_id, execution_id, event FROM messages "
            "WHERE instance_id = ? AND visible_at <= ? ORDER BY id",
            (instance_id, fmt_time(now)),
        )
        return [Message(r[0], r[1], r[2], orjson.loads(r[3])) for r in rows]

    def delete_messages(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    def clear_messages(self, instance_id: str) -> None:
        self._run("DELETE FROM messages WHERE instance_id = ?", (instance_id,))

    def clear_messages_of_execution(self, instance_id: str, execution_id: str) -> None:
        self._run(
            "DELETE FROM messages WHERE instance_id = ? AND execution_id = ?",
            (instance_id, execution_id),
        )

    def instances_with_due_messages(
        self, now: datetime, exclude: Collection[str] = (), limit: int = -1
    ) -> list[str]:
        """Instances with a visible message, oldest message first; at most `limit` (-1: all)."""
        marks = ",".join("?" * len(exclude))
        rows = self._rows(
            "SELECT instance_id FROM messages WHERE visible_at <= ? "  # noqa: S608 - only marks
            f"AND instance_id NOT IN ({marks}) GROUP BY instance_id ORDER BY MIN(id) LIMIT ?",
            (fmt_time(now), *exclude, limit),
        )
        return [r[0] for r in rows]

    def next_due(self, now: datetime) -> datetime | None:
        """The earliest time a not-yet-visible message becomes visible."""
        rows = self._rows(
            "SELECT MIN(visible_at) FROM messages WHERE visible_at > ?", (fmt_time(now),)
        )
        return parse_time(rows[0][0]) if rows and rows[0][0] else None

    # --- activity queue -----------------------------------------------------------------------

    def enqueue_activity(
        self, instance_id: str, execution_id: str, task_id: int, name: str, input_text: str | None
    ) -> None:
        self._run(
            "INSERT INTO activities (instance_id, execution_id, task_id, name, input) "
            "VALUES (?, ?, ?, ?, ?)",
            (instance_id, execution_id, task_id, name, input_text),
        )

    def queued_activities(
        self, exclude: Collection[int] = (), limit: int = -1
    ) -> list[ActivityItem]:
        """Queued activities not in `exclude`, oldest first; at most `limit` (-1: all)."""
        marks = ",".join("?" * len(exclude))
        rows = self._rows(
            f"SELECT * FROM activities WHERE id NOT IN ({marks}) ORDER BY id LIMIT ?",  # noqa: S608
            (*exclude, limit),
        )
        return [ActivityItem(*r) for r in rows]

    def count_attempt(self, item_id: int) -> int:
        """Record that an execution of the item starts; returns its attempt number (1-based)."""
        with self.transaction():
            self._run("UPDATE activities SET attempts = attempts + 1 WHERE id = ?", (item_id,))
            rows = self._rows("SELECT attempts FROM activities WHERE id = ?", (item_id,))
        return int(rows[0][0]) if rows else 0

    def delete_activity(self, item_id: int) -> None:
        self._run("DELETE FROM activities WHERE id = ?", (item_id,))
