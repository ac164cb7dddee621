#!/usr/bin/python3
"""Per-model-key scoring of csic_features output with the project's own scorer
(immunizer-analyze-score), as the live pipeline does it: one detector per model key trained on
that key's training vectors, each test record calibrated against the key's training scores
(exponential tail, see eval_csic.tail_bits), a request's score = its most surprising record.

  /usr/bin/python3 bench/monitor/eval_models_analyze.py DIR SCORE_BINARY [--detector ensemble]
"""
import argparse
import csv
import os
import subprocess
import tempfile

import numpy as np
from sklearn.metrics import roc_auc_score

from eval_csic import dr_at_fp, tail_bits


def score(binary, detector, train, test):
    with tempfile.TemporaryDirectory() as tmp:
        a, b = os.path.join(tmp, "train.csv"), os.path.join(tmp, "test.csv")
        np.savetxt(a, train, delimiter=",", fmt="%.9g")
        np.savetxt(b, test, delimiter=",", fmt="%.9g")
        out = subprocess.run([binary, "--train", a, "--input", b, "--label-column", "none",
                              "--detector", detector, "--threads", "1"],
                             check=True, capture_output=True, text=True).stdout
    return np.array([float(x) for x in out.split()])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("binary")
    ap.add_argument("--detector", default="ensemble")
    args = ap.parse_args()
    mdir = os.path.join(args.dir, "models")
    best = {}
    for m in csv.DictReader(open(os.path.join(mdir, "index.csv"))):
        data = np.loadtxt(os.path.join(mdir, m["n"] + ".csv"), delimiter=",", skiprows=1, ndmin=2)
        tr = data[:, 1] == 1
        te = ~tr
        if tr.sum() < 10 or te.sum() == 0:
            continue
        x = data[:, 3:]
        # the scorer scores its --input rows; score the training rows too, for calibration
        try:
            both = score(args.binary, args.detector, x[tr], np.vstack([x[tr], x[te]]))
        except subprocess.CalledProcessError as e:
            print(f"{m['model_key']}: scorer failed ({e.returncode}); falling back to iforest")
            both = score(args.binary, "iforest", x[tr], np.vstack([x[tr], x[te]]))
        st = np.sort(both[: tr.sum()])
        sur = tail_bits(st, both[tr.sum():])
        y = data[te, 2]
        if len(set(y)) > 1:
            print(f"{m['model_key'][:55]:55s} AUC {roc_auc_score(y, both[tr.sum():]):.4f}")
        for r, sc, lb in zip(data[te, 0], sur, y):
            if r not in best or sc > best[r][0]:
                best[r] = (sc, lb)
    yy = np.array([v[1] for v in best.values()])
    ss = np.array([v[0] for v in best.values()])
    print(f"model mode with {args.detector}: AUC {roc_auc_score(yy, ss):.4f}  "
          f"detection@1%FP {dr_at_fp(yy, ss):.4f}  n={len(yy)}")


if __name__ == "__main__":
    main()
