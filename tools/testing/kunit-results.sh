#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM after vduse_rs.ko was loaded: reports its KUnit suites (#[kunit_tests]
# in rust/, run by KUnit when the module loads) from dmesg, one KTAP point per KUnit test case:
# `ok N kunit/SUITE/TEST`. The suites' own summary lines (which repeat their cases' results) are
# printed as comments, so that nothing is counted twice. Exits 1 if a test failed or no suite ran.
log=$(dmesg | sed 's/^\[[^]]*\] //' | sed -n '/# Subtest: vduse_rs_/,/^ok [0-9]* vduse_rs_\|^not ok [0-9]* vduse_rs_/p')
out=$(echo "$log" | awk '
	/# Subtest: / { suite = $3; cases = 0; bad = 0; next }
	# A case of the current suite (indented once); deeper levels are parameters of a case.
	/^    (not )?ok [0-9]+ / {
		line = $0; sub(/^    /, "", line)
		notok = line ~ /^not ok/
		sub(/^(not )?ok [0-9]+ /, "", line)
		n++; cases++
		if (notok) { bad++; printf "not ok %d kunit/%s/%s\n", n, suite, line }
		else printf "ok %d kunit/%s/%s\n", n, suite, line
		next
	}
	/^(not )?ok [0-9]+ vduse_rs_/ {
		print "# suite: " $0
		# A suite that failed without a failed case of its own (e.g. its init) is a failure.
		if ($1 == "not" && bad == 0) { n++; printf "not ok %d kunit/%s (suite failed)\n", n, suite }
		if (cases == 0 && $1 != "not") { n++; printf "not ok %d kunit/%s (no test case)\n", n, suite }
		next
	}
	/^ *# / { print "#" substr($0, index($0, "#") + 1) }
	END { if (n == 0) print "not ok 1 kunit: no vduse_rs KUnit suite ran (CONFIG_KUNIT?)" }
')
echo "$out"
! echo "$out" | grep -q '^not ok'
