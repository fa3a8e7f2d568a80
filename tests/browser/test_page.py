"""The page against a fake vehicle: controls, hold-to-arm, seat handling, live view."""

from __future__ import annotations

import asyncio
import re

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from pipilot.core.clock import MonotonicClock
from pipilot.core.setpoints import ArmRequest
from pipilot.server.app import ServerConfig, make_app
from tests.browser.conftest import SESSION_LOOP, serve
from tests.server.fake import FakeVehicle

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120), SESSION_LOOP]

TOKEN = "browser-test-token"
NAMES = ["Throttle", "Yaw", "Roll", "Pitch",
         "Accessory 0", "Accessory 1", "Accessory 2", "Accessory 3"]


async def _rig(heartbeat_timeout: float, browser: Browser):
    fake = FakeVehicle(MonotonicClock())
    fake.telemetry["FlightStatus"] = {"Armed": "Disarmed", "FlightMode": "Stabilized1"}
    app = make_app(fake, ServerConfig(token=TOKEN, heartbeat_timeout=heartbeat_timeout))
    async with serve(app) as url:
        yield fake, url, browser


@pytest_asyncio.fixture(loop_scope="session")
async def rig(browser):
    # A generous heartbeat timeout: a starved browser on a loaded machine must not
    # withdraw the pilot here; heartbeat loss is tested in virtual time and end to end.
    async for r in _rig(3.0, browser):
        yield r


async def until(cond, timeout=5.0):
    async def _wait():
        while not cond():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(_wait(), timeout)


async def pilot_page(browser, url):
    page = await browser.new_page()
    await page.goto(f"{url}/?token={TOKEN}")
    await expect(page.locator("#conn")).to_have_text("online")
    await page.get_by_role("button", name="Take control").click()
    await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")
    return page


async def test_sliders_keyboard_and_auto_centre(rig):
    fake, url, browser = rig
    page = await browser.new_page()
    await page.goto(f"{url}/?token={TOKEN}")
    assert page.url == f"{url}/"  # the token left the address bar for a cookie
    for name in NAMES:
        await expect(page.get_by_role("slider", name=name, exact=True)).to_be_disabled()
    await page.get_by_role("button", name="Take control").click()
    for name in NAMES:
        await expect(page.get_by_role("slider", name=name, exact=True)).to_be_enabled()

    throttle = page.get_by_role("slider", name="Throttle")
    await throttle.focus()
    for _ in range(10):
        await page.keyboard.press("ArrowUp")
    await until(lambda: fake.published and abs(fake.published[-1][1].throttle - 0.10) < 1e-9)
    await asyncio.sleep(0.3)
    assert fake.published[-1][1].throttle == pytest.approx(0.10)  # throttle does not centre

    roll = page.get_by_role("slider", name="Roll")
    await roll.focus()
    await page.keyboard.down("ArrowRight")
    await until(lambda: fake.published[-1][1].roll > 0)
    await page.keyboard.up("ArrowRight")
    await until(lambda: fake.published[-1][1].roll == 0.0)
    await expect(roll).to_have_value("0")

    # Pointer (mouse or touch): drag yaw to the left end, let go: it centres.
    yaw = page.get_by_role("slider", name="Yaw")
    box = await yaw.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2, steps=5)
    await until(lambda: fake.published[-1][1].yaw < -0.5)
    await page.mouse.up()
    await until(lambda: fake.published[-1][1].yaw == 0.0)

    acc = page.get_by_role("slider", name="Accessory 2")
    await acc.fill("0.5")
    await until(lambda: fake.published[-1][1].accessories == (0.0, 0.0, 0.5, 0.0))
    # Keepalives: the page keeps publishing without any input (the heartbeat).
    n = len(fake.published)
    await asyncio.sleep(0.5)
    assert len(fake.published) >= n + 3
    assert not fake.withdrawals


async def test_hold_to_arm_needs_the_full_hold_and_shows_the_fc_state(rig):
    fake, url, browser = rig
    page = await pilot_page(browser, url)
    armed = page.get_by_role("status", name="FC arming state")
    await expect(armed).to_have_text("DISARMED")
    arm = page.get_by_role("button", name="Arm", exact=True)
    await arm.hover()
    await page.mouse.down()
    await asyncio.sleep(0.4)
    await page.mouse.up()
    await asyncio.sleep(0.8)
    assert all(s.arm is ArmRequest.NONE for _, s in fake.published)  # a tap does nothing
    await page.mouse.down()
    await asyncio.sleep(1.3)
    await page.mouse.up()
    await until(lambda: fake.published[-1][1].arm is ArmRequest.ARM)
    # The page's belief is not the state: it waits for FlightStatus.
    await expect(armed).to_have_text("DISARMED")
    fake.telemetry["FlightStatus"] = {"Armed": "Arming", "FlightMode": "Stabilized1"}
    await expect(armed).to_have_text("ARMING")
    fake.telemetry["FlightStatus"] = {"Armed": "Armed", "FlightMode": "Stabilized1"}
    await expect(armed).to_have_text("ARMED")
    await until(lambda: fake.published[-1][1].arm is ArmRequest.NONE)

    # Keyboard: hold Space on Disarm.
    disarm = page.get_by_role("button", name="Disarm")
    await disarm.focus()
    await page.keyboard.down(" ")
    await asyncio.sleep(1.3)
    await page.keyboard.up(" ")
    await until(lambda: fake.published[-1][1].arm is ArmRequest.DISARM)


