#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/no-driver-suites.sh KDIR SRC: the suites that load and unload the drivers
# themselves, in one boot of the test VM (tools/vm-run --module none), in turn:
#   differential  C and Rust in the same boot, every case on both, transcripts compared
#   leak          1000 device cycles, the vdpa cases and 10 load/unload cycles per driver, then
#                 kmemleak (cleared first: what the differential left is not counted)
#   install       `make install` into the guest's module tree, modprobe, the stand-in for
#                 `vduse`, `make uninstall`
#   kselftest     tools/testing/selftests/drivers/vdpa/vduse through the kernel's kselftest
#                 Makefile in SRC (a 7.3 tree it was copied into), on each driver
# Each prints its own KTAP; the exit status is non-zero if any failed.
set -u
kdir=${1:?usage: no-driver-suites.sh KDIR SRC} src=${2:?usage: no-driver-suites.sh KDIR SRC}
t=$(cd "$(dirname "$0")" && pwd)
rc=0
"$t/differential.sh" || rc=1
"$t/leak.sh" || rc=1
"$t/install/run.sh" "$kdir" || rc=1
"$t/kselftest.sh" "$src" "$kdir" || rc=1
exit $rc
