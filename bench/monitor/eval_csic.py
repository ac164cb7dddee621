#!/usr/bin/python3
"""Scores csic_features output with scikit-learn's IsolationForest, to check separation offline.

  /usr/bin/python3 bench/monitor/eval_csic.py DIR [--trees 200] [--seed 1]

request mode: one forest on DIR/train.csv (one row per request), scored on DIR/test.csv.
model mode:   one forest per model key on its training records (DIR/models/<n>.csv), each
              test record scored and calibrated against its own model's training scores
              (tail probability), a request's score = its most surprising record.
Prints AUC and detection rate at 1% false positives for both.
"""
import argparse
import csv
import os

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score, roc_curve


def dr_at_fp(y, s, fp=0.01):
    fpr, tpr, _ = roc_curve(y, s)
    return float(np.max(tpr[fpr <= fp])) if np.any(fpr <= fp) else 0.0


def report(name, y, s):
    print(f"{name}: AUC {roc_auc_score(y, s):.4f}  detection@1%FP {dr_at_fp(y, s):.4f}  "
          f"n={len(y)} anomalous={int(np.sum(y))}")


def tail_bits(train_sorted, s, q=0.99):
    """-log2 P(training score >= s): empirical below the q quantile, an exponential tail
    fitted to the excesses above it (peaks over threshold) beyond, so models with few
    training records are not capped at log2(n)."""
    n = len(train_sorted)
    u = train_sorted[int(q * (n - 1))]
    exc = train_sorted[train_sorted > u] - u
    scale = max(exc.mean() if len(exc) else 0.0, 1e-6)
    ge = n - np.searchsorted(train_sorted, s, side="left")
    emp = (ge + 1) / (n + 1)
    tail = (1 - q) * np.exp(-(s - u) / scale)
    p = np.where(s > u, tail, emp)
    return -np.log2(p)


def forest(args, n):
    return IsolationForest(n_estimators=args.trees, max_samples=min(256, n), random_state=args.seed)


def request_mode(args):
    tr = np.loadtxt(os.path.join(args.dir, "train.csv"), delimiter=",", skiprows=1)
    te = np.loadtxt(os.path.join(args.dir, "test.csv"), delimiter=",", skiprows=1)
    f = forest(args, len(tr)).fit(tr[:, :-1])
    report("request mode (one forest, per-request max of record-level columns)", te[:, -1],
           -f.score_samples(te[:, :-1]))


def model_mode(args):
    mdir = os.path.join(args.dir, "models")
    best = {}  # request -> (score, label)
    with open(os.path.join(mdir, "index.csv")) as fh:
        models = list(csv.DictReader(fh))
    for m in models:
        path = os.path.join(mdir, m["n"] + ".csv")
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        req = data[:, 0].astype(np.int64)
        label = data[:, 2]
        x = data[:, 3:]
        train = data[:, 1] == 1
        if train.sum() < 10 or (~train).sum() == 0:
            continue
        f = forest(args, int(train.sum())).fit(x[train])
        tr_scores = np.sort(-f.score_samples(x[train]))
        te = ~train
        s = -f.score_samples(x[te])
        # tail probability against the model's own training scores -> surprise in bits
        surprise = tail_bits(tr_scores, s)
        for r, sc, lb in zip(req[te], surprise, label[te]):
            if r not in best or sc > best[r][0]:
                best[r] = (sc, lb)
    y = np.array([v[1] for v in best.values()])
    s = np.array([v[0] for v in best.values()])
    report("model mode (forest per model key, calibrated, max per request)", y, s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mode", choices=["both", "request", "model"], default="both")
    args = ap.parse_args()
    if args.mode in ("both", "request"):
        request_mode(args)
    if args.mode in ("both", "model"):
        model_mode(args)


if __name__ == "__main__":
    main()