async def test_live_view_shows_telemetry(rig):
    fake, url, browser = rig
    fake.telemetry.update({
        "AttitudeState": {"Roll": 12.5, "Pitch": -3.0, "Yaw": 45.0},
        "ManualControlCommand": {"Throttle": 0.42, "Roll": 0.1, "Pitch": 0.0, "Yaw": -0.2,
                                 "Connected": "True", "Channel": [1500] * 10},
        "SystemAlarms": {"Alarm": {"Receiver": "Error", "Battery": "OK"}},
        "FlightStatus": {"Armed": "Disarmed", "FlightMode": "Stabilized1"},
    })
    fake.truth = {"position": [1.0, -0.5, -2.0], "drift_m": 1.12}
    page = await browser.new_page()
    await page.goto(f"{url}/?token={TOKEN}")
    await expect(page.locator("#att")).to_have_text("12.5° / -3.0° / 45.0°")
    await expect(page.locator("#rx-throttle")).to_have_text("0.420")
    await expect(page.locator("#alarms")).to_have_text("Receiver: Error")
    await expect(page.locator("#mode")).to_have_text("Stabilized1")
    await expect(page.locator("#sim-panel")).to_be_visible()
    await expect(page.locator("#sim-drift")).to_have_text("1.12")
    await expect(page.locator("#telemetry")).to_have_text("telemetry: connected")
    await expect(page.locator("#rtt")).to_have_text(re.compile(r"rtt \d+\.\d ms"))
    fake.telemetry["AttitudeState"] = {"Roll": -20.0, "Pitch": 5.0, "Yaw": 0.0}
    await expect(page.locator("#att")).to_have_text("-20.0° / 5.0° / 0.0°")


async def test_one_pilot_explicit_takeover_and_closing_the_page(rig):
    fake, url, browser = rig
    a = await pilot_page(browser, url)
    await a.get_by_role("slider", name="Throttle").fill("0.3")
    await until(lambda: fake.published[-1][1].throttle == pytest.approx(0.3))
    ctx_b = await browser.new_context()
    b = await ctx_b.new_page()
    await b.goto(f"{url}/?token={TOKEN}")
    await expect(b.locator("#seat")).to_have_text("observing: another page flies")
    await expect(b.get_by_role("slider", name="Throttle")).to_be_disabled()
    take = b.get_by_role("button", name="Take over")
    await take.click()
    await expect(b.locator("#banner")).to_contain_text("again")
    await asyncio.sleep(0.3)
    assert b.url and (await b.locator("#seat").text_content()) != "PILOT (you fly)"
    await take.click()
    await expect(b.locator("#seat")).to_have_text("PILOT (you fly)")
    # The new pilot starts from where the old one left the sticks.
    await expect(b.get_by_role("slider", name="Throttle")).to_have_value("0.3")
    await expect(a.locator("#seat")).to_have_text("observing: another page flies")
    await expect(a.get_by_role("slider", name="Throttle")).to_be_disabled()
    assert not fake.withdrawals
    await b.close()  # the pilot's page goes away: the pilot source is withdrawn
    await until(lambda: fake.withdrawals, timeout=2.0)
    await expect(a.locator("#seat")).to_have_text("observing: seat free")
    await ctx_b.close()


async def test_without_the_token_the_page_says_how_to_log_in(rig):
    _, url, browser = rig
    page = await browser.new_page()
    await page.goto(url)
    await expect(page.get_by_role("alert")).to_contain_text("Not logged in")
    await expect(page.locator("#conn")).to_have_text("offline")
    r = await page.goto(f"{url}/?token=wrong")
    assert r is not None and r.status == 403


FAKE_GAMEPAD = """
window.__pad = {id: 'test pad', axes: [0, 0, 0, 0],
                buttons: Array.from({length: 16}, () => ({value: 0, pressed: false}))};
navigator.getGamepads = () => [window.__pad];
"""


