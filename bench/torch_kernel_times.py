"""PyTorch's time for the operations that sumi_bench times kernel by kernel (the depthwise convolution's
depthwise/* cases, max pooling's resample/max_pool2d_k3s2p1/* and the batched products' matmul/*), for a ratio
on the same machine. The matmul cases run through autograd as sumi_bench's do: the product alone (fwd), and
the product, sum(product * upstream) and the backward of both operands (fwd_bwd).

Each operation is the functional op on the same float shapes, timed from Python (median of --reps calls after
two warm-ups), so PyTorch's figure also holds the op's allocation and first touch of its output, which
sumi_bench's kernels (writing into buffers made once) do not pay. Runs in a child interpreter with Debian's
OpenMP OpenBLAS and OPENBLAS_CORETYPE unset (yardstick.py), on --threads threads.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_kernel_times.py --threads 2
"""
import argparse
import statistics
import time

import yardstick


def median_ms(fn, reps):
    fn()
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def run_torch(args):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {"torch": torch.__version__, "blas": yardstick.loaded_blas(), "threads": args.threads, "ms": {}}
    with torch.no_grad():
        for stride in (1, 2):
            name = "depthwise/dw3x3s%d.c128.56" % stride
            x = torch.randn(32, 128, 56, 56)
            w = torch.randn(128, 1, 3, 3)
            y = F.conv2d(x, w, stride=stride, padding=1, groups=128)
            gy = torch.randn_like(y)
            results["ms"][name + "/fwd"] = median_ms(
                lambda: F.conv2d(x, w, stride=stride, padding=1, groups=128), args.reps)
            results["ms"][name + "/bwd_in"] = median_ms(
                lambda: torch.nn.grad.conv2d_input(x.shape, w, gy, stride=stride, padding=1, groups=128),
                args.reps)
            results["ms"][name + "/bwd_w"] = median_ms(
                lambda: torch.nn.grad.conv2d_weight(x, w.shape, gy, stride=stride, padding=1, groups=128),
                args.reps)
    x = torch.randn(128, 64, 32, 32, requires_grad=True)
    results["ms"]["resample/max_pool2d_k3s2p1/fwd"] = median_ms(
        lambda: F.max_pool2d(x.detach(), 3, stride=2, padding=1), args.reps)
    y, indices = F.max_pool2d(x.detach(), 3, stride=2, padding=1, return_indices=True)
    gy = torch.randn_like(y)
    results["ms"]["resample/max_pool2d_k3s2p1/bwd"] = median_ms(
        lambda: torch.ops.aten.max_pool2d_with_indices_backward(gy, x.detach(), [3, 3], [2, 2], [1, 1], [1, 1],
                                                                False, indices), args.reps)
    matmul_cases = [  # as bench/bench_matmul.cpp
        ("64x64x64_batch64", (64, 64, 64), (64, 64, 64)),
        ("256x256x256_batch8", (8, 256, 256), (8, 256, 256)),
        ("512x512x512_batch2", (2, 512, 512), (2, 512, 512)),
        ("64x64x64_batch64_broadcast", (64, 64, 64), (1, 64, 64)),
    ]
    for name, shape_a, shape_b in matmul_cases:
        a = torch.randn(*shape_a, requires_grad=True)
        b = torch.randn(*shape_b, requires_grad=True)
        upstream = torch.randn(shape_a[0], shape_a[1], shape_b[2])

        def forward_backward():
            a.grad = None
            b.grad = None
            (torch.matmul(a, b) * upstream).sum().backward()

        with torch.no_grad():
            results["ms"]["matmul/%s/fwd" % name] = median_ms(lambda: torch.matmul(a, b), args.reps)
        results["ms"]["matmul/%s/fwd_bwd" % name] = median_ms(forward_backward, args.reps)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--torch-worker", metavar="OUT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if yardstick.serve_torch_worker(args, run_torch):
        return
    res = yardstick.torch_in_child(__file__, ["--threads", str(args.threads), "--reps", str(args.reps)],
                                   args.threads)
    print("PyTorch %s, %d threads, BLAS: %s" % (res["torch"], res["threads"], ", ".join(res["blas"]) or "none"))
    for name, ms in res["ms"].items():
        print("%-40s %9.2f ms" % (name, ms))


if __name__ == "__main__":
    main()
