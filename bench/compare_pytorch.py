#!/usr/bin/python3
"""Time the study's convolution layers in PyTorch and compare them with sumi's conv kernels.

Runs every (layer, op) of bench/bench_conv.cpp in PyTorch 1.13 at 2 threads and prints a table of
sumi ms, PyTorch ms and the ratio (PyTorch / sumi: above 1 means sumi is faster).

Usage:
  /usr/bin/python3 bench/compare_pytorch.py                      # runs build/release/bench/sumi_bench
  /usr/bin/python3 bench/compare_pytorch.py --sumi-json out.json # reuses a sumi_bench JSON file
  /usr/bin/python3 bench/compare_pytorch.py --layers dcgan64.D3 --reps 7
  /usr/bin/python3 bench/compare_pytorch.py --torch-only

When it runs sumi_bench itself, the script alternates layer by layer between torch and sumi so that both
see the same machine load (the machine is shared; check `uptime`). Times are medians of --reps runs.

Why the environment juggling: Debian's torch loads libblas.so.3, which may be the netlib reference BLAS,
and transposed convolutions in torch 1.13 go through BLAS (im2col + gemm), so the script re-executes
itself with Debian's OpenMP OpenBLAS first on the library path and with OPENBLAS_CORETYPE unset (a
forced core type halves OpenBLAS here). It checks /proc/self/maps to report which BLAS was loaded.
Plain convolutions go through oneDNN (libdnnl) in torch 1.13 for float32.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
THREADS = 2

# name, transposed, in_channels, out_channels, kernel, stride, padding, output_padding, in_size, batch, bias
# For a transposed layer in_size is the convT input size; channels are as in torch.nn.ConvTranspose2d.
LAYERS = [
    ("ae.enc.conv1", False, 1, 8, 3, 2, 1, 0, 28, 300, True),
    ("ae.enc.conv2", False, 8, 16, 3, 2, 1, 0, 14, 300, True),
    ("ae.enc.conv3", False, 16, 32, 3, 2, 0, 0, 7, 300, True),
    ("ae.dec.convT1", True, 32, 16, 3, 2, 0, 0, 3, 300, True),
    ("ae.dec.convT2", True, 16, 8, 3, 2, 1, 1, 7, 300, True),
    ("ae.dec.convT3", True, 8, 1, 3, 2, 1, 1, 14, 300, True),
    ("dcgan64.G1", True, 100, 512, 4, 1, 0, 0, 1, 128, False),
    ("dcgan64.G2", True, 512, 256, 4, 2, 1, 0, 4, 128, False),
    ("dcgan64.G3", True, 256, 128, 4, 2, 1, 0, 8, 128, False),
    ("dcgan64.G4", True, 128, 64, 4, 2, 1, 0, 16, 128, False),
    ("dcgan64.G5.nc1", True, 64, 1, 4, 2, 1, 0, 32, 128, False),
    ("dcgan64.G5.nc3", True, 64, 3, 4, 2, 1, 0, 32, 128, False),
    ("dcgan64.D1.nc1", False, 1, 64, 4, 2, 1, 0, 64, 128, False),
    ("dcgan64.D1.nc3", False, 3, 64, 4, 2, 1, 0, 64, 128, False),
    ("dcgan64.D2", False, 64, 128, 4, 2, 1, 0, 32, 128, False),
    ("dcgan64.D3", False, 128, 256, 4, 2, 1, 0, 16, 128, False),
    ("dcgan64.D4", False, 256, 512, 4, 2, 1, 0, 8, 128, False),
    ("dcgan64.D5", False, 512, 1, 4, 1, 0, 0, 4, 128, False),
]
OPS = ["fwd", "bwd_in", "bwd_w"]


def reexec_with_openblas():
    """Restart under the OpenMP OpenBLAS unless already done (the BLAS is chosen when torch loads)."""
    if os.environ.get("SUMI_COMPARE_CHILD") == "1":
        return
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env["LD_LIBRARY_PATH"] = OPENBLAS_DIR + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    env["OMP_NUM_THREADS"] = str(THREADS)
    if "--passive" in sys.argv:  # both torch and sumi_bench (a child of this process) use libgomp
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["SUMI_COMPARE_CHILD"] = "1"
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def loaded_blas():
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if any(s in path for s in ("blas", "lapack", "dnnl", "mkl")):
                libs.add(path)
    return sorted(libs)


def flops(layer):
    name, transposed, cin, cout, k, s, p, op, size, batch, bias = layer
    if transposed:
        out = (size - 1) * s - 2 * p + k + op
        # The equivalent conv maps the convT output (out x out, cout channels) to its input (size, cin).
        return 2.0 * batch * cin * size * size * cout * k * k
    out = (size + 2 * p - k) // s + 1
    return 2.0 * batch * cout * out * out * cin * k * k


def time_torch_layer(torch, layer, reps, min_time):
    """Median ms per op of one layer."""
    name, transposed, cin, cout, k, s, p, op, size, batch, bias = layer
    torch.manual_seed(0)
    if transposed:
        m = torch.nn.ConvTranspose2d(cin, cout, k, s, p, output_padding=op, bias=bias)
    else:
        m = torch.nn.Conv2d(cin, cout, k, s, p, bias=bias)
    x = torch.randn(batch, cin, size, size, requires_grad=True)
    y = m(x)
    gy = torch.randn_like(y)
    # The weight grad of a conv layer includes the bias grad when there is one (sumi's kernel computes
    # both in one pass); for a transposed layer sumi's ops layer sums the bias grad separately.
    wparams = [m.weight] + ([m.bias] if (bias and not transposed) else [])
    fns = {
        "fwd": lambda: m(x),
        "bwd_in": lambda: torch.autograd.grad(y, x, gy, retain_graph=True),
        "bwd_w": lambda: torch.autograd.grad(y, wparams, gy, retain_graph=True),
    }
    results = {}
    for opname in OPS:
        fn = fns[opname]
        with torch.no_grad() if opname == "fwd" else torch.enable_grad():
            for _ in range(3):
                fn()
            samples = []
            for _ in range(reps):
                n, t0 = 0, time.perf_counter()
                while True:
                    fn()
                    n += 1
                    el = time.perf_counter() - t0
                    if el >= min_time:
                        break
                samples.append(el / n * 1e3)
        results[opname] = statistics.median(samples)
    return results


def run_bench(bench, pattern, reps):
    out = subprocess.run(
        [bench, "--benchmark_filter=" + pattern, "--benchmark_format=json",
         "--benchmark_repetitions=%d" % reps, "--benchmark_report_aggregates_only=true"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def parse_sumi(data):
    """(layer, op) -> (ms, isa, GFLOPS) from sumi_bench JSON, preferring avx512 over avx2 and medians over
    single runs; also the best peak/fma GFLOPS at THREADS threads."""
    best = {}
    peak = None
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    for b in data["benchmarks"]:
        if b.get("error_occurred"):
            continue
        if b.get("aggregate_name") not in (None, "median"):
            continue
        parts = b.get("run_name", b["name"]).split("/")
        if parts[0] == "peak" and len(parts) == 4 and parts[3] == str(THREADS):
            peak = max(peak or 0.0, b.get("GFLOPS", 0.0))
            continue
        if len(parts) < 5 or parts[0] != "conv" or parts[4] != str(THREADS):
            continue
        layer, op, isa = parts[1], parts[2], parts[3]
        rank = {"avx512": 2, "avx2": 1}.get(isa, 0)
        ms = b["real_time"] * scale[b["time_unit"]]
        cand = (rank, b.get("aggregate_name") == "median", ms, isa, b.get("GFLOPS", float("nan")))
        if (layer, op) not in best or cand[:2] > best[(layer, op)][:2]:
            best[(layer, op)] = cand
    return {k: (v[2], v[3], v[4]) for k, v in best.items()}, peak


def main():
    reexec_with_openblas()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sumi-json", help="sumi_bench --benchmark_format=json output to read instead of running it")
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                                                    "release", "bench", "sumi_bench"))
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions; the median is reported")
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per torch repetition")
    ap.add_argument("--layers", default="", help="only layers whose name contains this string")
    ap.add_argument("--torch-only", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--passive", action="store_true",
                    help="OMP_WAIT_POLICY=PASSIVE for torch and sumi: on a busy machine spinning OpenMP waits "
                         "cost a scheduler slice per parallel region")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(THREADS)
    print("torch %s, %d threads; loaded: %s" % (torch.__version__, THREADS, ", ".join(loaded_blas())))
    print("OPENBLAS_CORETYPE=%s, OMP_WAIT_POLICY=%s" % (os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
                                                      os.environ.get("OMP_WAIT_POLICY", "(unset)")))
    layers = [l for l in LAYERS if args.layers in l[0]]

    # Torch and sumi run layer by layer, alternating, so that both see the same machine load.
    tt, st, peak = {}, {}, None
    if args.sumi_json:
        with open(args.sumi_json) as f:
            st, peak = parse_sumi(json.load(f))
    elif not args.torch_only:
        _, peak = parse_sumi(run_bench(args.bench, "^peak/fma/.*/%d$" % THREADS, args.reps))
    for layer in layers:
        for op, ms in time_torch_layer(torch, layer, args.reps, args.min_time).items():
            tt[(layer[0], op)] = ms
        if not args.sumi_json and not args.torch_only:
            pattern = "^conv/%s/(fwd|bwd_in|bwd_w)/(avx2|avx512)/%d$" % (layer[0].replace(".", "[.]"), THREADS)
            st.update(parse_sumi(run_bench(args.bench, pattern, args.reps))[0])

    if peak:
        print("fp32 FMA peak at %d threads: %.1f GFLOP/s (peak/fma)" % (THREADS, peak))
    header = ("layer", "op", "GFLOP", "sumi ms", "torch ms", "torch/sumi", "sumi GFLOP/s", "% of peak", "isa")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
    else:
        print("%-16s %-7s %7s %9s %9s %10s %12s %9s %7s" % header)
    tot_s = tot_t = 0.0
    for layer in layers:
        for op in OPS:
            t = tt[(layer[0], op)]
            s, isa, gflops = st.get((layer[0], op), (float("nan"), "-", float("nan")))
            pct = 100.0 * gflops / peak if peak else float("nan")
            row = (layer[0], op, flops(layer) / 1e9, s, t, t / s, gflops, pct, isa)
            if args.markdown:
                print("| %s | %s | %.3f | %.3f | %.3f | %.2f | %.1f | %.0f%% | %s |" % row)
            else:
                print("%-16s %-7s %7.3f %9.3f %9.3f %10.2f %12.1f %8.0f%% %7s" % row)
            if layer[0].startswith("ae."):
                tot_s += s
                tot_t += t
    if tot_s > 0:
        print("\nautoencoder, all six layers x three ops: sumi %.3f ms, torch %.3f ms, torch/sumi %.2f" %
              (tot_s, tot_t, tot_t / tot_s))


if __name__ == "__main__":
    main()
