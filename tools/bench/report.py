#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""tools/bench/report.py SAMPLES META OUTDIR: the block benchmark's results.

SAMPLES is tools/bench/guest.sh's samples.jsonl (one fio run per line), META a JSON object
describing the run (date, commit, kernel, accelerator, CPU, rounds, runtime). Writes
OUTDIR/results.json (the samples, the meta and the summary), OUTDIR/results.md (the tables) and,
if matplotlib is there, OUTDIR/chart.png. Warm-up runs are left out of every figure.

Ratios are taken per round (the two devices of a pair ran in the same round, one right after
the other) and summarised as the median of the rounds' ratios with their min and max, so the
spread says how much a ratio moved between rounds.
"""
import json
import os
import statistics
import sys

PROFILES = {
    "rr4k-qd1": "4k randread QD1",
    "rr4k-qd32": "4k randread QD32",
    "rw4k-qd32-2j": "4k randwrite QD32 x2 jobs",
    "sr128k-qd8": "128k seq read QD8",
    "sw128k-qd8": "128k seq write QD8",
}
DEVICES = {
    "c-qsd": "QSD vduse-blk on C vduse.ko",
    "rs-qsd": "QSD vduse-blk on vduse_rs.ko",
    "rsni-qsd": "QSD vduse-blk on vduse_rs.ko irq_inline=0",
    "c-net": "vduse-net (ours, TAP) on C vduse.ko",
    "rs-net": "vduse-net (ours, TAP) on vduse_rs.ko",
    "rsni-net": "vduse-net (ours, TAP) on vduse_rs.ko irq_inline=0",
    "c-blk": "vduse-blk (ours) on C vduse.ko",
    "rs-blk": "vduse-blk (ours) on vduse_rs.ko",
    "rsni-blk": "vduse-blk (ours) on vduse_rs.ko irq_inline=0",
    "rsnt-blk": "vduse-blk (ours) on vduse_rs.ko orphan_drain=0",
    "rsb-blk": "vduse-blk (ours) on vduse_rs.ko of the base revision (BENCH_BASE)",
    "ublk": "ublk (rublk null)",
    "nbd": "NBD (QSD null-co, 1 connection)",
}
# Rust/C pairs: (label, numerator device, denominator device) for each daemon.
PAIRS = [
    ("QSD: vduse_rs / C", "rs-qsd", "c-qsd"),
    ("vduse-blk: vduse_rs / C", "rs-blk", "c-blk"),
    ("vduse-blk: irq_inline=0 / C (the port alone)", "rsni-blk", "c-blk"),
    ("vduse-blk: orphan_drain=0 / C (no ring tracking)", "rsnt-blk", "c-blk"),
    ("vduse-blk: this tree / the base revision (A/B)", "rs-blk", "rsb-blk"),
    ("vduse-blk: the base revision / C", "rsb-blk", "c-blk"),
]
NET_PROFILES = {"tcp-stream": "TCP stream", "tcp-rr64": "TCP request/response, 64 bytes"}
NET_PAIRS = [
    ("vduse-net: vduse_rs / C", "rs-net", "c-net"),
    ("vduse-net: irq_inline=0 / C (the port alone)", "rsni-net", "c-net"),
]
METRICS = ["iops", "bw_bytes", "lat_mean_ns", "lat_p50_ns", "lat_p99_ns", "clat_mean_ns",
           "cpu_us_per_io"]


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def expand(s, runs):
    """A sample as the guest wrote it, with its figures: from its fio JSON (under `runs`) or
    from net.py's result."""
    if "fio" in s:
        j = json.load(open(os.path.join(runs, s["fio"])))
        job = j["jobs"][0]
        sec = job["read"] if job["read"]["total_ios"] else job["write"]

        def pct(h, q):
            return h.get("percentile", {}).get(q, 0)

        ticks, ios = s["cpu_window_ticks"], s["cpu_window_ios"]
        s.update({
            "iops": sec["iops"], "bw_bytes": sec["bw_bytes"],
            "lat_mean_ns": sec["lat_ns"]["mean"], "lat_p50_ns": pct(sec["lat_ns"], "50.000000"),
            "lat_p99_ns": pct(sec["lat_ns"], "99.000000"),
            "clat_mean_ns": sec["clat_ns"]["mean"], "slat_mean_ns": sec["slat_ns"]["mean"],
            "usr_cpu": job["usr_cpu"], "sys_cpu": job["sys_cpu"], "ctx": job["ctx"],
            # Every guest CPU and process (fio, the daemon, the kernel) in the steady state:
            # busy time against the disk's completed requests over the same window.
            "cpu_us_per_io": ticks / s["hz"] * 1e6 / ios if ios else None,
        })
    if "net" in s:
        s.update(s.pop("net"))
    return s


