#!/usr/bin/python3
"""Train the autoencoder study in PyTorch and in sumi and compare speed, error and memory side by side.

The PyTorch model, data split and training loop mirror examples/autoencoder.cpp: FashionMNIST pixels in
[0, 1], 50,000 train / 10,000 validation images drawn (seeded) from the 60,000 training images, the 10,000
test images, latent k=5, MSE loss, Adam lr 1e-3, batch 300, reshuffled every epoch.

Usage:
  /usr/bin/python3 bench/compare_autoencoder.py                        # both, 20 epochs, 2 threads
  /usr/bin/python3 bench/compare_autoencoder.py --epochs 2 --torch-only
  /usr/bin/python3 bench/compare_autoencoder.py --epochs 5 --json out.json

The two runs are sequential in one invocation so that they see the same machine state. PyTorch runs in a
child process because the BLAS is picked when torch loads: Debian's torch links libblas.so.3, which may be the
netlib reference BLAS, so the child gets Debian's OpenMP OpenBLAS first on the library path and has
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed (forcing them halves OpenBLAS here). The child reports the BLAS
it loaded from /proc/self/maps. The child also keeps the max RSS of the PyTorch run apart from sumi's.

Both torch and sumi use libgomp. Its default wait policy spins at barriers, which on a loaded (or virtualised)
machine can make every parallel region cost a scheduler slice: torch at 2 threads then runs 10-40x slower
than at 1 thread. The script leaves OMP_WAIT_POLICY as it finds it, so both runs get the same setting; on a
busy machine run it with OMP_WAIT_POLICY=PASSIVE exported.
"""
import argparse
import gzip
import json
import os
import sys
import time

import yardstick

DATA_DIR = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LATENT, BATCH, LR, VALIDATION = 5, 300, 1e-3, 10000
EVAL_BATCH = 1000


# ---------------------------------------------------------------------------------------------- PyTorch part

def read_idx(name):
    """IDX file -> uint8 numpy array (magic: 0, 0, dtype 0x08, rank; then big-endian int32 dims)."""
    import numpy as np
    with gzip.open(os.path.join(DATA_DIR, name), "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % name)
    rank = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=rank, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(tuple(int(d) for d in dims))


def build_model(k):
    from torch import nn
    import torch

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder_cnn = nn.Sequential(
                nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(True),
                nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(True),
                nn.Conv2d(16, 32, 3, stride=2, padding=0), nn.ReLU(True))
            self.flatten = nn.Flatten(start_dim=1)
            self.encoder_lin = nn.Sequential(nn.Linear(3 * 3 * 32, 64), nn.ReLU(True), nn.Linear(64, k))

        def forward(self, x):
            return self.encoder_lin(self.flatten(self.encoder_cnn(x)))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.decoder_lin = nn.Sequential(nn.Linear(k, 64), nn.ReLU(True), nn.Linear(64, 3 * 3 * 32), nn.ReLU(True))
            self.unflatten = nn.Unflatten(dim=1, unflattened_size=(32, 3, 3))
            self.decoder_conv = nn.Sequential(
                nn.ConvTranspose2d(32, 16, 3, stride=2, output_padding=0), nn.ReLU(True),
                nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1), nn.ReLU(True),
                nn.ConvTranspose2d(8, 1, 3, stride=2, padding=1, output_padding=1))

        def forward(self, x):
            return torch.sigmoid(self.decoder_conv(self.unflatten(self.decoder_lin(x))))

    return Encoder(), Decoder()


