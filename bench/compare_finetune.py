#!/usr/bin/python3
"""Fine-tune the autoencoder's encoder as a classifier in PyTorch and in sumi and compare speed and accuracy.

The recipe mirrors examples/finetune.cpp (the study's): the encoder of a trained autoencoder (latent 5), its
three convolutions frozen, Linear(288, 64) trained, Linear(64, k) replaced by a new Linear(64, 10); cross
entropy, Adam lr 1e-3 on the trainable parameters, batch 300, 50 epochs, 50,000 train / 10,000 validation
images drawn (seeded) from FashionMNIST's 60,000 training images, accuracy on the 10,000 test images.

Both sides start from the same encoder weights: --encoder names an autoencoder.safetensors written by
examples/autoencoder; without it, the PyTorch child first trains one (20 epochs, as the reference run) and
writes it as safetensors for both. PyTorch runs the frozen convolutions at every step (the plain recipe);
--torch-cache makes it compute them once, as sumi does by default.

Usage:
  /usr/bin/python3 bench/compare_finetune.py --encoder out/autoencoder/autoencoder.safetensors
  /usr/bin/python3 bench/compare_finetune.py --encoder ae.safetensors --epochs 5 --torch-only
  /usr/bin/python3 bench/compare_finetune.py --epochs 50 --json finetune.json

Seconds per epoch are training time only (validation excluded), on both sides. The BLAS and OpenMP notes of
bench/compare_autoencoder.py apply: PyTorch runs in a child process with Debian's OpenMP OpenBLAS first on the
library path and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed, and on a busy machine both runs should get
OMP_WAIT_POLICY=PASSIVE exported.
"""
import argparse
import json
import os
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yardstick  # noqa: E402
import compare_autoencoder as ae  # noqa: E402  (shared data reading, model and BLAS helpers)

ROOT = ae.ROOT
BATCH, LR, VALIDATION, EVAL_BATCH, CLASSES = 300, 1e-3, 10000, 1000, 10


# ------------------------------------------------------------------------------------- safetensors (numpy)

def read_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    tensors = {}
    for name, rec in header.items():
        if name == "__metadata__":
            continue
        begin, end = rec["data_offsets"]
        data = np.frombuffer(raw[8 + size + begin:8 + size + end], dtype=dtypes[rec["dtype"]])
        tensors[name] = data.reshape(rec["shape"]).copy()
    return tensors


def write_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, t in tensors.items():
        blob = t.detach().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# ---------------------------------------------------------------------------------------------- PyTorch part

