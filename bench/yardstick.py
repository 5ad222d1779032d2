"""Shared plumbing of the PyTorch-vs-sumi comparison scripts (compare_autoencoder/dcgan/finetune.py).

PyTorch runs in a child interpreter because the BLAS is picked when torch loads: Debian's torch links
libblas.so.3, which may be the netlib reference BLAS, so the child gets Debian's OpenMP OpenBLAS first on the
library path and has OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed (forcing them halves OpenBLAS here). The
child reports the BLAS it loaded from /proc/self/maps and writes its results as JSON.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"


def loaded_blas():
    """The BLAS/LAPACK/oneDNN libraries mapped into this process."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            path = fields[-1] if len(fields) >= 6 else ""
            if any(s in os.path.basename(path) for s in ("blas", "lapack", "dnnl", "mkl")):
                libs.add(os.path.realpath(path))
    return sorted(libs)


def torch_in_child(script, worker_args, threads):
    """Run `script --torch-worker OUT *worker_args` with the OpenMP OpenBLAS and return the JSON it writes."""
    env = dict(os.environ)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(var, None)
    env["LD_LIBRARY_PATH"] = OPENBLAS_DIR + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="sumi_torch_") as tmp:
        out = os.path.join(tmp, "torch.json")
        subprocess.run([sys.executable, os.path.abspath(script), "--torch-worker", out] + list(worker_args),
                       env=env, check=True)
        with open(out) as f:
            return json.load(f)


def run_sumi_example(binary, args, prefix):
    """Run a sumi example with `args` and `--out` a temporary folder; return its summary.json (None if the
    binary is missing)."""
    if not os.path.exists(binary):
        print("sumi: %s not found (build it with the release preset); skipped" % binary)
        return None
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        cmd = [binary] + list(args) + ["--out", tmp]
        print("running: %s (OMP_WAIT_POLICY=%s)" % (" ".join(cmd), os.environ.get("OMP_WAIT_POLICY", "(unset)")))
        sys.stdout.flush()
        subprocess.run(cmd, check=True)
        with open(os.path.join(tmp, "summary.json")) as f:
            return json.load(f)


def add_comparison_args(ap, example):
    """The flags every comparison script takes: --threads, --torch-only / --sumi-only, --sumi-bin (the release
    build of examples/<example>), --json, and --torch-worker, which the script passes to its PyTorch child."""
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1,
                    help="run both sides this many times, alternating, and report each side's median round "
                         "(a shared machine's slow spells then fall on both)")
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--torch-only", action="store_true")
    only.add_argument("--sumi-only", action="store_true")
    ap.add_argument("--sumi-bin", default=os.path.join(root, "build", "release", "examples", example))
    ap.add_argument("--json", metavar="OUT", help="write both results to this JSON file")
    ap.add_argument("--torch-worker", metavar="OUT", help=argparse.SUPPRESS)


def alternate_rounds(args, run_torch, run_sumi, key):
    """Run PyTorch and sumi args.rounds times, alternating (each side skipped under --sumi-only/--torch-only),
    and return (torch_res, sumi_res): each side's round with the median `key` (the lower middle one for an even
    count), with every round's value of `key` added as "rounds_<key>"."""
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    runs = {"torch": [], "sumi": []}
    for r in range(args.rounds):
        if not args.sumi_only:
            runs["torch"].append(run_torch())
        if not args.torch_only:
            runs["sumi"].append(run_sumi())
        if args.rounds > 1 and runs["torch"] and runs["sumi"] and runs["torch"][-1] and runs["sumi"][-1]:
            t, s = runs["torch"][-1][key], runs["sumi"][-1][key]
            print("round %d of %d: %s PyTorch %.4g, sumi %.4g, sumi / PyTorch %.3f" % (
                r + 1, args.rounds, key.replace("_", " "), t, s, s / t))
            sys.stdout.flush()

    def median_round(results):
        results = [res for res in results if res]
        if not results:
            return None
        ordered = sorted(results, key=lambda res: res[key])
        chosen = dict(ordered[(len(ordered) - 1) // 2])
        chosen["rounds_" + key] = [res[key] for res in results]
        return chosen

    return median_round(runs["torch"]), median_round(runs["sumi"])


def serve_torch_worker(args, run_torch):
    """In the PyTorch child (--torch-worker OUT): run run_torch(args), write its result there, return True."""
    if not args.torch_worker:
        return False
    result = run_torch(args)
    with open(args.torch_worker, "w") as f:
        json.dump(result, f)
    return True


def print_side_by_side(torch_res, sumi_res, rows, ratio_key, ratio_note, title=None):
    """A PyTorch | sumi table of rows (label, key, printf format[, scale]) of the two results (either may be
    None), then sumi's ratio to PyTorch of ratio_key."""
    def cell(res, key, fmt, scale=1.0):
        return fmt % (scale * res[key]) if res and key in res else "n/a"

    print()
    if title:
        print(title)
    print("%-24s %12s %12s" % ("", "PyTorch", "sumi"))
    for label, key, fmt, *scale in rows:
        print("%-24s %12s %12s" % (label, cell(torch_res, key, fmt, *scale), cell(sumi_res, key, fmt, *scale)))
    if torch_res and sumi_res:
        print("sumi / PyTorch %s: %.3f (%s)" % (ratio_key.replace("_", " "), sumi_res[ratio_key] / torch_res[ratio_key],
                                                ratio_note))
