#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""tools/testing/datapath/domain_lifetime.py: the [vduse-domain] file outlives its device.

Runs inside the test VM as root with a VDUSE driver, vdpa, virtio_vdpa and virtio_net loaded.
A minimal daemon (this script: it answers every request with VDUSE_REQ_RESULT_OK) creates a
virtio-net device (API 0), which `vdpa dev add` binds to virtio_net through virtio_vdpa:
its rings are coherent buffers of the IOVA domain, its receive buffers (once the link is up)
streaming mappings in the bounce region. Then, with asserted results:

  1. before the link is up, IOTLB_GET_FD at IOVA 0 fails with EINVAL (no bounce entry yet);
  2. IOTLB_GET_FD above the bounce region returns a coherent entry: offset == start, perm RW;
     its pages are mmapped, read, and a marker is written into its last byte;
  3. after `ip link set up`, IOTLB_GET_FD at IOVA 0 returns the bounce entry
     [0, bounce_size - 1], offset 0, perm RW;
  3b. IOTLB_GET_INFO marks the bounce entry VDUSE_IOVA_CAP_UMEM; VDUSE_IOTLB_REG_UMEM and
     DEREG_UMEM behave as 7.3: bad size or unaligned address EINVAL, over RLIMIT_MEMLOCK
     ENOMEM, a second registration EEXIST, deregistration with a bad size EINVAL, then 0, then
     ENOENT; the pinned pages show in VmPin while registered;
  4. `vdpa dev del`, close of the device node (with user memory registered: it is
     deregistered, VmPin back to 0) and VDUSE_DESTROY_DEV succeed while the domain file is
     still open and mapped;
  5. the mapping still reads back the marker (the pages live as long as the mapping), and
     munmap and close release everything (the caller runs kmemleak afterwards).

