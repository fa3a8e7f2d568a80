"""What the docs-table tools share: a generated block spliced into a doc, and their command line.

Each tool renders its bench report into Markdown; this puts the result between
the doc's start and end markers, or with ``--check`` says whether the doc is
out of date (exit 1), so a test keeps committed tables equal to their reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ReportError(ValueError):
    """The report or the doc is not what the tool expects."""


def splice(doc: str, table: str, start: str, end: str) -> str:
    """``doc`` with the block between ``start`` and ``end`` replaced by ``table``."""
    if doc.count(start) != 1 or doc.count(end) != 1 or doc.index(start) > doc.index(end):
        raise ReportError(f"the doc needs one {start} ... {end} block")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table}\n{end}{tail}"


def main(argv: list[str] | None, *, name: str, description: str,
         render: Callable[[dict[str, Any]], str], doc: Path, start: str, end: str,
         report: Path | None = None) -> int:
    """``name REPORT [--doc FILE] [--check]``: 0 written or up to date, 1 out of date
    (with --check), 2 an unreadable report or doc."""
    p = argparse.ArgumentParser(prog=name, description=description)
    if report is None:
        p.add_argument("report")
    else:
        p.add_argument("report", nargs="?", default=str(report))
    p.add_argument("--doc", default=str(doc))
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    try:
        data = json.loads(Path(args.report).read_text(encoding="utf-8"))
        doc_path = Path(args.doc)
        text = doc_path.read_text(encoding="utf-8")
        new = splice(text, render(data), start, end)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    if new == text:
        return 0
    if args.check:
        print(f"{name}: {doc_path} is out of date", file=sys.stderr)
        return 1
    doc_path.write_text(new, encoding="utf-8")
    return 0
