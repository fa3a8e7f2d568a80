"""End to end: `pipilot sim` in real time with its simulated flow deck, flown from the
page: take off, press Hold, and the craft holds where it is while the sticks are centred."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import SESSION_LOOP
from tests.browser.test_sim import running_sim

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300), SESSION_LOOP]

#: A steady wind (0.58 m/s) with gusts: unheld, the craft drifts downwind.
WIND = "0.5,0.3,0.1"


@pytest.fixture
def windy_sim(tmp_path: Path) -> Iterator[str]:
    with running_sim(tmp_path, "--wind", WIND) as url:
        yield url


async def status(page: Page) -> dict[str, Any]:
    got: dict[str, Any] = await page.evaluate("fetch('/api/status').then(r => r.json())")
    return got


async def wait_status(page: Page, cond: Any, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        st = await status(page)
        if cond(st):
            return st
        assert time.monotonic() < deadline, (what, st)
        await asyncio.sleep(0.2)


async def test_hold_from_the_page_keeps_the_simulated_craft_in_place(
        windy_sim: str, browser: Browser) -> None:
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await page.goto(windy_sim)
    await expect(page.locator("#telemetry")).to_have_text("telemetry: connected",
                                                          timeout=30_000)
    # the deck's MPU-6050 gives the rates; the FC was asked for the period the line carries
    await expect(page.locator("#hold-rates")).to_have_text("IMU; attitude every 200 ms",
                                                           timeout=30_000)
    hold = page.get_by_role("button", name="Hold", exact=True)
    await expect(hold).to_be_disabled()   # observing: take control first
    await page.get_by_role("button", name="Take control").click()
    await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")
    armed = page.get_by_role("status", name="FC arming state")
    arm = page.get_by_role("button", name="Arm", exact=True)
    for attempt in range(3):
        # on a loaded machine the simulated FC can lose enough frames to miss a gesture
        await arm.hover()
        await page.mouse.down()
        await page.wait_for_timeout(1300)
        await page.mouse.up()
        try:
            await expect(armed).to_have_text("ARMED", timeout=10_000)
            break
        except AssertionError:
            if attempt == 2:
                raise

    # Take off to about 1 m and hover there, flying the throttle by eye as a pilot
    # would (the test reads the simulator's truth; the hold never does).
    throttle = page.get_by_role("slider", name="Throttle", exact=True)
    # this pilot's reaction time is its status polls, which a loaded machine delays:
    # it then over-corrects for a while (40 s ran out with the craft still bobbing)
    deadline = time.monotonic() + 120.0
    steady = 0
    while steady < 5:
        assert time.monotonic() < deadline, await status(page)
        truth = (await status(page))["hold_truth"]
        h, climb = truth["height_m"], truth["climb_mps"]
        steady = steady + 1 if abs(h - 1.0) < 0.3 and abs(climb) < 0.25 else 0
        thr = min(0.6, max(0.35, 0.47 + 0.1 * (1.0 - h) - 0.1 * climb))
        await throttle.fill(f"{thr:.2f}")
        await asyncio.sleep(0.2)

    await expect(hold).to_be_enabled()
    await hold.click()
    await expect(hold).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_role("slider", name="Throttle: climb rate")).to_have_value("0.5")
    await expect(page.locator("#hold-state")).to_have_text("HOLDING", timeout=15_000)
    await expect(page.locator("#hold-height")).to_have_text(
        re.compile(r"^\d+\.\d\d est / \d+\.\d\d true$"))
    st = await wait_status(page, lambda s: s["pilot_hold"]["flies"] == "hold"
                           and s["sbus"]["source"] == "hold", 5, "the hold does not fly")

    # Sticks centred: the hold flies. Let it settle, then watch where the craft is.
    await page.wait_for_timeout(3000)
    samples = []
    t_end = time.monotonic() + 5.0
    while time.monotonic() < t_end:
        st = await status(page)
        assert st["hold"]["state"] == "holding", st["hold"]
        samples.append(st["hold_truth"])
        await asyncio.sleep(0.2)
    assert len(samples) >= 5
    n0, e0 = samples[0]["position_m"]
    moved = max(math.hypot(s["position_m"][0] - n0, s["position_m"][1] - e0) for s in samples)
    speeds = sorted(s["speed_mps"] for s in samples)
    heights = [s["height_m"] for s in samples]
    # generous bounds (a loaded machine delays the real-time loop). bench/hold_page.py
    # (10 s held, seeds 3, 5, 8): the craft swings about the held point at a median
    # 0.2-0.4 m/s but stays within 0.4-0.7 m of it; the same flight without Hold
    # drifted 2.0 m in these 5 s. The speed bound catches a growing oscillation.
    assert moved < 1.2, (moved, samples)
    assert speeds[int(0.9 * len(speeds))] < 0.8, speeds
    assert max(heights) - min(heights) < 0.4 and min(heights) > 0.2, heights

    # Hold off: the pilot flies on from the hover throttle the hold learned.
    hover = st["hold"]["hover_throttle"]
    await hold.click()
    await expect(hold).to_have_attribute("aria-pressed", "false")
    await expect(throttle).to_have_value(re.compile(r"^0\.\d+$"))
    assert abs(float(await throttle.input_value()) - hover) < 0.02
    st = await wait_status(page, lambda s: s["sbus"]["source"] == "pilot", 5, "pilot back")
    assert not st["sbus"]["failsafe"]
    await page.close()
