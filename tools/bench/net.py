#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""tools/bench/net.py: the network half of the benchmark (tools/bench/guest.sh), over TCP.

  net.py serve PORT                       in the peer's namespace: a sink for `stream` and an
                                          echo for `rr`, one connection at a time, for ever
  net.py stream HOST PORT SECONDS         bulk TCP for SECONDS: prints {"mbit_s": ...}
  net.py rr HOST PORT SECONDS SIZE        request/response of SIZE bytes each way, one in
                                          flight (netperf's TCP_RR): prints {"tps": ...,
                                          "rr_mean_us": ..., "rr_p99_us": ...}

The first byte of a connection says which (b"S" or b"R"). TCP_NODELAY on both ends.
"""
import json
import socket
import sys
import time


def serve(port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(4)
    while True:
        c, _ = ls.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            kind = c.recv(1)
            if kind == b"S":
                while c.recv(1 << 20):
                    pass
            elif kind == b"R":
                size = int.from_bytes(c.recv(4), "little")
                while True:
                    buf = b""
                    while len(buf) < size:
                        part = c.recv(size - len(buf))
                        if not part:
                            raise EOFError
                        buf += part
                    c.sendall(buf)
        except (EOFError, ConnectionError):
            pass
        finally:
            c.close()


def connect(host, port):
    s = socket.create_connection((host, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def stream(host, port, seconds):
    s = connect(host, port)
    s.sendall(b"S")
    buf = b"\0" * (256 * 1024)
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        sent += s.send(buf)
    s.shutdown(socket.SHUT_WR)
    # The sink has everything once it closes its end.
    s.recv(1)
    dt = time.monotonic() - t0
    s.close()
    print(json.dumps({"mbit_s": sent * 8 / dt / 1e6, "bytes": sent, "seconds": dt}))


def rr(host, port, seconds, size):
    s = connect(host, port)
    s.sendall(b"R" + size.to_bytes(4, "little"))
    msg = b"x" * size
    lat = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        a = time.monotonic()
        s.sendall(msg)
        got = 0
        while got < size:
            part = s.recv(size - got)
            if not part:
                raise SystemExit("net.py: the echo closed the connection")
            got += len(part)
        lat.append(time.monotonic() - a)
    dt = time.monotonic() - t0
    s.close()
    lat.sort()
    print(json.dumps({"tps": len(lat) / dt, "rr_mean_us": sum(lat) / len(lat) * 1e6,
                      "rr_p99_us": lat[int(len(lat) * 0.99)] * 1e6, "transactions": len(lat)}))


def main():
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(int(sys.argv[2]))
    elif cmd == "stream":
        stream(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "rr":
        rr(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