Prints one line per step; exits 1 at the first failed assertion.
"""
import errno
import fcntl
import glob
import mmap
import ctypes
import os
import resource
import select
import struct
import subprocess
import sys
import threading
import time

NAME = "dom-life"
BOUNCE_SIZE = 64 << 20  # the default bounce_size

VDUSE_CREATE_DEV = 0x41508102
VDUSE_DESTROY_DEV = 0x41008103
VDUSE_IOTLB_GET_FD = 0xC0208110
VDUSE_VQ_SETUP = 0x40208114
VDUSE_IOTLB_REG_UMEM = 0x40308118
VDUSE_IOTLB_DEREG_UMEM = 0x40308119
VDUSE_IOTLB_GET_INFO = 0xC030811A
REQ_SIZE = 152

VIRTIO_NET_F_MAC = 1 << 5
VIRTIO_F_VERSION_1 = 1 << 32
VIRTIO_F_ACCESS_PLATFORM = 1 << 33
VIRTIO_ID_NET = 1


def step(msg):
    print(f"# domain_lifetime: {msg}", flush=True)


def fail(msg):
    print(f"# domain_lifetime: FAILED: {msg}", flush=True)
    sys.exit(1)


def ioctl_errno(fd, cmd, arg):
    try:
        fcntl.ioctl(fd, cmd, arg)
        return 0
    except OSError as e:
        return e.errno


def create_dev(ctl):
    config = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]) + struct.pack("<HHH", 1, 1, 1500)
    name = NAME.encode().ljust(256, b"\0")
    hdr = name + struct.pack(
        "<IIQIIII44sI",
        0,  # vendor_id
        VIRTIO_ID_NET,
        VIRTIO_NET_F_MAC | VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM,
        2,  # vq_num
        4096,  # vq_align
        0,  # ngroups (API 0)
        0,  # nas
        b"\0" * 44,
        len(config),
    )
    assert len(hdr) == 336
    fcntl.ioctl(ctl, VDUSE_CREATE_DEV, bytearray(hdr + config))


class Responder(threading.Thread):
    """Answers every request of the device with VDUSE_REQ_RESULT_OK until stopped."""

    def __init__(self, fd):
        super().__init__(daemon=True)
        self.fd = fd
        self.stop = False
        self.count = 0

    def run(self):
        while not self.stop:
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if not r:
                continue
            try:
                req = os.read(self.fd, REQ_SIZE)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    continue
                raise
            _type, rid = struct.unpack_from("<II", req)
            os.write(self.fd, struct.pack("<II", rid, 0) + b"\0" * (REQ_SIZE - 8))
            self.count += 1


def get_fd(dev, start, last):
    """IOTLB_GET_FD: (fd, offset, start, last, perm) or the errno."""
    buf = bytearray(struct.pack("<QQQB7x", 0, start, last, 0))
    try:
        fd = fcntl.ioctl(dev, VDUSE_IOTLB_GET_FD, buf, True)
    except OSError as e:
        return e.errno
    # The ioctl's return value is the fd; fcntl.ioctl with a mutable buffer returns it.
    offset, s, l, perm = struct.unpack_from("<QQQB", buf)
    return fd, offset, s, l, perm


def umem(dev, cmd, uaddr, size, iova=0):
    """REG_UMEM/DEREG_UMEM: 0 or the errno."""
    return ioctl_errno(dev, cmd, bytearray(struct.pack("<QQQI20x", uaddr, iova, size, 0)))


def vm_pin_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmPin:"):
            return int(line.split()[1])
    return -1


def expect(what, got, want):
    if got != want:
        fail(f"{what}: got {got}, expected {want}")


def netdev():
    nets = glob.glob(f"/sys/bus/vdpa/devices/{NAME}/virtio*/net/*")
    return os.path.basename(nets[0]) if nets else None


def main():
    ctl = os.open("/dev/vduse/control", os.O_RDWR)
    create_dev(ctl)
    dev = os.open(f"/dev/vduse/{NAME}", os.O_RDWR | os.O_NONBLOCK)
    for i in range(2):
        fcntl.ioctl(dev, VDUSE_VQ_SETUP, bytearray(struct.pack("<IHH24x", i, 256, 0)))
    responder = Responder(dev)
    responder.start()
    subprocess.run(["vdpa", "dev", "add", "name", NAME, "mgmtdev", "vduse"], check=True)
    for _ in range(300):
        if netdev():
            break
        time.sleep(0.1)
    ifname = netdev()
    if not ifname:
        fail("virtio_net did not probe the device")
    step(f"{NAME} is {ifname}; {responder.count} requests answered")

    r = get_fd(dev, 0, 0)
    if r != errno.EINVAL:
        fail(f"IOTLB_GET_FD at 0 before any streaming mapping: {r}, expected EINVAL")
    step("1 ok: no bounce entry before the first streaming mapping (EINVAL)")

    r = get_fd(dev, BOUNCE_SIZE, (1 << 64) - 1)
    if isinstance(r, int):
        fail(f"IOTLB_GET_FD above the bounce region: errno {r}")
    cfd, offset, start, last, perm = r
    # A split ring of 256 entries with 4 KiB alignment: 10246 bytes; the entry covers exactly
    # the bytes asked for (7.3), not the whole pages behind them.
    if not (start >= BOUNCE_SIZE and offset == start and perm == 3 and last - start + 1 == 10246):
        fail(f"coherent entry offset={offset:#x} start={start:#x} last={last:#x} perm={perm}")
    size = last - start + 1
    m = mmap.mmap(cfd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
    before = bytes(m[:])
    m[size - 1] = 0xA5
    step(f"2 ok: coherent entry [{start:#x}, {last:#x}] mapped ({size} bytes), marker written")

    subprocess.run(["ip", "link", "set", ifname, "up"], check=True)
    for _ in range(100):
        r = get_fd(dev, 0, 0)
        if not isinstance(r, int):
            break
        time.sleep(0.1)
    if isinstance(r, int):
        fail(f"IOTLB_GET_FD at 0 after link up: errno {r}")
    bfd, offset, start, last, perm = r
    if (offset, start, last, perm) != (0, 0, BOUNCE_SIZE - 1, 3):
        fail(f"bounce entry offset={offset:#x} start={start:#x} last={last:#x} perm={perm}")
    os.close(bfd)
    step("3 ok: bounce entry [0, bounce_size - 1] after the first streaming mapping")

    info = bytearray(struct.pack("<QQQI20x", 0, 0, 0, 0))
    fcntl.ioctl(dev, VDUSE_IOTLB_GET_INFO, info)
    start, last, cap = struct.unpack_from("<QQQ", info)
    expect("GET_INFO of the bounce entry (start, last, capability)", (start, last, cap),
           (0, BOUNCE_SIZE - 1, 1))
    buf = mmap.mmap(-1, BOUNCE_SIZE)
    uaddr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    expect("REG_UMEM of 4 KiB", umem(dev, VDUSE_IOTLB_REG_UMEM, uaddr, 4096), errno.EINVAL)
    expect("REG_UMEM unaligned", umem(dev, VDUSE_IOTLB_REG_UMEM, uaddr + 8, BOUNCE_SIZE),
           errno.EINVAL)
    expect("REG_UMEM at IOVA 4096", umem(dev, VDUSE_IOTLB_REG_UMEM, uaddr, BOUNCE_SIZE, 4096),
           errno.EINVAL)
    old = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (1 << 20, old[1]))
    expect("REG_UMEM over RLIMIT_MEMLOCK (1 MiB)", umem(dev, VDUSE_IOTLB_REG_UMEM, uaddr, BOUNCE_SIZE),
           errno.ENOMEM)
    # The default limit (8 MiB) is below the bounce buffer: raise it (root may).
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    resource.setrlimit(resource.RLIMIT_MEMLOCK, unlimited)
    expect("VmPin after the refused registration", vm_pin_kb(), 0)
    expect("REG_UMEM", umem(dev, VDUSE_IOTLB_REG_UMEM, uaddr, BOUNCE_SIZE), 0)
    expect("VmPin while registered (kB)", vm_pin_kb(), BOUNCE_SIZE >> 10)
    expect("second REG_UMEM", umem(dev, VDUSE_IOTLB_REG_UMEM, uaddr, BOUNCE_SIZE), errno.EEXIST)
    expect("DEREG_UMEM of 4 KiB", umem(dev, VDUSE_IOTLB_DEREG_UMEM, uaddr, 4096), errno.EINVAL)
    expect("DEREG_UMEM", umem(dev, VDUSE_IOTLB_DEREG_UMEM, uaddr, BOUNCE_SIZE), 0)
    expect("VmPin after DEREG_UMEM", vm_pin_kb(), 0)
    expect("second DEREG_UMEM", umem(dev, VDUSE_IOTLB_DEREG_UMEM, uaddr, BOUNCE_SIZE), errno.ENOENT)
    expect("REG_UMEM again", umem(dev, VDUSE_IOTLB_REG_UMEM, uaddr, BOUNCE_SIZE), 0)
    resource.setrlimit(resource.RLIMIT_MEMLOCK, old)
    step("3b ok: UMEM capability, registration rules and errnos, pinned-page accounting")

    subprocess.run(["vdpa", "dev", "del", NAME], check=True)
    responder.stop = True
    responder.join()
    os.close(dev)
    expect("VmPin after closing the device with user memory registered", vm_pin_kb(), 0)
    err = ioctl_errno(ctl, VDUSE_DESTROY_DEV, bytearray(NAME.encode().ljust(256, b"\0")))
    if err:
        fail(f"VDUSE_DESTROY_DEV with the domain file open and mapped: errno {err}")
    if os.path.exists(f"/dev/vduse/{NAME}"):
        fail(f"/dev/vduse/{NAME} still exists after VDUSE_DESTROY_DEV")
    step("4 ok: vdpa dev del, close and VDUSE_DESTROY_DEV with the domain file open and mapped")

    after = bytes(m[:])
    if after[size - 1] != 0xA5 or len(after) != len(before):
        fail("the mapping lost its contents after the device was destroyed")
    m.close()
    os.close(cfd)
    os.close(ctl)
    step("5 ok: the mapping still reads its pages; munmap and close done")


if __name__ == "__main__":
    main()
