"""Take docs/dashboard.png: the dashboard on the local stack with runs in several states.

    .venv/bin/python -m bench.screenshot_dashboard [OUT.png]

Starts its own Azurite, emulator and host (as the tests do), makes runs that end completed,
invalid, failed (quota) and cancelled and leaves two running, then shoots the page at 1280x720
in Debian's headless Chromium.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from devstack import services
from tests.ops.test_dashboard import chromium_page
from tests.support.ops import in_progress, post, run_id_of, wait_run
from tests.support.stack import local_stack, requests_file

ROOT = Path(__file__).resolve().parent.parent


def main(out: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-shot-"))
    env = {"QUOTA_RETRY_ATTEMPTS": "0"}
    with (
        services.azurite(tmp / "azurite") as azurite,
        local_stack(azurite, tmp, extra_env=env) as s,
    ):
        s.drop("marketing/2026-q3/product-descriptions.jsonl", requests_file(40, prefix="desc"))
        s.drop("support/tickets-triage.jsonl", requests_file(25, prefix="ticket", schema=True))
        s.drop("support/bad-export.jsonl", b'{"custom_id": "t-1", "method": "POST"\nnot json\n')
        for path in (
            "marketing/2026-q3/product-descriptions.jsonl",
            "support/tickets-triage.jsonl",
            "support/bad-export.jsonl",
        ):
            wait_run(s, run_id_of(s, path))

        s.scenario(next_batches=["token_limit_fail_fast"])
        s.drop("research/eval-set-large.jsonl", requests_file(12, prefix="eval"))
        wait_run(s, run_id_of(s, "research/eval-set-large.jsonl"))

        s.scenario(next_batches=[], batch_duration=40)
        s.drop("research/ablation-b.jsonl", requests_file(30, prefix="abl"))
        cancelled = run_id_of(s, "research/ablation-b.jsonl")
        wait_run(s, cancelled, in_progress)
        time.sleep(4)
        post(s, f"runs/{cancelled}/cancel")
        wait_run(s, cancelled)

        s.drop("marketing/2026-q4/newsletter-drafts.jsonl", requests_file(60, prefix="news"))
        time.sleep(8)
        s.scenario(batch_duration=120)
        s.drop("support/chat-summaries.jsonl", requests_file(50, prefix="chat"))
        wait_run(s, run_id_of(s, "support/chat-summaries.jsonl"), in_progress)

        with chromium_page(1280, 720) as page:
            page.goto(f"{s.host.base_url}/api/dashboard")
            page.wait_for_selector('tr[data-status="running"]')
            page.wait_for_selector('tr[data-status="cancelled"]')
            time.sleep(2.5)  # one refresh more, so the progress bars have moved
            page.screenshot(path=str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png")