def train_torch_autoencoder(args, train, path):
    """The reference autoencoder (k=5, 20 epochs, batch 300), saved with sumi's parameter names."""
    import torch
    torch.manual_seed(args.seed)
    encoder, decoder = ae.build_model(ae.LATENT)
    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=LR)
    shuffle = torch.Generator().manual_seed(args.seed + 1)
    for epoch in range(1, args.encoder_epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(train.shape[0], generator=shuffle)
        for i in range(0, train.shape[0], BATCH):
            x = train[order[i:i + BATCH]]
            loss = torch.nn.functional.mse_loss(decoder(encoder(x)), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        print("autoencoder epoch %d: last batch loss %.5f, %.2f s" % (epoch, loss.item(), time.perf_counter() - t0))
        sys.stdout.flush()
    state = {"encoder." + k: v for k, v in encoder.state_dict().items()}
    state.update({"decoder." + k: v for k, v in decoder.state_dict().items()})
    write_safetensors(path, state, {"latent": str(ae.LATENT), "epoch": str(args.encoder_epochs)})


def run_torch(args):
    import resource
    import torch

    torch.set_num_threads(args.threads)
    print("torch %s, %d threads; loaded: %s" % (torch.__version__, torch.get_num_threads(),
                                                ", ".join(yardstick.loaded_blas()) or "(no BLAS mapped)"))
    sys.stdout.flush()

    def to_float(pixels):
        return torch.from_numpy(pixels).float().unsqueeze(1).div_(255.0)

    full_images = ae.read_idx("train-images-idx3-ubyte.gz")
    full_labels = torch.from_numpy(ae.read_idx("train-labels-idx1-ubyte.gz").astype("int64"))
    split = torch.randperm(full_images.shape[0], generator=torch.Generator().manual_seed(args.seed)).numpy()
    train_x, val_x = to_float(full_images[split[VALIDATION:]]), to_float(full_images[split[:VALIDATION]])
    train_y, val_y = full_labels[split[VALIDATION:]], full_labels[split[:VALIDATION]]
    test_x = to_float(ae.read_idx("t10k-images-idx3-ubyte.gz").copy())
    test_y = torch.from_numpy(ae.read_idx("t10k-labels-idx1-ubyte.gz").astype("int64"))
    del full_images

    if not os.path.exists(args.encoder):
        print("training the reference autoencoder in PyTorch into %s" % args.encoder)
        train_torch_autoencoder(args, train_x, args.encoder)
    weights = read_safetensors(args.encoder)
    encoder, _ = ae.build_model(weights["encoder.encoder_lin.2.weight"].shape[0])
    encoder.load_state_dict({k[len("encoder."):]: torch.from_numpy(v) for k, v in weights.items()
                             if k.startswith("encoder.")})
    torch.manual_seed(args.seed)
    encoder.encoder_lin[2] = torch.nn.Linear(64, CLASSES)
    for p in encoder.encoder_cnn.parameters():
        p.requires_grad = False
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    shuffle = torch.Generator().manual_seed(args.seed + 1)

    prefix = torch.nn.Sequential(encoder.encoder_cnn, encoder.flatten)
    cache_seconds = 0.0
    if args.torch_cache:
        t0 = time.perf_counter()
        with torch.no_grad():
            train_in, val_in, test_in = (torch.cat([prefix(x[i:i + EVAL_BATCH]) for i in range(0, x.shape[0], EVAL_BATCH)])
                                         for x in (train_x, val_x, test_x))
        cache_seconds = time.perf_counter() - t0
        model = encoder.encoder_lin
    else:
        train_in, val_in, test_in = train_x, val_x, test_x
        model = encoder

    def evaluate(x, y):
        model.eval()
        loss_sum, correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, x.shape[0], EVAL_BATCH):
                out = model(x[i:i + EVAL_BATCH])
                loss_sum += loss_fn(out, y[i:i + EVAL_BATCH]).item() * out.shape[0]
                correct += (out.argmax(1) == y[i:i + EVAL_BATCH]).sum().item()
        model.train()
        return loss_sum / x.shape[0], correct / x.shape[0]

    epochs = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(train_in.shape[0], generator=shuffle)
        loss_sum, correct = 0.0, 0
        for i in range(0, train_in.shape[0], BATCH):
            idx = order[i:i + BATCH]
            out = model(train_in[idx])
            loss = loss_fn(out, train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * idx.shape[0]
            correct += (out.argmax(1) == train_y[idx]).sum().item()
        seconds = time.perf_counter() - t0
        val_loss, val_acc = evaluate(val_in, val_y)
        epochs.append({"epoch": epoch, "train_loss": loss_sum / train_in.shape[0],
                       "train_accuracy": correct / train_in.shape[0], "val_loss": val_loss, "val_accuracy": val_acc,
                       "seconds": seconds})
        print("epoch %d: train loss %.4f, validation accuracy %.2f%%, %.3f s" % (epoch, epochs[-1]["train_loss"],
                                                                               100 * val_acc, seconds))
        sys.stdout.flush()

    test_loss, test_acc = evaluate(test_in, test_y)
    result = {
        "epochs": epochs,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "val_accuracy": epochs[-1]["val_accuracy"],
        "seconds_per_epoch": sum(e["seconds"] for e in epochs) / len(epochs),
        "feature_cache": bool(args.torch_cache),
        "feature_cache_seconds": cache_seconds,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "blas": yardstick.loaded_blas(),
    }
    print("PyTorch: test accuracy %.2f%%, %.3f s per training epoch" % (100 * test_acc, result["seconds_per_epoch"]))
    return result


def torch_in_child(args):
    worker_args = ["--epochs", str(args.epochs), "--threads", str(args.threads), "--seed", str(args.seed),
                   "--encoder", args.encoder, "--encoder-epochs", str(args.encoder_epochs)]
    if args.torch_cache:
        worker_args.append("--torch-cache")
    return yardstick.torch_in_child(__file__, worker_args, args.threads)


# ------------------------------------------------------------------------------------------------- sumi part

def run_sumi(args):
    return yardstick.run_sumi_example(args.sumi_bin, ["--encoder", args.encoder, "--epochs", str(args.epochs),
                                                      "--threads", str(args.threads), "--seed", str(args.seed),
                                                      "--quiet"], "sumi_ft_")


# ------------------------------------------------------------------------------------------------------- main

def print_table(torch_res, sumi_res):
    rows = [("seconds per epoch", "seconds_per_epoch", "%.3f"), ("test accuracy %", "test_accuracy", "%.2f", 100),
            ("prefix cache seconds", "feature_cache_seconds", "%.2f"), ("max RSS MB", "max_rss_mb", "%.0f")]
    yardstick.print_side_by_side(torch_res, sumi_res, rows, "seconds_per_epoch", "target: at most 0.333")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0, help="seed of the split, new head and shuffling")
    ap.add_argument("--encoder", help="autoencoder.safetensors (default: train one in PyTorch into a temporary file)")
    ap.add_argument("--encoder-epochs", type=int, default=20, help="epochs of the autoencoder trained without --encoder")
    ap.add_argument("--torch-cache", action="store_true", help="PyTorch also computes the frozen prefix once")
    yardstick.add_comparison_args(ap, "finetune")
    args = ap.parse_args()
    if args.epochs < 1 or args.threads < 1 or args.encoder_epochs < 1:
        ap.error("--epochs, --threads and --encoder-epochs must be at least 1")
    if yardstick.serve_torch_worker(args, run_torch):
        return

    with tempfile.TemporaryDirectory(prefix="sumi_ft_encoder_") as tmp:
        if not args.encoder:
            if args.sumi_only:
                ap.error("--sumi-only needs --encoder")
            args.encoder = os.path.join(tmp, "autoencoder.safetensors")
        elif not os.path.exists(args.encoder):
            ap.error("--encoder %s does not exist" % args.encoder)
        torch_res, sumi_res = yardstick.alternate_rounds(args, lambda: torch_in_child(args), lambda: run_sumi(args),
                                                           "seconds_per_epoch")
    print_table(torch_res, sumi_res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"epochs": args.epochs, "threads": args.threads, "seed": args.seed,
                       "torch_cache": args.torch_cache, "pytorch": torch_res, "sumi": sumi_res}, f, indent=2)


if __name__ == "__main__":
    main()
