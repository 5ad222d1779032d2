#!/usr/bin/python3
"""t-SNE of one CSV of points by sumi (examples/tsne) and by scikit-learn side by side: time, KL divergence,
trustworthiness (k=10) and leave-one-out 10-NN accuracy in the embedding.

scikit-learn is Debian's python3-sklearn (1.2): TSNE with its defaults (perplexity 30, PCA initialisation,
learning rate "auto", 1000 iterations), method="barnes_hut", n_jobs = --threads. Its KL is the
Barnes-Hut estimate it reports (kl_divergence_); sumi's is exact up to 20,000 points and the FFT
interpolation's estimate above (sumi's JSON says which). Both embeddings are scored by the same Python code here, so the
quality columns are comparable; sumi's own values from its JSON are printed too.

Trustworthiness needs all N^2 input distances; above --trust-sample points (default 10,000) both embeddings
are scored on the same random subsample of that size (neighbours taken within the subsample), and the table
says so.

Usage (the input: one row per point, optional header, an optional `label` column):
  /usr/bin/python3 bench/compare_tsne.py --input out/finetune/test_outputs.csv --threads 2
  /usr/bin/python3 bench/compare_tsne.py --input out/latent/all_codes.csv --threads 2 --json t70k.json
  /usr/bin/python3 bench/compare_tsne.py --input X.csv --skip-sklearn    # sumi only
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def read_points(path):
    with open(path) as f:
        first = f.readline().strip().split(",")
    try:
        [float(c) for c in first]
        header = None
    except ValueError:
        header = first
    data = np.genfromtxt(path, delimiter=",", skip_header=1 if header else 0, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    labels = None
    if header and "label" in header:
        col = header.index("label")
        labels = data[:, col].astype(np.int64)
        data = np.delete(data, col, axis=1)
    return data, labels


def knn_accuracy(embedding, labels, k=10):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1).fit(embedding)
    idx = nn.kneighbors(return_distance=False)[:, :k]  # kneighbors() without X excludes each point itself
    votes = labels[idx]
    classes = labels.max() + 1
    counts = np.stack([(votes == c).sum(axis=1) for c in range(classes)], axis=1)
    return float((counts.argmax(axis=1) == labels).mean())  # ties to the smallest class


def trust(points, embedding, sample, rng_seed=0, k=10):
    from sklearn.manifold import trustworthiness

    n = points.shape[0]
    if n > sample:
        idx = np.random.RandomState(rng_seed).choice(n, sample, replace=False)
        points, embedding = points[idx], embedding[idx]
    return float(trustworthiness(points, embedding, n_neighbors=k))


def run_sumi(args, workdir):
    out = os.path.join(workdir, "sumi_tsne.csv")
    cmd = [args.sumi, "--input", args.input, "--out", out, "--perplexity", str(args.perplexity), "--seed",
           str(args.seed), "--threads", str(args.threads), "--quiet"]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    with open(out.replace(".csv", ".json")) as f:
        summary = json.load(f)
    embedding = np.genfromtxt(out, delimiter=",", skip_header=1, usecols=(0, 1))
    return embedding, summary, wall


def run_sklearn(args, points):
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import sklearn
    from sklearn.manifold import TSNE

    print(f"scikit-learn {sklearn.__version__}: TSNE(method='barnes_hut', n_jobs={args.threads})", flush=True)
    tsne = TSNE(n_components=2, perplexity=args.perplexity, init="pca", learning_rate="auto", n_iter=1000,
                method="barnes_hut", angle=0.5, n_jobs=args.threads, random_state=args.seed)
    start = time.perf_counter()
    embedding = tsne.fit_transform(points)
    return embedding, float(tsne.kl_divergence_), time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="CSV of points (optional header, optional label column)")
    p.add_argument("--sumi", default="build/release/examples/tsne", help="sumi's tsne example")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--perplexity", type=float, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trust-sample", type=int, default=10000, help="score trustworthiness on this many points at most")
    p.add_argument("--skip-sklearn", action="store_true", help="run sumi only")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    if not os.path.exists(args.sumi):
        sys.exit(f"error: sumi's tsne example '{args.sumi}' not found (build it: cmake --build --preset release)")
    points, labels = read_points(args.input)
    print(f"{args.input}: {points.shape[0]} points, {points.shape[1]} coordinates", flush=True)
    sampled = points.shape[0] > args.trust_sample
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        emb, summary, wall = run_sumi(args, workdir)
    results["sumi"] = {"seconds": summary["seconds"], "process_seconds": wall, "kl_divergence": summary["kl_divergence"],
                       "kl_method": summary["kl_method"], "own_trustworthiness": summary.get("trustworthiness"),
                       "own_knn_accuracy": summary.get("knn_accuracy"), "embedding": emb}
    if not args.skip_sklearn:
        emb, kl, seconds = run_sklearn(args, points)
        results["scikit-learn"] = {"seconds": seconds, "kl_divergence": kl, "kl_method": "barnes_hut", "embedding": emb}
    for r in results.values():
        r["trustworthiness"] = trust(points, r["embedding"], args.trust_sample)
        r["knn_accuracy"] = knn_accuracy(r["embedding"], labels) if labels is not None else None
        del r["embedding"]

    def fmt(v, digits=4):
        return "-" if v is None else f"{v:.{digits}f}"

    names = list(results)
    print()
    print(f"| {points.shape[0]} points, {points.shape[1]}-d, {args.threads} threads | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    print("| t-SNE wall time (s) | " + " | ".join(fmt(results[n]["seconds"], 1) for n in names) + " |")
    print("| final KL divergence | " + " | ".join(f"{fmt(results[n]['kl_divergence'])} ({results[n]['kl_method']})"
                                                  for n in names) + " |")
    label = "trustworthiness (k=10" + (f", {args.trust_sample}-point sample)" if sampled else ")")
    print(f"| {label} | " + " | ".join(fmt(results[n]["trustworthiness"]) for n in names) + " |")
    print("| 10-NN accuracy (leave-one-out) | " + " | ".join(fmt(results[n]["knn_accuracy"]) for n in names) + " |")
    if "scikit-learn" in results:
        print(f"\ntime ratio sumi / scikit-learn: {results['sumi']['seconds'] / results['scikit-learn']['seconds']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"input": args.input, "points": int(points.shape[0]), "threads": args.threads,
                       "trust_sample": args.trust_sample if sampled else None, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
