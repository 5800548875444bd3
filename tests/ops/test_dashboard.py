"""The dashboard in headless Chromium: it lists runs live and cancels one with its button."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.ops import api, in_progress, run_id_of, wait_run
from tests.support.stack import local_stack, requests_file

CHROMIUM = Path("/usr/bin/chromium")
LONG_REQUESTS = 40
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 720) -> Iterator[Any]:
    """A page in Debian's headless Chromium (fresh profile), closed afterwards."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs it (apt-get chromium)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=CHROMIUM_FLAGS,
                headless=True,
                viewport={"width": width, "height": height},
            )
            try:
                page = context.new_page()
                page.set_default_timeout(20_000)
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.browser
def test_dashboard_shows_runs_and_cancels_the_running_one(azurite, tmp_path):
    with local_stack(azurite, tmp_path) as stack:
        stack.drop("ui/finished.jsonl", requests_file(2, prefix="f"))
        finished = run_id_of(stack, "ui/finished.jsonl")
        assert wait_run(stack, finished)["status"] == "completed"
        # Cancelled mid-run: after its first request has finished (`in_progress`) and well
        # before its last, however slowly the browser starts (30 s and 4 requests once let a
        # slow machine finish them all first).
        stack.scenario(batch_duration=120)
        stack.drop("ui/long.jsonl", requests_file(LONG_REQUESTS, prefix="l"))
        running = run_id_of(stack, "ui/long.jsonl")
        wait_run(stack, running, in_progress, timeout=20)

        with chromium_page() as page:
            dialogs: list[str] = []

            def accept(dialog: Any) -> None:
                dialogs.append(dialog.message)
                dialog.accept()

            page.on("dialog", accept)
            page.goto(f"{api(stack)}/dashboard")
            page.wait_for_selector(f'tr[data-run="{finished}"][data-status="completed"]')
            row = page.locator(f'tr[data-run="{running}"][data-status="running"]')
            row.wait_for()
            assert "ui/long.jsonl" in row.inner_text()
            assert page.locator(f'tr[data-run="{finished}"] button[data-act="cancel"]').count() == 0
            assert "2 runs" in page.locator("#totals").inner_text()

            row.locator('button[data-act="cancel"]').click()
            page.wait_for_selector(
                f'tr[data-run="{running}"][data-status="cancelled"]', timeout=25_000
            )
            assert dialogs and running in dialogs[0]
            cancelled_row = page.locator(f'tr[data-run="{running}"]')
            assert cancelled_row.locator('button[data-act="retry"]').count() == 1

            cancelled_row.locator('button[data-act="show"]').click()
            page.wait_for_selector("#detail-body:has-text('\"metadata\"')")
            assert '"status": "cancelled"' in page.locator("#detail-body").inner_text()

        detail = wait_run(stack, running, timeout=5)
        assert detail["status"] == "cancelled" and detail["metadata"]["status"] == "cancelled"
        assert 1 <= detail["requests"]["succeeded"] < LONG_REQUESTS
