"""The page tells the truth and can be used by everyone: banners that clear with
their cause, telemetry loss with its age, zoom, keyboard and screen reader arming,
and text contrast, checked in chromium against a fake vehicle."""

from __future__ import annotations

import asyncio
import re

import pytest
import pytest_asyncio
from playwright.async_api import expect

from pipilot.core.setpoints import ArmRequest
from tests.browser.conftest import SESSION_LOOP
from tests.browser.test_page import FAKE_GAMEPAD, TOKEN, _rig, pilot_page, until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120), SESSION_LOOP]


@pytest_asyncio.fixture(loop_scope="session")
async def rig(browser):
    async for r in _rig(3.0, browser):
        yield r

#: WCAG 2.x contrast of every visible text element against what is behind it:
#: the backgrounds of its ancestors composited (alpha and opacity included) over
#: the white canvas. Large text (24 px, or 18.66 px bold) needs 3:1, the rest 4.5:1.
CONTRAST = """() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) throw new Error(`colour not understood: ${c}`);
    const p = m[1].split(/[\\s,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (t, b) => [0, 1, 2].map((i) => t[i] * t[3] + b[i] * (1 - t[3])).concat(1);
  const mix = (o, a, b) => [0, 1, 2].map((i) => a[i] * o + b[i] * (1 - o)).concat(1);
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const ratio = (a, b) => {
    const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const colours = (el) => {
    const chain = [];
    for (let e = el; e; e = e.parentElement) chain.unshift(e);
    let bg = [255, 255, 255, 1];
    const groups = [];
    for (const e of chain) {
      const cs = getComputedStyle(e);
      if (Number(cs.opacity) < 1) groups.push({ o: Number(cs.opacity), backdrop: bg });
      if (cs.backgroundImage !== 'none') throw new Error(`background image: ${e.id || e.tagName}`);
      bg = over(parse(cs.backgroundColor), bg);
    }
    let fg = over(parse(getComputedStyle(el).color), bg);
    for (const g of groups.reverse()) {
      fg = mix(g.o, fg, g.backdrop);
      bg = mix(g.o, bg, g.backdrop);
    }
    return [fg, bg];
  };
  const texty = (el) => [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())
    || (el.matches('select, input:not([type=range]):not([type=checkbox])'));
  const out = { checked: 0, failures: [] };
  for (const el of document.querySelectorAll('body *')) {
    const shown = el.checkVisibility({ visibilityProperty: true, opacityProperty: true });
    if (!texty(el) || !shown) continue;
    const r = el.getBoundingClientRect();
    if (r.width <= 1 || r.height <= 1) continue;  // visually hidden (screen reader text)
    const cs = getComputedStyle(el);
    const size = parseFloat(cs.fontSize), weight = Number(cs.fontWeight);
    const large = size >= 24 || (size >= 18.66 && weight >= 700);
    const [fg, bg] = colours(el);
    const cr = ratio(fg, bg);
    out.checked += 1;
    if (cr < (large ? 3 : 4.5)) {
      out.failures.push({ text: (el.textContent || el.value || '').trim().slice(0, 40),
        id: el.id, ratio: Math.round(cr * 100) / 100, size, weight, fg: cs.color });
    }
  }
  return out;
}"""


async def check_contrast(page, at_least):
    got = await page.evaluate(CONTRAST)
    assert got["checked"] >= at_least, got
    assert got["failures"] == [], got["failures"]


async def test_the_contrast_check_finds_low_contrast(browser):
    # the checker itself: the old banner's light text on #e0483e is 3.45:1
    page = await browser.new_page()
    await page.set_content(
        '<body style="background:#11151a"><div style="background:#e0483e">'
        '<span style="color:#e8edf2">low</span></div>'
        '<p style="color:#e8edf2;opacity:.45">faded</p>'
        '<p style="color:#8b97a5;font-size:24px">large muted</p></body>')
    got = await page.evaluate(CONTRAST)
    await page.close()
    assert got["checked"] == 3
    assert sorted((f["text"], f["ratio"]) for f in got["failures"]) == [
        ("faded", pytest.approx(4.0, abs=0.05)), ("low", 3.45)]