def main():
    samples_path, meta_path, outdir = sys.argv[1:4]
    runs = os.path.join(os.path.dirname(samples_path), "runs")
    samples = [expand(json.loads(line), runs) for line in open(samples_path) if line.strip()]
    meta = json.load(open(meta_path))
    measured = [s for s in samples if not s["warmup"]]
    if not measured:
        sys.exit("report.py: no measured runs in " + samples_path)
    net = [s for s in measured if s["profile"] in NET_PROFILES]
    measured = [s for s in measured if s["profile"] in PROFILES]
    by = {}
    for s in measured:
        by.setdefault((s["device"], s["profile"]), {})[s["round"]] = s
    nby = {}
    for s in net:
        nby.setdefault((s["device"], s["profile"]), {})[s["round"]] = s
    devices = [d for d in DEVICES if any(k[0] == d for k in by)]
    profiles = [p for p in PROFILES if any(k[1] == p for k in by)]

    cells = {}
    for (d, p), rounds in by.items():
        cells[f"{d}/{p}"] = {m: spread([s[m] for s in rounds.values()]) for m in METRICS}

    def ratio(num, den, p, metric):
        a, b = by.get((num, p), {}), by.get((den, p), {})
        rs = [a[r][metric] / b[r][metric] for r in sorted(set(a) & set(b))
              if a[r][metric] and b[r][metric]]
        return spread(rs)

    ratios = {}
    for label, num, den in PAIRS:
        for p in profiles:
            ratios[f"{num}/{den}/{p}"] = {m: ratio(num, den, p, m) for m in
                                          ("iops", "lat_mean_ns", "lat_p99_ns", "clat_mean_ns",
                                           "cpu_us_per_io")}
    vs_ublk = {f"{d}/{p}": ratio(d, "ublk", p, "iops") for d in devices for p in profiles
               if d != "ublk"}

    def net_value(s):
        if s["profile"] == "tcp-stream":
            return s["mbit_s"]
        return s["tps"]

    net_cells, net_ratios = {}, {}
    for (d, p), rounds in nby.items():
        net_cells[f"{d}/{p}"] = {
            "value": spread([net_value(s) for s in rounds.values()]),
            "rr_mean_us": spread([s.get("rr_mean_us") for s in rounds.values()]),
            "rr_p99_us": spread([s.get("rr_p99_us") for s in rounds.values()]),
        }
    for label, num, den in NET_PAIRS:
        for p in NET_PROFILES:
            a, b = nby.get((num, p), {}), nby.get((den, p), {})
            net_ratios[f"{num}/{den}/{p}"] = spread(
                [net_value(a[r]) / net_value(b[r]) for r in sorted(set(a) & set(b))
                 if net_value(b[r])])

    summary = {"cells": cells, "ratios": ratios, "vs_ublk_iops": vs_ublk,
               "net_cells": net_cells, "net_ratios": net_ratios}
    json.dump({"meta": meta, "summary": summary, "samples": samples},
              open(f"{outdir}/results.json", "w"), indent=1)

    def fmt_r(s, digits=2):
        if not s:
            return "-"
        return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}–{s['max']:.{digits}f}]"

    def fmt_v(s, scale=1.0, digits=1):
        if not s:
            return "-"
        return (f"{s['median'] * scale:.{digits}f} "
                f"[{s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f}]")

    md = [f"# Benchmark, {meta['date']}", "",
          f"Commit `{meta['commit']}`, kernel {meta['kernel']} (bench flavour: no lockdep, "
          f"kmemleak, SLUB or list debugging), {meta['accelerator']}, host CPU "
          f"{meta['cpu']}, guest {meta['guest']}. {meta['rounds']} rounds after a discarded "
          f"warm-up, the order of the drivers reversed every other round; fio "
          f"{meta['runtime']} s per run after a {meta['ramp']} s ramp; libaio, O_DIRECT. Every "
          f"device has a null backend (1 GiB, 2 queues). `make bench` wrote this" +
          (f"; the A/B's base revision (`BENCH_BASE`) is `{meta['base']}`." if meta.get("base")
           else "."), "",
          "**Under TCG the absolute numbers mean little** (every instruction is emulated); "
          "the ratios between devices measured in the same boot, round by round, are what to "
          "read. Latency is fio's total latency (`lat_ns`: submission + completion) unless "
          "marked; a value is the median over the rounds, [min–max] after it.", "",
          "## vduse_rs.ko against C vduse.ko (same daemon, same round)", "",
          "IOPS ratio > 1 and latency ratio < 1 mean vduse_rs is faster. `irq_inline=0` is "
          "vduse_rs with every interrupt through a work item as C does: the port alone, "
          "without that design change.", "",
          "| profile | pair | IOPS | total latency | p99 latency | completion latency | "
          "CPU per I/O |", "|---|---|---|---|---|---|---|"]
    for p in profiles:
        for label, num, den in PAIRS:
            r = ratios[f"{num}/{den}/{p}"]
            if not r["iops"]:
                continue
            md.append(f"| {PROFILES[p]} | {label} | {fmt_r(r['iops'])} | "
                      f"{fmt_r(r['lat_mean_ns'])} | {fmt_r(r['lat_p99_ns'])} | "
                      f"{fmt_r(r['clat_mean_ns'])} | {fmt_r(r['cpu_us_per_io'])} |")
    md += ["", "## Every device", "",
           "CPU per I/O: the busy time of all guest CPUs (fio, the daemon, the kernel) over the "
           "run, divided by the disk's I/O count over the same time.", "",
           "| profile | device | IOPS | MB/s | latency mean µs | p50 µs | p99 µs | "
           "CPU µs per I/O | IOPS vs ublk |", "|---|---|---|---|---|---|---|---|---|"]
    for p in profiles:
        for d in devices:
            c = cells.get(f"{d}/{p}")
            if not c:
                continue
            md.append(f"| {PROFILES[p]} | {DEVICES[d]} | {fmt_v(c['iops'], 1, 0)} | "
                      f"{fmt_v(c['bw_bytes'], 1e-6)} | {fmt_v(c['lat_mean_ns'], 1e-3)} | "
                      f"{fmt_v(c['lat_p50_ns'], 1e-3)} | {fmt_v(c['lat_p99_ns'], 1e-3)} | "
                      f"{fmt_v(c['cpu_us_per_io'])} | "
                      f"{'1' if d == 'ublk' else fmt_r(vs_ublk.get(f'{d}/{p}'))} |")
    if net_cells:
        md += ["", "## Network: vduse-net on each driver", "",
               "samples/vduse-net linked to a TAP in another network namespace (MTU 1500), "
               "virtio_net in the root namespace; tools/bench/net.py (Python, the same on both "
               "sides of every ratio): a TCP stream, and 64-byte request/response with one in "
               "flight. No public VDUSE-net number exists to compare with.", "",
               "| pair | TCP stream Mbit/s ratio | 64-byte RR transactions/s ratio |",
               "|---|---|---|"]
        for label, num, den in NET_PAIRS:
            md.append(f"| {label} | {fmt_r(net_ratios.get(f'{num}/{den}/tcp-stream'))} | "
                      f"{fmt_r(net_ratios.get(f'{num}/{den}/tcp-rr64'))} |")
        md += ["", "| device | TCP stream Mbit/s | RR transactions/s | RR mean µs | RR p99 µs |",
               "|---|---|---|---|---|"]
        for d in ("c-net", "rs-net", "rsni-net"):
            st, rr_ = net_cells.get(f"{d}/tcp-stream"), net_cells.get(f"{d}/tcp-rr64")
            if not st and not rr_:
                continue
            md.append(f"| {DEVICES[d]} | {fmt_v(st and st['value'], 1, 0)} | "
                      f"{fmt_v(rr_ and rr_['value'], 1, 0)} | "
                      f"{fmt_v(rr_ and rr_['rr_mean_us'])} | {fmt_v(rr_ and rr_['rr_p99_us'])} |")
    open(f"{outdir}/results.md", "w").write("\n".join(md) + "\n")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: no matplotlib, no chart", file=sys.stderr)
        return
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 9))
    x = range(len(profiles))
    # Only the pairs this run measured (the A/B pairs need BENCH_BASE).
    pairs = [(label, num, den) for label, num, den in PAIRS
             if any(ratios[f"{num}/{den}/{p}"]["iops"] for p in profiles)]
    w = 0.8 / max(len(pairs), 1)
    for i, (label, num, den) in enumerate(pairs):
        rs = [ratios[f"{num}/{den}/{p}"]["iops"] for p in profiles]
        med = [r["median"] if r else 0 for r in rs]
        err = [[(r["median"] - r["min"]) if r else 0 for r in rs],
               [(r["max"] - r["median"]) if r else 0 for r in rs]]
        ax1.bar([j + (i - (len(pairs) - 1) / 2) * w for j in x], med, w, yerr=err, capsize=3,
                label=label)
    ax1.axhline(1.0, color="black", linewidth=0.8)
    ax1.set_xticks(list(x), [PROFILES[p] for p in profiles])
    ax1.set_ylabel("IOPS ratio (median, min–max)")
    ax1.set_title("vduse_rs.ko / C vduse.ko, same daemon, same round (> 1: Rust faster)")
    ax1.legend(fontsize=8)
    others = [d for d in devices if d != "ublk"]
    w = 0.8 / max(1, len(others))
    for i, d in enumerate(others):
        rs = [vs_ublk.get(f"{d}/{p}") for p in profiles]
        ax2.bar([j + (i - (len(others) - 1) / 2) * w for j in x],
                [r["median"] if r else 0 for r in rs], w, label=DEVICES[d])
    ax2.axhline(1.0, color="black", linewidth=0.8)
    ax2.set_xticks(list(x), [PROFILES[p] for p in profiles])
    ax2.set_ylabel("IOPS / ublk's IOPS (median)")
    ax2.set_title("Every device against ublk (null backends, same boot)")
    ax2.legend(fontsize=7, ncol=2)
    fig.suptitle(f"make bench, {meta['date']}, Linux {meta['kernel']} (bench flavour), commit "
                 f"{meta['commit']}\n{meta['accelerator']}: read the ratios, absolute numbers "
                 "under TCG mean little", fontsize=10)
    fig.tight_layout()
    fig.savefig(f"{outdir}/chart.png", dpi=90)


if __name__ == "__main__":
    main()