async def test_gamepad_mapping_drives_the_sticks_when_enabled(rig):
    fake, url, browser = rig
    ctx = await browser.new_context()
    await ctx.add_init_script(FAKE_GAMEPAD)
    page = await ctx.new_page()
    await page.goto(f"{url}/?token={TOKEN}")
    await page.get_by_role("button", name="Take control").click()
    await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")
    # Right trigger -> throttle, right stick X -> roll (defaults), ignored until enabled.
    await page.evaluate("window.__pad.buttons[7].value = 0.4; window.__pad.axes[2] = 0.5")
    await asyncio.sleep(0.4)
    assert fake.published[-1][1].throttle == 0.0
    await page.locator("#gamepad summary").click()
    await page.get_by_label("Fly with the gamepad").check()
    await until(lambda: fake.published[-1][1].throttle == pytest.approx(0.4)
                and fake.published[-1][1].roll == pytest.approx(0.5))
    # Remap roll to axis 0, inverted: the mapping is configurable and kept.
    await page.get_by_label("roll gamepad index").fill("0")
    await page.get_by_label("roll gamepad index").dispatch_event("change")
    await page.get_by_label("roll gamepad invert").check()
    await page.evaluate("window.__pad.axes[0] = 0.8")
    await until(lambda: fake.published[-1][1].roll == pytest.approx(-0.8))
    saved = await page.evaluate("JSON.parse(localStorage.getItem('pipilot.gamepad')).roll")
    assert saved == {"kind": "axis", "index": 0, "invert": True}
    await ctx.close()


async def test_release_needs_a_hold_and_withdraws_the_pilot(rig):
    fake, url, browser = rig
    page = await pilot_page(browser, url)
    release = page.get_by_role("button", name="Release control")
    await release.click()  # a click is not a release
    await asyncio.sleep(0.5)
    await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")
    assert not fake.withdrawals
    await release.hover()
    await page.mouse.down()
    await asyncio.sleep(1.3)
    await page.mouse.up()
    await expect(page.locator("#seat")).to_have_text("observing: seat free")
    assert fake.withdrawals