async def test_all_text_has_enough_contrast_in_every_state(rig):
    fake, url, browser = rig
    fake.telemetry.update({
        "SystemAlarms": {"Alarm": {"Receiver": "Error", "Battery": "Warning",
                                   "Stack": "Critical"}},
        "FlightStatus": {"Armed": "Armed", "FlightMode": "Stabilized1"},
        "ManualControlCommand": {"Throttle": 0.4, "Roll": 0.0, "Pitch": 0.0, "Yaw": 0.0,
                                 "Channel": [1500] * 10},
    })
    # An observer while another page flies: disabled controls, warnings, a takeover
    # notice, FAILSAFE and telemetry-lost banners.
    other = await pilot_page(browser, url)
    stats = fake.link_stats
    fake.link_stats = lambda: {**stats(), "failsafe": True, "failsafe_state": "descent",
                               "failsafe_reason": "no fresh control source: descending"}
    fake.link = {"configured": True, "connected": False, "was_connected": True, "age_s": 3.0}
    ctx = await browser.new_context()
    await ctx.add_init_script(FAKE_GAMEPAD.replace("[window.__pad]", "[]"))
    page = await ctx.new_page()
    await page.goto(f"{url}/?token={TOKEN}")
    await expect(page.locator("#seat")).to_have_text("observing: another page flies")
    await expect(page.get_by_role("alert").filter(has_text="FAILSAFE")).to_be_visible()
    await check_contrast(page, 50)
    await page.get_by_role("button", name="Take over").click()
    await expect(page.locator("#banner")).to_contain_text("again")
    await expect(page.locator("#telemetry-banner")).to_be_visible()
    await check_contrast(page, 60)
    # The pilot: an arm confirmation offered, the gamepad panel open and its gamepad lost.
    await page.get_by_role("button", name="Take over").click()
    await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")
    await page.get_by_role("button", name="Arm", exact=True).click()
    await expect(page.get_by_role("button", name="Confirm arm")).to_be_visible()
    await page.locator("#gamepad summary").click()
    await page.get_by_label("Fly with the gamepad").check()
    await expect(page.locator("#gamepad-banner")).to_be_visible()
    await check_contrast(page, 70)
    # No telemetry at all, nothing in failsafe.
    fake.link = {"configured": False, "connected": False, "was_connected": False, "age_s": None}
    fake.link_stats = stats
    await expect(page.locator("#telemetry")).to_have_text("telemetry: none")
    await check_contrast(page, 60)
    await ctx.close()
    await other.close()


async def test_the_page_can_be_zoomed_and_reflows_at_200_percent(rig):
    fake, url, browser = rig
    fake.telemetry.update({
        "ManualControlCommand": {"Throttle": 0.42, "Roll": -0.1, "Pitch": 0.0, "Yaw": 0.2,
                                 "Channel": [1500] * 10},
        "FlightStatus": {"Armed": "Disarmed", "FlightMode": "Stabilized1"},
        "SystemAlarms": {"Alarm": {"Receiver": "Error"}},
    })
    # 1280 x 800 at 200 % zoom lays out as 640 x 400 CSS pixels; 320 is WCAG's reflow width.
    for width, height in ((640, 400), (320, 640)):
        ctx = await browser.new_context(viewport={"width": width, "height": height},
                                        device_scale_factor=2)
        page = await ctx.new_page()
        await page.goto(f"{url}/?token={TOKEN}")
        content = await page.locator('meta[name="viewport"]').get_attribute("content")
        assert content is not None
        assert "user-scalable=no" not in content.replace(" ", "")
        assert "maximum-scale" not in content
        await page.get_by_role("button", name="Take control").click()
        await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{overflow} px of horizontal scrolling at {width} px"
        for role, name in [("button", "Arm"), ("button", "Disarm"), ("button", "Release control"),
                           ("slider", "Throttle"), ("slider", "Roll"), ("slider", "Accessory 3")]:
            el = page.get_by_role(role, name=name, exact=True)
            await el.scroll_into_view_if_needed()
            box = await el.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, name
        await ctx.close()


async def tab_to(page, element_id, limit=60):
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


