#!/usr/bin/env python3
"""scikit-learn's KMeans on the matrix dumped by fit_million.rs, printed the same way.

Needs: pip install scikit-learn numpy   (tested with scikit-learn 1.9, numpy 2.4)

Usage:
    cargo bench -j 1 -p fitstream-segmenter --bench fit_million -- --dump /tmp/fitstream_scaled.npy
    python3 services/segmenter/benches/compare_sklearn.py /tmp/fitstream_scaled.npy [--k 6] [--runs 3]

Same settings as the Rust side: k-means++ initialisation, n_init = runs, max_iter = 300,
tol = 1e-4 (scikit-learn's default; relative to the mean feature variance, which is 1 on the
scaled matrix, so it matches linfa's tolerance 1e-2 on the centroid shift), Lloyd's algorithm.
Inertia is scikit-learn's inertia_: the sum of squared distances to the nearest centroid.
Threads: OpenMP uses all cores unless OMP_NUM_THREADS is set.
"""

import argparse
import os
import time

import numpy as np
import sklearn
from sklearn.cluster import KMeans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the .npy file written by fit_million --dump")
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args()

    x = np.load(args.path)
    n, d = x.shape
    print(
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"threads: OMP {os.environ.get('OMP_NUM_THREADS', 'default (all cores)')}, cores {os.cpu_count()}"
    )
    model = KMeans(
        n_clusters=args.k,
        init="k-means++",
        n_init=args.runs,
        max_iter=args.max_iter,
        tol=args.tol,
        random_state=args.seed,
        algorithm="lloyd",
    )
    start = time.perf_counter()
    model.fit(x)
    secs = time.perf_counter() - start
    print(f"fit {n} x {d}, k={args.k}, runs={args.runs}: {secs:.2f} s, inertia {model.inertia_:.1f}")
    print(f"  iterations of the best run: {model.n_iter_}")
    sizes = np.bincount(model.labels_, minlength=args.k)
    print(f"  cluster sizes: {sorted(sizes.tolist(), reverse=True)}")


if __name__ == "__main__":
    main()
