#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Inside the demo VM (tools/demo), with a VDUSE driver loaded (vduse_rs.ko): the Rust sample
# daemon serves a RAM-backed virtio-blk disk; format it, write and read a file, tear
# everything down.
set -eu
bin=$VDUSE_RS_ROOT/samples/target/release/vduse-blk
name=demo0
mnt=$(mktemp -d)
echo "== starting: vduse-blk --name $name --size 64M (RAM)"
"$bin" --name "$name" --size 64M 2>"$VM_OUT/demo-vduse-blk.log" &
daemon=$!
for _ in $(seq 100); do [ -c "/dev/vduse/$name" ] && break; sleep 0.1; done
echo "== vdpa dev add name $name mgmtdev vduse"
vdpa dev add name "$name" mgmtdev vduse
dev=
for _ in $(seq 300); do
	for b in /sys/bus/vdpa/devices/"$name"/virtio*/block/*; do
		[ -e "$b" ] && dev=/dev/${b##*/}
	done
	[ -n "$dev" ] && [ -b "$dev" ] && break
	sleep 0.1
done
[ -b "$dev" ] || { echo "no block device appeared"; exit 1; }
echo "== $dev: $(cat /sys/block/${dev#/dev/}/size) sectors"
mkfs.ext4 -q -F "$dev"
mount "$dev" "$mnt"
echo "hello from a Rust VDUSE daemon" >"$mnt/hello.txt"
umount "$mnt"
mount "$dev" "$mnt"
echo "== read back after remount: $(cat "$mnt/hello.txt")"
umount "$mnt"
echo "== teardown: vdpa dev del, SIGTERM the daemon (it destroys the device)"
vdpa dev del "$name"
kill -TERM "$daemon"
wait "$daemon"
[ ! -e "/dev/vduse/$name" ] && echo "== /dev/vduse/$name is gone: clean"

# The network device: samples/vduse-net in its own network namespace, its TAP the other end
# of the VDUSE interface.
net=$VDUSE_RS_ROOT/samples/target/release/vduse-net
modprobe virtio_net
ip netns add demo-peer
echo "== starting (in netns demo-peer): vduse-net --name demonet --tap demotap0"
ip netns exec demo-peer "$net" --name demonet --tap demotap0 2>"$VM_OUT/demo-vduse-net.log" &
netd=$!
for _ in $(seq 100); do [ -c /dev/vduse/demonet ] && break; sleep 0.1; done
echo "== vdpa dev add name demonet mgmtdev vduse"
vdpa dev add name demonet mgmtdev vduse
ifc=
for _ in $(seq 300); do
	for n in /sys/bus/vdpa/devices/demonet/virtio*/net/*; do [ -e "$n" ] && ifc=${n##*/}; done
	[ -n "$ifc" ] && break
	sleep 0.1
done
[ -n "$ifc" ] || { echo "no network interface appeared"; exit 1; }
ip addr add 10.78.0.1/24 dev "$ifc"
ip link set "$ifc" up
ip netns exec demo-peer ip addr add 10.78.0.2/24 dev demotap0
ip netns exec demo-peer ip link set demotap0 up
echo "== $ifc ($(cat /sys/class/net/$ifc/address), MTU $(cat /sys/class/net/$ifc/mtu)) is 10.78.0.1; the TAP in demo-peer is 10.78.0.2"
for _ in $(seq 30); do ping -c 1 -W 1 10.78.0.2 >/dev/null 2>&1 && break; done
ping -c 3 -i 0.2 10.78.0.2 | grep -E "bytes from|packet loss"
echo "== teardown: vdpa dev del, SIGTERM the daemon"
vdpa dev del demonet
kill -TERM "$netd"
wait "$netd"
ip netns del demo-peer
[ ! -e /dev/vduse/demonet ] && echo "== /dev/vduse/demonet is gone: clean"
