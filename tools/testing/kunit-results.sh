#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM after vduse_rs.ko was loaded: prints the KTAP of its KUnit suites
# (#[kunit_tests] in rust/, run by KUnit when the module loads) from dmesg. Exits 1 if a test
# failed or no suite ran.
out=$(dmesg | sed 's/^\[[^]]*\] //' | sed -n '/# Subtest: vduse_rs_/,/^ok [0-9]* vduse_rs_\|^not ok [0-9]* vduse_rs_/p' |
	grep -E '^ *(ok|not ok|# Subtest|1\.\.|#)')
if [ -z "$out" ]; then
	echo "not ok 1 kunit: no vduse_rs KUnit suite ran (CONFIG_KUNIT?)"
	exit 1
fi
echo "$out"
! echo "$out" | grep -q '^ *not ok'
