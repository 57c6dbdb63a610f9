#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/net/tcp.py: one TCP stream and the SHA-256 of what it carried, on each side.
#
#   tcp.py serve PORT OUT            accept one connection, hash what arrives until EOF, write
#                                    "BYTES SHA256" to OUT (and progress to OUT.progress)
#   tcp.py send HOST PORT BYTES SEED send BYTES pseudo-random bytes (from SEED), print
#                                    "BYTES SHA256" of what was sent
import hashlib
import random
import socket
import sys
import time


def serve(port, out):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    c, _ = s.accept()
    h = hashlib.sha256()
    n = 0
    last = 0.0
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
        n += len(b)
        now = time.monotonic()
        if now - last > 0.2:
            with open(out + ".progress", "w") as f:
                f.write(f"{n}\n")
            last = now
    c.close()
    with open(out, "w") as f:
        f.write(f"{n} {h.hexdigest()}\n")


def send(host, port, total, seed):
    rng = random.Random(seed)
    c = None
    for _ in range(100):
        try:
            c = socket.create_connection((host, port), timeout=30)
            break
        except OSError:
            time.sleep(0.1)
    if c is None:
        sys.exit("cannot connect")
    c.settimeout(None)
    h = hashlib.sha256()
    sent = 0
    while sent < total:
        b = rng.randbytes(min(1 << 16, total - sent))
        c.sendall(b)
        h.update(b)
        sent += len(b)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    c.close()
    print(f"{sent} {h.hexdigest()}")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
