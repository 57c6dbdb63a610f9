#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Inside the demo VM (tools/demo): show vduse_rs.ko loaded and answering.
set -eu
bin=$VDUSE_RS_ROOT/tools/testing/vduse-tests/target/release/vduse-tests
echo "== kernel: $(uname -r)"
echo "== loaded VDUSE module:"
grep -E '^vduse' /proc/modules
echo "== /dev/vduse and /sys/class/vduse:"
ls -l /dev/vduse/
ls /sys/class/vduse/
echo "== asking /dev/vduse/control:"
"$bin" probe
