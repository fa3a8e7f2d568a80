"""End to end: `pipilot sim` as a newcomer runs it, flown from the page in chromium.

Hold Arm, move Throttle, and watch the simulated FC's FlightStatus and
ManualControlCommand change in the page; close the pilot's page and watch the
failsafe take over from another page.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.browser.conftest import launch

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).parents[2]
TOKEN = "e2e-token"


@pytest.fixture
def sim_url(tmp_path: Path) -> Iterator[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipilot", "sim", "--http-port", "0", "--token", TOKEN,
         "--seed", "3"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            # a pipe is no terminal: the line names the page, not the token (docs/web.md)
            m = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=TOKEN", line)
            url = f"{m.group(1)}?token={TOKEN}" if m else None
        assert url, "pipilot sim printed no URL"
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rx_throttle(text: str | None) -> float:
    try:
        return float(text or "nan")
    except ValueError:
        return float("nan")


async def test_fly_the_simulated_cc3d_from_the_page(sim_url: str) -> None:
    async with async_playwright() as pw:
        browser = await launch(pw)
        pilot_ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
        page = await pilot_ctx.new_page()
        await page.goto(sim_url)
        await expect(page.locator("#telemetry")).to_have_text("telemetry: connected",
                                                              timeout=30_000)
        armed = page.get_by_role("status", name="FC arming state")
        await expect(armed).to_have_text("DISARMED", timeout=15_000)
        await page.get_by_role("button", name="Take control").click()
        await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")

        # Hold Arm: the FC (not the page) reports Arming, then Armed.
        arm = page.get_by_role("button", name="Arm", exact=True)
        await arm.hover()
        await page.mouse.down()
        await page.wait_for_timeout(1300)
        await page.mouse.up()
        await expect(armed).to_have_text("ARMED", timeout=15_000)
        await expect(page.locator("#mode")).to_have_text(re.compile(r"Stabilized1|Manual"))

        # Throttle up: ManualControlCommand.Throttle as the FC sees it follows.
        rx = page.locator("#rx-throttle")
        before = rx_throttle(await rx.text_content())
        assert before < 0.1
        await page.get_by_role("slider", name="Throttle").fill("0.6")
        await expect(rx).to_have_text(re.compile(r"^0\.[5-6]\d\d$"), timeout=15_000)

        # Another page watches; then the pilot's page closes.
        watch_ctx = await browser.new_context()
        watcher = await watch_ctx.new_page()
        await watcher.goto(sim_url)
        await expect(watcher.locator("#seat")).to_have_text("observing: another page flies")
        await expect(watcher.get_by_role("status", name="FC arming state")).to_have_text(
            "ARMED", timeout=15_000)
        await pilot_ctx.close()
        await expect(watcher.locator("#seat")).to_have_text("observing: seat free")
        await expect(watcher.get_by_role("alert")).to_contain_text("FAILSAFE", timeout=5_000)
        status = await watcher.evaluate("fetch('/api/status').then(r => r.json())")
        assert status["pilot"] == "vacant"
        assert status["sbus"]["failsafe"] is True
        # The core's lost-pilot failsafe descends: the FC sees the throttle come down.
        await expect(watcher.locator("#rx-throttle")).to_have_text(
            re.compile(r"^0\.(3[0-9]|2\d|1\d|0\d)\d$|^-"), timeout=15_000)
        await browser.close()
