#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Apply (or with --check only test) the pipilot patch series to a LibrePilot
# 16.09 source tree. The series goes in as a whole or not at all.
#
# Exit status: 0 applied / would apply / already applied,
#              1 the series does not apply to this tree, 2 usage error.
set -eu

usage() {
    echo "usage: $0 LIBREPILOT_DIR [--check]" >&2
    echo "  applies firmware-patches/[0-9][0-9][0-9][0-9]-*.patch in order with git apply;" >&2
    echo "  --check only tests that the series applies and changes nothing" >&2
}

dir=""
check=0
for arg in "$@"; do
    case "$arg" in
        --check) check=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "apply.sh: unknown option: $arg" >&2; usage; exit 2 ;;
        *)
            if [ -n "$dir" ]; then
                echo "apply.sh: more than one directory given" >&2; usage; exit 2
            fi
            dir=$arg ;;
    esac
done
if [ -z "$dir" ]; then
    usage; exit 2
fi
if [ ! -d "$dir" ]; then
    echo "apply.sh: not a directory: $dir" >&2; exit 2
fi
dir=$(cd "$dir" && pwd -P)
for f in flight/pios/common/pios_sbus.c make/scripts/version-info.py; do
    if [ ! -f "$dir/$f" ]; then
        echo "apply.sh: $dir is not a LibrePilot source tree (no $f)" >&2; exit 2
    fi
done
command -v git >/dev/null || { echo "apply.sh: git is needed" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd -P)
set -- "$here"/[0-9][0-9][0-9][0-9]-*.patch
if [ ! -f "$1" ]; then
    echo "apply.sh: no patches found in $here" >&2; exit 2
fi

# Never let git find an enclosing repository above the tree: inside one,
# git apply would silently skip paths outside the current directory.
GIT_CEILING_DIRECTORIES=$(dirname "$dir")
export GIT_CEILING_DIRECTORIES
gitapply() { git -C "$dir" apply "$@"; }

if gitapply --check "$@" 2>/dev/null; then
    if [ "$check" = 1 ]; then
        echo "apply.sh: the series ($# patches) applies cleanly to $dir"
        exit 0
    fi
    gitapply "$@"
    echo "apply.sh: applied $# patches to $dir"
    exit 0
fi
# An applied series comes off in reverse order.
reversed=""
for p in "$@"; do reversed="\"$p\" $reversed"; done
if eval "gitapply --reverse --check $reversed" 2>/dev/null; then
    echo "apply.sh: the series is already applied to $dir"
    exit 0
fi
echo "apply.sh: the series does not apply to $dir (is it an unmodified LibrePilot 16.09 tree?)" >&2
gitapply --check "$@" || true
exit 1
