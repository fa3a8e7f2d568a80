"""Take docs/screenshot.png: `pipilot sim` flown for a few seconds from the page.

Usage: python tools/web_screenshot.py [OUT.png]   (needs /usr/bin/chromium)
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


async def shoot(url: str, out: Path) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        await page.goto(url)
        await page.locator("#telemetry").filter(has_text="connected").wait_for(timeout=30_000)
        await page.get_by_role("button", name="Take control").click()
        await page.get_by_role("button", name="Arm", exact=True).hover()
        await page.mouse.down()
        await page.wait_for_timeout(1300)
        await page.mouse.up()
        await page.get_by_role("status", name="FC arming state").filter(
            has_text=re.compile("^ARMED$")).wait_for(timeout=15_000)
        await page.get_by_role("slider", name="Throttle").fill("0.62")
        await page.get_by_role("slider", name="Accessory 1").fill("0.4")
        await page.wait_for_timeout(3000)
        # a little roll and pitch, as a pilot would hold them
        await page.get_by_role("slider", name="Roll").fill("0.25")
        await page.get_by_role("slider", name="Pitch").fill("-0.15")
        await page.wait_for_timeout(2500)
        await page.mouse.move(5, 5)
        await page.screenshot(path=str(out), full_page=True)
        await browser.close()


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot.png"
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": home}
        proc = subprocess.Popen([sys.executable, "-m", "pipilot", "sim", "--http-port", "0",
                                 "--token", "screenshot", "--wind", "0.6,0.2",
                                 "--mount-tilt", "1.5,0"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                m = re.search(r"(http://\S+/\?token=\S+)", line)
                if m:
                    asyncio.run(shoot(m.group(1), out))
                    break
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
