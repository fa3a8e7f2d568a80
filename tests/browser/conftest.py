"""Browser tests: playwright drives Debian's chromium (never a downloaded browser)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, async_playwright

CHROMIUM = os.environ.get("PIPILOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


async def launch(playwright):  # type: ignore[no-untyped-def]
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (tools/apt/web.txt)")
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextlib.asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run `app` on a free port; yield its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


#: what a module whose tests take the shared ``browser`` puts in its pytestmark: its
#: tests and async fixtures run on the session's event loop, where chromium lives
SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """One chromium for the run: starting playwright's driver and the browser was
    most of a page test's time. Tests take it through ``browser``."""
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser(chromium: Browser) -> AsyncIterator[Browser]:
    """The shared chromium, as fresh as a new one: every page a test opens has a
    context of its own (``new_page`` makes one; cookies and storage are per
    context), and the contexts a test leaves open are closed after it."""
    assert not chromium.contexts, "a previous test left a page open"
    try:
        yield chromium
    finally:
        for ctx in list(chromium.contexts):
            await ctx.close()
