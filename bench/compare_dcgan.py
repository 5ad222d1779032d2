#!/usr/bin/python3
"""Time one DCGAN training iteration in PyTorch and in sumi and print both side by side.

The iteration is the PyTorch DCGAN tutorial's, as examples/dcgan.cpp runs it: 64x64 images, nc=3, nz=100,
ngf=ndf=64, batch 128, BCE loss, Adam lr 2e-4 betas (0.5, 0.999); D on real, D on fake.detach(), D step; G
through the updated D, G step. Both sides train on random images in [-1, 1] (`--data synthetic`), so only
the network is timed. Reported: seconds per iteration (median, the first iteration left out) and peak RSS.

Usage:
  /usr/bin/python3 bench/compare_dcgan.py                      # both, 10 iterations, 2 threads
  /usr/bin/python3 bench/compare_dcgan.py --iterations 5 --torch-only
  /usr/bin/python3 bench/compare_dcgan.py --json dcgan.json
  /usr/bin/python3 bench/compare_dcgan.py --iterations 4 --rounds 5   # alternate 5 times, report medians

The two runs are sequential in one invocation so that they see the same machine state. PyTorch runs in a
child process because the BLAS is picked when torch loads: Debian's torch links libblas.so.3, which may be the
netlib reference BLAS, so the child gets Debian's OpenMP OpenBLAS first on the library path and has
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed (forcing them halves OpenBLAS here). The child reports the BLAS
it loaded from /proc/self/maps and keeps its max RSS apart from sumi's.

Both torch and sumi use libgomp, whose default wait policy spins at barriers; on a busy machine run the
script with OMP_WAIT_POLICY=PASSIVE exported (it leaves the variable as it finds it, for both runs).
"""
import argparse
import json
import os
import statistics
import sys
import time

import yardstick

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
NZ, NGF, NDF, NC, SIZE, BATCH, LR, BETA1 = 100, 64, 64, 3, 64, 128, 2e-4, 0.5


# ---------------------------------------------------------------------------------------------- PyTorch part

def build_nets():
    from torch import nn

    netG = nn.Sequential(
        nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(NGF * 8), nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 4), nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 2), nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF), nn.ReLU(True),
        nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False), nn.Tanh())
    netD = nn.Sequential(
        nn.Conv2d(NC, NDF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def weights_init(m):
        name = m.__class__.__name__
        if name.find("Conv") != -1:
            nn.init.normal_(m.weight.data, 0.0, 0.02)
        elif name.find("BatchNorm") != -1:
            nn.init.normal_(m.weight.data, 1.0, 0.02)
            nn.init.constant_(m.bias.data, 0)

    netG.apply(weights_init)
    netD.apply(weights_init)
    return netG, netD


def run_torch(args):
    import resource
    import torch

    torch.set_num_threads(args.threads)
    print("torch %s, %d threads; loaded: %s" % (torch.__version__, torch.get_num_threads(),
                                                ", ".join(yardstick.loaded_blas()) or "(no BLAS mapped)"))
    print("OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s OMP_WAIT_POLICY=%s" % tuple(
        os.environ.get(v, "(unset)") for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY")))
    sys.stdout.flush()
    torch.manual_seed(args.seed)
    netG, netD = build_nets()
    criterion = torch.nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=LR, betas=(BETA1, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=LR, betas=(BETA1, 0.999))
    netG.train()
    netD.train()
    seconds = []
    for i in range(args.iterations):
        real = torch.rand(BATCH, NC, SIZE, SIZE) * 2 - 1  # data, outside the timed step as in sumi
        noise = torch.randn(BATCH, NZ, 1, 1)
        t0 = time.perf_counter()
        netD.zero_grad()
        label = torch.full((BATCH,), 1.0)
        output = netD(real).view(-1)
        errD_real = criterion(output, label)
        errD_real.backward()
        fake = netG(noise)
        label.fill_(0.0)
        output = netD(fake.detach()).view(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        optD.step()
        netG.zero_grad()
        label.fill_(1.0)
        output = netD(fake).view(-1)
        errG = criterion(output, label)
        errG.backward()
        optG.step()
        errD = (errD_real + errD_fake).item()
        seconds.append(time.perf_counter() - t0)
        print("iteration %d: %.3f s, loss D %.4f, G %.4f" % (i + 1, seconds[-1], errD, errG.item()))
        sys.stdout.flush()
    timed = seconds[1:] if len(seconds) > 1 else seconds
    result = {
        "seconds_per_iteration": statistics.median(timed),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,  # Linux: KiB
        "iterations": args.iterations,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "blas": yardstick.loaded_blas(),
    }
    print("PyTorch: %.3f s per iteration (median), max RSS %.0f MB" % (result["seconds_per_iteration"],
                                                                       result["max_rss_mb"]))
    return result


def torch_in_child(args):
    """Run the PyTorch part in a fresh interpreter with the OpenMP OpenBLAS and return its results."""
    return yardstick.torch_in_child(__file__, ["--iterations", str(args.iterations), "--threads", str(args.threads),
                                               "--seed", str(args.seed)], args.threads)


# ------------------------------------------------------------------------------------------------- sumi part

def run_sumi(args):
    return yardstick.run_sumi_example(
        args.sumi_bin, ["--data", "synthetic", "--iterations", str(args.iterations), "--image-size", str(SIZE), "--nc",
                        str(NC), "--threads", str(args.threads), "--seed", str(args.seed), "--progress-every", "0",
                        "--quiet"], "sumi_dcgan_")


# ------------------------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    yardstick.add_comparison_args(ap, "dcgan")
    args = ap.parse_args()
    if args.iterations < 2 or args.threads < 1:
        ap.error("--iterations must be at least 2 (the first is not timed) and --threads at least 1")
    if yardstick.serve_torch_worker(args, run_torch):
        return

    torch_res, sumi_res = yardstick.alternate_rounds(args, lambda: torch_in_child(args), lambda: run_sumi(args),
                                                       "seconds_per_iteration")

    rows = [("seconds per iteration", "seconds_per_iteration", "%.3f"), ("max RSS MB", "max_rss_mb", "%.0f")]
    yardstick.print_side_by_side(torch_res, sumi_res, rows, "seconds_per_iteration", "target <= 0.5",
                                 "DCGAN iteration, 64x64 nc=3 g=d=64 batch 128, %d threads" % args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"iterations": args.iterations, "threads": args.threads, "pytorch": torch_res, "sumi": sumi_res},
                      f, indent=2)


if __name__ == "__main__":
    main()
