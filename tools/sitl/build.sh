#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Build LibrePilot 16.09's simposix firmware as pipilot's SITL backend.
#
# usage: tools/sitl/build.sh LIBREPILOT_DIR
#
# Applies firmware-patches/ (the whole series) to the tree, builds the host
# tool uavobjgenerator and the simposix target twice, and leaves
#   LIBREPILOT_DIR/build/pipilot-sitl/fw_simposix_patched.elf  (the series as is)
#   LIBREPILOT_DIR/build/pipilot-sitl/fw_simposix_stock.elf    (S.Bus decoder and
#       AccelState as released: 0004 and 0005 taken out for the build)
# Run as root it installs the Debian packages the build needs first. On Debian 12
# gcc-multilib (the SITL is a 32-bit program) conflicts with gcc-aarch64-linux-gnu,
# which `make test` installs for the soft-UART's arm64 build: installing one removes
# the other. A built SITL keeps running either way (it needs only libc6-i386); to
# rebuild it after `make test`, run this script again.
# Exit status: 0 built, 1 build failed, 2 usage error or not a 16.09 tree.
set -eu

die() { echo "build.sh: $1" >&2; exit "${2:-1}"; }

[ $# -eq 1 ] || { echo "usage: $0 LIBREPILOT_DIR" >&2; exit 2; }
case "$1" in -h|--help) echo "usage: $0 LIBREPILOT_DIR"; exit 0 ;; esac
[ -d "$1" ] || die "not a directory: $1" 2
lp=$(cd "$1" && pwd -P)
here=$(cd "$(dirname "$0")/../.." && pwd -P)
patches="$here/firmware-patches"

for f in flight/targets/boards/simposix/firmware/Makefile flight/pios/common/pios_sbus.c \
         ground/uavobjgenerator/main.cpp make/scripts/version-info.py; do
    [ -f "$lp/$f" ] || die "$lp is not a LibrePilot 16.09 source tree (no $f)" 2
done
if ! "$patches/apply.sh" "$lp" --check >/dev/null 2>&1; then
    die "$lp is not an unmodified LibrePilot 16.09 tree (the patch series neither applies nor is applied); check out tag 16.09" 2
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    pkgs="make gcc g++ gcc-multilib g++-multilib python3 git qtbase5-dev qt5-qmake"
    missing=""
    for p in $pkgs; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        case "$missing" in *multilib*)
            if dpkg -s gcc-aarch64-linux-gnu >/dev/null 2>&1; then
                echo "build.sh: note: gcc-multilib replaces gcc-aarch64-linux-gnu (Debian makes them" \
                     "conflict); make test puts the cross compiler back and removes gcc-multilib"
            fi ;;
        esac
        echo "build.sh: installing$missing"
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
    fi
fi
for tool in make gcc g++ python3 git qmake; do
    command -v "$tool" >/dev/null || die "$tool is needed (Debian: see the package list in $0)"
done

"$patches/apply.sh" "$lp"
jobs=${JOBS:-2}
out="$lp/build/pipilot-sitl"
mkdir -p "$out"
cd "$lp"
make uavobjgenerator >"$out/uavobjgenerator.log" 2>&1 \
    || die "make uavobjgenerator failed: see $out/uavobjgenerator.log"

build() {  # $1: flavour
    log="$out/fw_simposix_$1.log"
    echo "build.sh: building the $1 SITL (log: $log)"
    make -j"$jobs" fw_simposix >"$log" 2>&1 || return 1
    cp build/firmware/fw_simposix/fw_simposix.elf "$out/fw_simposix_$1.elf"
}
build patched || die "the simposix build failed: see $out/fw_simposix_patched.log"

# Stock: take the decoder (0004) and AccelState (0005) patches out for one build.
behaviour="$patches/0004-sbus-resync-on-frame-boundaries.patch $patches/0005-attitude-publish-filtered-accel.patch"
restore() { GIT_CEILING_DIRECTORIES=$(dirname "$lp") git -C "$lp" apply $behaviour; }
# shellcheck disable=SC2086
GIT_CEILING_DIRECTORIES=$(dirname "$lp") git -C "$lp" apply --reverse $behaviour \
    || die "cannot take 0004/0005 out for the stock build"
if ! build stock; then
    restore
    die "the stock simposix build failed: see $out/fw_simposix_stock.log"
fi
restore
echo "build.sh: built $out/fw_simposix_stock.elf and $out/fw_simposix_patched.elf"
echo "export PIPILOT_SITL=$out/fw_simposix_stock.elf"