async def test_touch_moves_sliders_and_sticks_centre_on_release(rig):
    fake, url, browser = rig
    ctx = await browser.new_context(has_touch=True, is_mobile=True,
                                    viewport={"width": 800, "height": 1200})
    page = await ctx.new_page()
    await page.goto(f"{url}/?token={TOKEN}")
    await page.get_by_role("button", name="Take control").tap()
    await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")
    throttle = page.get_by_role("slider", name="Throttle")
    box = await throttle.bounding_box()
    assert box is not None
    await page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.25)
    await until(lambda: fake.published[-1][1].throttle > 0.5)
    roll = page.get_by_role("slider", name="Roll")
    box = await roll.bounding_box()
    assert box is not None
    n = len(fake.published)
    await page.touchscreen.tap(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    await until(lambda: any(s.roll > 0.5 for _, s in fake.published[n:]))
    await until(lambda: fake.published[-1][1].roll == 0.0)  # centred on release
    await asyncio.sleep(0.3)
    assert fake.published[-1][1].throttle > 0.5  # throttle stays
    await ctx.close()


async def test_a_quick_flick_within_the_send_gap_still_reaches_the_craft(rig):
    # A deflection made less than MIN_GAP_MS after the last change waits for its
    # send; a release in that wait used to centre the stick first, so the flick
    # never went out at all (the touch test above lost its tap that way).
    fake, url, browser = rig
    page = await pilot_page(browser, url)
    n = len(fake.published)
    await page.evaluate("""() => {
        const set = (id, v) => {
            const el = document.getElementById(id);
            el.value = String(v);
            el.dispatchEvent(new Event('input', {bubbles: true}));
        };
        set('throttle', 0.3);
        const roll = document.getElementById('roll');
        roll.dispatchEvent(new PointerEvent('pointerdown', {bubbles: true}));
        set('roll', 0.8);
        window.dispatchEvent(new PointerEvent('pointerup'));
    }""")
    await until(lambda: any(s.roll > 0.5 for _, s in fake.published[n:]))
    await until(lambda: fake.published[-1][1].roll == 0.0)  # and centred after it
    assert fake.published[-1][1].throttle == pytest.approx(0.3)
    await page.close()


DRAG_JS = """([hz, n]) => {
    // A drag of n input events, one every 1/hz s on the page's own clock
    // (performance.now, replaced for the loop, then held until the real clock
    // has caught up with it, so it never runs back): how many went out at once?
    const realNow = performance.now.bind(performance);
    let fake = performance.now();
    performance.now = () => fake;
    const sent = [];
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        if (JSON.parse(data).type === 'control') sent.push(fake);
        return send.call(this, data);
    };
    const el = document.getElementById('acc1');
    let atOnce = 0;
    try {
        for (let i = 0; i < n; i++) {
            fake += 1000 / hz;
            const before = sent.length;
            el.value = String((i % 20) / 20 - 0.5);
            el.dispatchEvent(new Event('input', {bubbles: true}));
            if (sent.length === before + 1) atOnce++;
        }
    } finally {
        const end = fake;
        performance.now = () => Math.max(realNow(), end);
        WebSocket.prototype.send = send;
    }
    return atOnce;
}"""


async def test_a_drag_at_display_rate_goes_out_as_it_happens(rig):
    # A drag delivers an input event per display frame: at 60 Hz each must go out
    # in its own event (a 20 ms minimum gap held half of them back, 10 ms on
    # average); a faster source is held to the send budget the server allows.
    # (30 events: the server takes a burst of 40 from a page at once)
    fake, url, browser = rig
    page = await pilot_page(browser, url)
    await asyncio.sleep(0.2)                     # the send budget refills
    n = len(fake.published)
    assert await page.evaluate(DRAG_JS, [60, 30]) == 30
    await until(lambda: len(fake.published) - n >= 30)  # and the server took them all
    await asyncio.sleep(0.5 + 0.2)              # the clock catches up, the budget refills
    # at 144 Hz the burst (4) and what refills meanwhile (75/s) go at once; then
    # one waits for its budget, and the events after it join that send
    assert 4 <= await page.evaluate(DRAG_JS, [144, 30]) <= 8
    await page.close()


@pytest_asyncio.fixture(loop_scope="session")
async def rig_1s(browser):
    """As rig, with a 1 s heartbeat timeout: for the tests where the page must fall silent."""
    async for r in _rig(1.0, browser):
        yield r


async def test_losing_the_gamepad_in_flight_lets_the_pilot_failsafe_apply(rig_1s):
    # The page went on sending the vanished gamepad's last sticks (here throttle
    # 0.6, roll 0.3) as the heartbeat, for ever: no failsafe.
    fake, url, browser = rig_1s
    ctx = await browser.new_context()
    await ctx.add_init_script(FAKE_GAMEPAD)
    page = await ctx.new_page()
    await page.goto(f"{url}/?token={TOKEN}")
    await page.get_by_role("button", name="Take control").click()
    await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")
    await page.locator("#gamepad summary").click()
    await page.get_by_label("Fly with the gamepad").check()
    await page.evaluate("window.__pad.buttons[7].value = 0.6; window.__pad.axes[2] = 0.3")
    await until(lambda: fake.published[-1][1].throttle == pytest.approx(0.6))
    await page.evaluate("navigator.getGamepads = () => [null, null, null, null]")
    await until(lambda: fake.withdrawals, timeout=6.0)  # the server heard silence
    await expect(page.get_by_role("alert")).to_contain_text("Gamepad lost")
    await expect(page.locator("#seat")).to_have_text("PILOT: heartbeat lost")
    n = len(fake.published)
    await asyncio.sleep(1.5)
    assert len(fake.published) == n  # nothing sent while the gamepad is gone
    # The gamepad comes back, released: its sticks as they are now resume control.
    await page.evaluate("window.__pad.buttons[7].value = 0.0; window.__pad.axes[2] = 0.0;"
                        "navigator.getGamepads = () => [window.__pad]")
    await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")
    assert fake.published[-1][1].throttle == 0.0 and fake.published[-1][1].roll == 0.0
    await ctx.close()


HIDE = """Object.defineProperty(document, 'hidden', {value: %s, configurable: true});
document.dispatchEvent(new Event('visibilitychange'));"""


async def test_a_hidden_pilot_page_falls_silent_instead_of_a_heartbeat_that_comes_and_goes(
        rig_1s):
    # A hidden tab's timers fire about once a second: each keepalive brought the
    # seat back with the stale sticks for a moment, then the failsafe again.
    fake, url, browser = rig_1s
    page = await pilot_page(browser, url)
    await page.get_by_role("slider", name="Throttle").fill("0.4")
    await until(lambda: fake.published[-1][1].throttle == pytest.approx(0.4))
    await page.evaluate(HIDE % "true")
    await until(lambda: fake.withdrawals, timeout=6.0)
    n = len(fake.published)
    await asyncio.sleep(1.5)
    assert len(fake.published) == n  # silent while hidden (timers here are not throttled)
    await page.evaluate(HIDE % "false")
    await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")
    assert fake.published[-1][1].throttle == pytest.approx(0.4)  # the sliders as shown