async def test_keyboard_arming_asks_for_a_second_explicit_confirmation(rig):
    fake, url, browser = rig
    page = await pilot_page(browser, url)
    await page.evaluate("document.activeElement.blur()")
    await tab_to(page, "arm")
    await page.keyboard.press("Enter")  # one activation: offered, not armed
    confirm = page.get_by_role("button", name="Confirm arm")
    await expect(confirm).to_be_visible()
    await expect(page.locator("#announcer")).to_contain_text("Confirm arm within 5 s")
    await asyncio.sleep(0.6)
    assert all(s.arm is ArmRequest.NONE for _, s in fake.published)
    await page.keyboard.press("Tab")  # the confirmation comes next in the tab order
    assert await page.evaluate("document.activeElement.id") == "arm-confirm"
    await page.keyboard.press("Enter")
    await until(lambda: fake.published[-1][1].arm is ArmRequest.ARM)
    await expect(confirm).to_be_hidden()

    # Space on Disarm, once, then nothing: the offer runs out and nothing is sent.
    n = len(fake.published)
    await tab_to(page, "disarm")
    await page.keyboard.press(" ")
    await expect(page.get_by_role("button", name="Confirm disarm")).to_be_visible()
    await expect(page.get_by_role("button", name="Confirm disarm")).to_be_hidden(timeout=8000)
    await expect(page.locator("#announcer")).to_contain_text("not confirmed")
    assert all(s.arm is not ArmRequest.DISARM for _, s in fake.published[n:])
    # Escape withdraws an offer.
    await page.get_by_role("button", name="Disarm").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Confirm disarm")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("button", name="Confirm disarm")).to_be_hidden()


async def test_a_double_click_does_not_arm_and_a_screen_reader_click_can(rig):
    fake, url, browser = rig
    page = await pilot_page(browser, url)
    await page.get_by_role("button", name="Arm", exact=True).dblclick()
    await expect(page.get_by_role("button", name="Confirm arm")).to_be_visible()
    await asyncio.sleep(0.6)
    assert all(s.arm is ArmRequest.NONE for _, s in fake.published)
    # A screen reader activates with a bare click event (no pointer, no key).
    await page.evaluate("document.getElementById('disarm').click()")
    await expect(page.get_by_role("button", name="Confirm disarm")).to_be_visible()
    await asyncio.sleep(0.6)
    assert all(s.arm is ArmRequest.NONE for _, s in fake.published)
    await page.evaluate("document.getElementById('disarm-confirm').click()")
    # every publish before was NONE (asserted above): any DISARM now is the click's
    await until(lambda: any(s.arm is ArmRequest.DISARM for _, s in fake.published), 15.0)
    # Losing the seat withdraws a pending confirmation.
    await page.get_by_role("button", name="Arm", exact=True).click()
    confirm = page.get_by_role("button", name="Confirm arm")
    await expect(confirm).to_be_visible()
    other = await browser.new_context()
    b = await other.new_page()
    await b.goto(f"{url}/?token={TOKEN}")
    await b.get_by_role("button", name="Take over").click()
    await b.get_by_role("button", name="Take over").click()
    await expect(page.locator("#seat")).to_have_text("observing: another page flies")
    await expect(confirm).to_be_hidden()
    await other.close()


async def test_the_gamepad_lost_banner_goes_with_the_seat(rig):
    # It said "Gamepad lost" for ever once the page was no longer the pilot.
    _, url, browser = rig
    ctx = await browser.new_context()
    await ctx.add_init_script(FAKE_GAMEPAD)
    page = await ctx.new_page()
    await page.goto(f"{url}/?token={TOKEN}")
    await page.get_by_role("button", name="Take control").click()
    await expect(page.locator("#seat")).to_have_text("PILOT (you fly)")
    await page.locator("#gamepad summary").click()
    await page.get_by_label("Fly with the gamepad").check()
    body = page.locator("body")
    await page.evaluate("navigator.getGamepads = () => [null]")
    await expect(body).to_contain_text("Gamepad lost", use_inner_text=True)
    await page.evaluate("navigator.getGamepads = () => [window.__pad]")  # back
    await expect(body).not_to_contain_text("Gamepad lost", use_inner_text=True)
    await page.evaluate("navigator.getGamepads = () => [null]")
    await expect(body).to_contain_text("Gamepad lost", use_inner_text=True)
    other = await browser.new_context()
    b = await other.new_page()
    await b.goto(f"{url}/?token={TOKEN}")
    await b.get_by_role("button", name="Take over").click()
    await b.get_by_role("button", name="Take over").click()
    await expect(page.locator("#seat")).to_have_text("observing: another page flies")
    await expect(body).not_to_contain_text("Gamepad lost", use_inner_text=True)
    await other.close()
    await ctx.close()


