#!/usr/bin/python3
"""scikit-learn's IsolationForest on one ODDS file, for bench/models (one JSON line on stdout).

Usage: /usr/bin/python3 sklearn_iforest.py FILE.csv.gz SEEDS
Defaults of IsolationForest (100 trees, max_samples='auto' = min(256, n)), n_jobs=1.
"""
import gzip
import json
import sys
import time

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score


def main():
    path, seeds = sys.argv[1], int(sys.argv[2])
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", skiprows=1)
    x, y = data[:, :-1], data[:, -1].astype(int)
    aucs, rprec, fit_s, score_s, single_s = [], [], [], [], []
    for seed in range(seeds):
        model = IsolationForest(random_state=seed, n_jobs=1)
        t0 = time.perf_counter()
        model.fit(x)
        fit_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s = -model.score_samples(x)
        score_s.append(time.perf_counter() - t0)
        aucs.append(roc_auc_score(y, s))
        r = int(y.sum())
        rprec.append(float(y[np.argsort(-s, kind="stable")[:r]].mean()))
        for i in range(20):
            t0 = time.perf_counter()
            model.score_samples(x[i:i + 1])
            single_s.append(time.perf_counter() - t0)
    print(json.dumps({
        "auc": float(np.mean(aucs)),
        "rprec": float(np.mean(rprec)),
        "fit_s": float(np.median(fit_s)),
        "score_s": float(np.median(score_s)),
        "single_s": float(np.median(single_s)),
        "rows": int(len(y)),
    }))


if __name__ == "__main__":
    main()
