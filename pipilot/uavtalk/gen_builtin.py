"""Regenerate the built-in definition set from a directory of LibrePilot XML files.

    python -m pipilot.uavtalk.gen_builtin ../shared/librepilot-16.09/uavobjectdefinition

writes ``pipilot/uavtalk/builtin.json`` (the project's own format; see
``definitions.info_to_json``). The tests check that file against the XML.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipilot.uavtalk.definitions import dump_builtin, read_xml_dir

DEFAULT_OUT = Path(__file__).with_name("builtin.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xml_dir", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    infos = read_xml_dir(args.xml_dir)
    args.out.write_text(dump_builtin(infos), encoding="ascii")
    print(f"{len(infos)} objects -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