async def test_failsafe_and_telemetry_banners_follow_what_the_server_says(rig):
    fake, url, browser = rig
    page = await browser.new_page()
    await page.goto(f"{url}/?token={TOKEN}")
    body = page.locator("body")
    await expect(page.locator("#telemetry")).to_have_text("telemetry: connected")
    stats = fake.link_stats
    fake.link_stats = lambda: {**stats(), "failsafe": True, "failsafe_state": "failsafe",
                               "failsafe_reason": "link error: EIO"}
    await expect(page.get_by_role("alert").filter(has_text="FAILSAFE")).to_have_text(
        "FAILSAFE: link error: EIO")
    fake.link_stats = lambda: {**stats(), "failsafe": False, "failsafe_state": "throttle_cut",
                               "failsafe_reason": "descent time over: throttle cut"}
    await expect(body).not_to_contain_text("FAILSAFE", use_inner_text=True)
    # Telemetry: stale beyond the bound while still connected, then down, then back.
    fake.link = {"configured": True, "connected": True, "was_connected": True, "age_s": 1.6}
    await expect(page.locator("#telemetry-banner")).to_contain_text("Telemetry lost: 1.6 s")
    await expect(page.locator("#telemetry")).to_have_text("telemetry: lost")
    fake.link = {"configured": True, "connected": False, "was_connected": True, "age_s": 7.25}
    await expect(page.locator("#telemetry-banner")).to_contain_text("Telemetry lost: 7.3 s")
    fake.link = {"configured": True, "connected": True, "was_connected": True, "age_s": 0.1}
    await expect(page.locator("#telemetry-banner")).to_be_hidden()
    await expect(page.locator("#telemetry")).to_have_text("telemetry: connected")
    # Not yet connected since start: not a loss. No telemetry at all: said, no alarm.
    fake.link = {"configured": True, "connected": False, "was_connected": False, "age_s": None}
    await expect(page.locator("#telemetry")).to_have_text("telemetry: disconnected")
    await expect(page.locator("#telemetry-banner")).to_be_hidden()
    fake.link = {"configured": False, "connected": False, "was_connected": False, "age_s": None}
    await expect(page.locator("#telemetry")).to_have_text("telemetry: none")
    await expect(page.locator("#telemetry")).not_to_have_class(re.compile(r"\bbad\b"))
    await expect(page.locator("#fclink")).to_contain_text("no telemetry port")
    await expect(page.locator("#telemetry-banner")).to_be_hidden()
    await page.close()


async def test_every_control_has_its_name_and_role(rig):
    # The names pages, tests and tools rely on stay as they are; every control,
    # the gamepad mapping included, has a name a screen reader can say.
    _, url, browser = rig
    page = await pilot_page(browser, url)
    await page.get_by_role("button", name="Arm", exact=True).click()
    await page.locator("#gamepad summary").click()
    for role, names in [
        ("button", ["Arm", "Disarm", "Release control", "Confirm arm", "Hold"]),
        ("slider", ["Throttle", "Yaw", "Roll", "Pitch",
                    "Accessory 0", "Accessory 1", "Accessory 2", "Accessory 3"]),
        ("status", ["Server link", "Telemetry link", "Pilot seat", "FC arming state"]),
        ("checkbox", ["Fly with the gamepad", "roll gamepad invert"]),
        ("spinbutton", ["throttle gamepad index", "Hold gamepad button"]),
        ("combobox", ["pitch gamepad source"]),
    ]:
        for name in names:
            await expect(page.get_by_role(role, name=name, exact=True)).to_have_count(1)
        controls = page.get_by_role(role)
        for i in range(await controls.count()):
            snap = await controls.nth(i).aria_snapshot()
            if role != "status":  # the value outputs are unnamed status regions
                assert re.match(rf'- {role} "[^"]+"', snap), snap
    await page.close()
