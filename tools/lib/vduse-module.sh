# SPDX-License-Identifier: GPL-2.0
# Loading and unloading the VDUSE drivers inside the test VM. Source it; VDUSE_RS_ROOT must be set.

# vduse_load rs|c [PARAM=VALUE...]: load vduse_rs.ko (out of tree: its dependencies by
# modprobe, then insmod; VDUSE_RS_KO: another build of it) or the in-tree C vduse.ko.
vduse_load() {
	local which=$1
	shift
	case $which in
	rs)
		local dep ko=${VDUSE_RS_KO:-$VDUSE_RS_ROOT/vduse_rs.ko}
		for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
			modprobe "$dep" || return 1
		done
		insmod "$ko" "$@"
		;;
	c) modprobe vduse "$@" ;;
	*) return 1 ;;
	esac
}

# vduse_unload rs|c
vduse_unload() {
	case $1 in
	rs) rmmod vduse_rs ;;
	c) rmmod vduse ;;
	*) return 1 ;;
	esac
}

# The module name of a driver choice.
vduse_modname() {
	case $1 in rs) echo vduse_rs ;; c) echo vduse ;; esac
}
