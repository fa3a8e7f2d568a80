"""Where the page's files are: a copy inside the installed package, or web/ in a checkout."""

from __future__ import annotations

import os
from pathlib import Path

from pipilot.errors import ConfigError

_HERE = Path(__file__).resolve().parent


def web_root() -> Path:
    """The directory holding index.html (PIPILOT_WEB_ROOT overrides)."""
    candidates = []
    if os.environ.get("PIPILOT_WEB_ROOT"):
        candidates.append(Path(os.environ["PIPILOT_WEB_ROOT"]))
    candidates += [_HERE / "web", _HERE.parent.parent / "web"]
    for c in candidates:
        if (c / "index.html").is_file():
            return c
    raise ConfigError("server.web_root", "the web page files (web/index.html) are missing")
