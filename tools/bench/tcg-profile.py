#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""tools/bench/tcg-profile.py COUNTS: the report of tools/bench/profile.

For each job, from the counting window of each driver group (JOB-GROUP.window names the
plugin's dump, JOB-GROUP.ios the I/Os done in it, JOB-GROUP.kallsyms the symbols then): guest
instructions per I/O, the kernel's by module (the VDUSE driver, the rest of the kernel) and
user space's, then the kernel functions whose instructions per I/O differ most between the
first group (C) and each other one. Markdown on stdout."""
import bisect
import collections
import os
import re
import sys


def symbols(path):
    """Sorted (address, name, module) of the text symbols in a /proc/kallsyms copy."""
    out = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) < 3 or p[1] not in "tTwW":
                continue
            mod = p[3].strip("[]") if len(p) > 3 else "kernel"
            out.append((int(p[0], 16), p[2], mod))
    out.sort()
    return out


def window(counts, job, group):
    base = os.path.join(counts, f"{job}-{group}")
    n = int(open(base + ".window").read())
    ios = int(open(base + ".ios").read())
    syms = symbols(base + ".kallsyms")
    addrs = [s[0] for s in syms]
    by_fn, by_mod, user = collections.Counter(), collections.Counter(), 0
    with open(os.path.join(counts, f"dump.{n}")) as f:
        for line in f:
            a, c = line.split()
            if a == "user":
                user = int(c)
                continue
            a, c = int(a, 16), int(c)
            i = bisect.bisect_right(addrs, a) - 1
            name, mod = (syms[i][1], syms[i][2]) if i >= 0 else ("?", "?")
            if mod in ("vduse", "vduse_rs"):
                mod = "VDUSE driver"
            by_fn[(mod, name)] += c
            by_mod[mod] += c
    return ios, by_fn, by_mod, user


def events(counts, job, group):
    """Per window: interrupts by kind (/proc/interrupts rows summed over CPUs), context
    switches, wall time (µs) and the CPUs' busy and idle time (jiffies), or None."""
    base = os.path.join(counts, f"{job}-{group}")
    try:
        def irqs(path):
            out = {}
            for line in open(path).read().splitlines()[1:]:
                p = line.split()
                if p and p[0].endswith(":"):
                    n = [int(x) for x in p[1:] if x.isdigit()][:2]
                    out[p[0][:-1]] = sum(n)
            return out
        def stat(path):
            d = {}
            for line in open(path):
                p = line.split()
                d[p[0]] = [int(x) for x in p[1:]]
            return d
        i0, i1 = irqs(base + ".irq0"), irqs(base + ".irq1")
        s0, s1 = stat(base + ".stat0"), stat(base + ".stat1")
        cpu = [b - a for a, b in zip(s0["cpu"], s1["cpu"])]
        return {
            "irq": {k: i1[k] - i0.get(k, 0) for k in i1},
            "ctxt": s1["ctxt"][0] - s0["ctxt"][0],
            "usecs": int(open(base + ".usecs").read()),
            "busy": sum(cpu) - cpu[3] - cpu[4],
            "idle": cpu[3] + cpu[4],
        }
    except (OSError, KeyError, ValueError, IndexError):
        return None


def short(name, n=60):
    """A Rust v0 symbol's last path components, readably; others as they are."""
    if name.startswith("_R"):
        parts = re.findall(r"\d+([A-Za-z_][A-Za-z0-9_]*)", name)
        parts = [p for p in parts if not p.startswith("Cs")][-2:]
        name = "::".join(parts) or name
    return name if len(name) <= n else name[: n - 1] + "…"


def main():
    counts = sys.argv[1]
    jobs, groups = [], []
    for f in sorted(os.listdir(counts)):
        if f.endswith(".window"):
            j, g = f[: -len(".window")].rsplit("-", 1)
            if j not in jobs:
                jobs.append(j)
            if g not in groups:
                groups.append(g)
    groups.sort(key=lambda g: (g != "c", g))
    print("# Instructions per I/O (tools/bench/profile)\n")
    print("Guest instructions executed per I/O, counted exactly by the tcg-profile QEMU plugin over a fixed number of I/Os; the kernel's split into the VDUSE driver (vduse.ko or vduse_rs.ko) and the rest of the kernel (virtio, block layer, scheduler...).\n")
    for j in jobs:
        w = {g: window(counts, j, g) for g in groups if os.path.exists(os.path.join(counts, f"{j}-{g}.window"))}
        if not w:
            continue
        print(f"## {j}\n")
        print("| group | I/Os | kernel | of which VDUSE driver | rest of kernel | user space | kernel / C |")
        print("|---|---|---|---|---|---|---|")
        ref = None
        for g, (ios, fn, mod, user) in w.items():
            k = sum(mod.values()) / ios
            d = mod["VDUSE driver"] / ios
            ref = ref or k
            print(f"| {g} | {ios} | {k:.0f} | {d:.0f} | {k - d:.0f} | {user / ios:.0f} | {k / ref:.3f} |")
        print()
        ev = {g: events(counts, j, g) for g in w}
        if all(ev.values()):
            kinds = [k for k in ("LOC", "CAL", "RES", "TLB") if any(e["irq"].get(k) for e in ev.values())]
            print("| group | µs per I/O (under the plugin) | CPU busy share | context switches per I/O | " + " | ".join(f"{k} per I/O" for k in kinds) + " |")
            print("|---|---|---|---|" + "---|" * len(kinds))
            for g, e in ev.items():
                ios = w[g][0]
                busy = e["busy"] / max(1, e["busy"] + e["idle"])
                print(f"| {g} | {e['usecs'] / ios:.1f} | {busy:.2f} | {e['ctxt'] / ios:.2f} | " + " | ".join(f"{e['irq'].get(k, 0) / ios:.3f}" for k in kinds) + " |")
            print()
        if "c" not in w:
            continue
        cios, cfn, _, _ = w["c"]
        for g, (ios, fn, _, _) in w.items():
            if g == "c":
                continue
            keys = set(cfn) | set(fn)
            per = {key: (cfn[key] / cios, fn[key] / ios) for key in keys}
            print(f"Largest differences, {g} - c, instructions per I/O (functions of the VDUSE drivers are listed by their own names):\n")
            print("| function | module | c | " + g + " | difference |")
            print("|---|---|---|---|---|")
            rows = sorted(per.items(), key=lambda kv: (-abs(kv[1][1] - kv[1][0]), kv[0]))[:25]
            for (mod, name), (a, b) in rows:
                print(f"| `{short(name)}` | {mod} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
            print()


if __name__ == "__main__":
    main()