def run_torch(args):
    import resource
    import torch

    torch.set_num_threads(args.threads)
    print("torch %s, %d threads; loaded: %s" % (torch.__version__, torch.get_num_threads(),
                                                ", ".join(yardstick.loaded_blas()) or "(no BLAS mapped)"))
    print("OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s OMP_WAIT_POLICY=%s" % tuple(
        os.environ.get(v, "(unset)") for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY")))
    sys.stdout.flush()

    # One preloaded float tensor per set: batches are plain index gathers, the fastest input path for torch.
    # Split while still uint8 and scale in place so that loading does not inflate the max RSS.
    def to_float(pixels):
        x = torch.from_numpy(pixels).float().unsqueeze(1)
        return x.div_(255.0)

    full = read_idx("train-images-idx3-ubyte.gz")
    split = torch.randperm(full.shape[0], generator=torch.Generator().manual_seed(args.seed)).numpy()
    train, val = to_float(full[split[VALIDATION:]]), to_float(full[split[:VALIDATION]])
    test = to_float(read_idx("t10k-images-idx3-ubyte.gz").copy())  # copy: from_numpy warns on read-only data
    del full
    print("data: %d train, %d validation, %d test images" % (train.shape[0], val.shape[0], test.shape[0]))

    torch.manual_seed(args.seed)
    encoder, decoder = build_model(LATENT)
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=LR)
    loss_fn = torch.nn.MSELoss()
    shuffle = torch.Generator().manual_seed(args.seed + 1)

    def evaluate(data):
        # Pixel-weighted mean over the whole set, as sumi's evaluate_mse computes it.
        encoder.eval()
        decoder.eval()
        total = 0.0
        with torch.no_grad():
            for i in range(0, data.shape[0], EVAL_BATCH):
                x = data[i:i + EVAL_BATCH]
                total += loss_fn(decoder(encoder(x)), x).item() * x.numel()
        encoder.train()
        decoder.train()
        return total / data.numel()

    epochs = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(train.shape[0], generator=shuffle)
        loss_sum = 0.0
        for i in range(0, train.shape[0], BATCH):
            x = train[order[i:i + BATCH]]
            loss = loss_fn(decoder(encoder(x)), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * x.shape[0]
        seconds = time.perf_counter() - t0
        val_mse = evaluate(val)
        epochs.append({"epoch": epoch, "train_loss": loss_sum / train.shape[0], "val_mse": val_mse,
                       "seconds": seconds})
        print("epoch %d: train loss %.5f, validation MSE %.5f, %.2f s" % (epoch, epochs[-1]["train_loss"], val_mse,
                                                                          seconds))
        sys.stdout.flush()

    result = {
        "epochs": epochs,
        "val_mse": epochs[-1]["val_mse"],
        "test_mse": evaluate(test),
        "seconds_per_epoch": sum(e["seconds"] for e in epochs) / len(epochs),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,  # Linux: KiB
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "blas": yardstick.loaded_blas(),
    }
    print("PyTorch: validation MSE %.5f, test MSE %.5f, %.2f s per training epoch, max RSS %.0f MB" %
          (result["val_mse"], result["test_mse"], result["seconds_per_epoch"], result["max_rss_mb"]))
    return result


def torch_in_child(args):
    """Run the PyTorch part in a fresh interpreter with the OpenMP OpenBLAS and return its results."""
    return yardstick.torch_in_child(__file__, ["--epochs", str(args.epochs), "--threads", str(args.threads),
                                               "--seed", str(args.seed)], args.threads)


# ------------------------------------------------------------------------------------------------- sumi part

def run_sumi(args):
    return yardstick.run_sumi_example(args.sumi_bin, ["--epochs", str(args.epochs), "--threads", str(args.threads),
                                                      "--seed", str(args.seed), "--quiet"], "sumi_ae_")


# ------------------------------------------------------------------------------------------------------- main

def print_table(torch_res, sumi_res):
    rows = [("seconds per epoch", "seconds_per_epoch", "%.2f"), ("validation MSE", "val_mse", "%.5f"),
            ("test MSE", "test_mse", "%.5f"), ("max RSS MB", "max_rss_mb", "%.0f")]
    yardstick.print_side_by_side(torch_res, sumi_res, rows, "seconds_per_epoch", "below 1: sumi is faster")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and shuffling")
    yardstick.add_comparison_args(ap, "autoencoder")
    args = ap.parse_args()
    if args.epochs < 1 or args.threads < 1:
        ap.error("--epochs and --threads must be at least 1")
    if yardstick.serve_torch_worker(args, run_torch):
        return

    torch_res, sumi_res = yardstick.alternate_rounds(args, lambda: torch_in_child(args), lambda: run_sumi(args),
                                                       "seconds_per_epoch")
    print_table(torch_res, sumi_res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"epochs": args.epochs, "threads": args.threads, "seed": args.seed, "pytorch": torch_res,
                       "sumi": sumi_res}, f, indent=2)


if __name__ == "__main__":
    main()
