"""Benchmark: acceflow's bootstrap AUC CI and fast DeLong against naive versions.

1. ``bootstrap_auc_ci`` (scores sorted once, each replicate scored from its multiplicities by
   cumulative counts, O(n) per replicate) against a Python loop over
   ``sklearn.metrics.roc_auc_score`` on the *same* stratified resamples (the loop redraws the index
   matrix with the same generator, seed, chunking and draw order as ``bootstrap_auc_ci``, so the
   CIs agree to rounding), and against the implementation before issue 21 (one bincount per
   class, controls' counts permuted to sorted order, float cumulative sums; kept below as
   ``previous_bootstrap_auc_ci``). At the default size (n = 10,000, 2,000 replicates: 2e7
   replicate x case values, above ``_KERNEL_MIN_ELEMENTS``) ``bootstrap_auc_ci`` scores with the
   numba kernels and overlaps the draws of the next chunk with the scoring in a worker thread;
   its numpy engine (used below 1e7 values) and the kernels without the overlap are timed too.
   The first call in the process is timed apart: it imports numba and loads (or compiles) the
   kernels. The index draws alone are timed as well: the replicates are fixed by the seed, so no
   implementation that reproduces them can take less CPU than drawing them; the ratio of
   ``bootstrap_auc_ci`` to the draws is steadier than the ratio to the loop on a loaded machine.
   Wall times are the best of ``--repeats``; CPU times (process time, all threads) the median.
2. ``delong_ci`` (Sun & Xu 2014 midrank algorithm, O(n log n)) at n = 10,000 against the
   textbook O(m x n) DeLong (every case-control pair), timed at n = 2,000 and extrapolated by the
   ratio of pairs (x25), in pure Python and with a numpy pair matrix.

Prints figures only; nothing is asserted about time.

    .venv/bin/python benchmarks/bootstrap_auc.py [--n 10000] [--n-boot 2000] [--seed 20240601]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from acceflow.metrics import discrimination
from acceflow.metrics.discrimination import bootstrap_auc_ci, delong_ci, delong_roc_variance


def simulate(n, prevalence, auc, rng):
    """Binormal scores with equal variances: cases ~ N(d, 1), controls ~ N(0, 1), AUC = Phi(d/sqrt 2)."""
    m = int(round(n * prevalence))
    d = math.sqrt(2) * stats.norm.ppf(auc)
    y = np.r_[np.ones(m, int), np.zeros(n - m, int)]
    s = np.r_[rng.normal(d, 1, m), rng.normal(0, 1, n - m)]
    order = rng.permutation(n)
    return y[order], s[order]


def same_indices_as_bootstrap_auc_ci(y, n_boot, seed):
    """Case and control index matrices drawn exactly as ``bootstrap_auc_ci(stratified=True)`` draws them."""
    rng = np.random.default_rng(seed)
    m, n_neg = int(y.sum()), int((1 - y).sum())
    chunk = max(1, getattr(discrimination, "_BOOT_CHUNK_ELEMENTS", 2_000_000) // y.size)
    pos_idx, neg_idx = [], []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        pos_idx.append(rng.integers(0, m, (b, m)))
        neg_idx.append(rng.integers(0, n_neg, (b, n_neg)))
    return np.vstack(pos_idx), np.vstack(neg_idx)


def draws_only(y, n_boot, seed):
    """The index draws of ``bootstrap_auc_ci(stratified=True)`` and nothing else (int32, no copies)."""
    rng = np.random.default_rng(seed)
    m, n_neg = int(y.sum()), int((1 - y).sum())
    chunk = max(1, getattr(discrimination, "_BOOT_CHUNK_ELEMENTS", 2_000_000) // y.size)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        rng.integers(0, m, (b, m), dtype=np.int32)
        rng.integers(0, n_neg, (b, n_neg), dtype=np.int32)


def previous_bootstrap_auc_ci(y, s, n_boot, seed, alpha=0.05):
    """``bootstrap_auc_ci(stratified=True)`` as it was before issue 21 (same draws, same CI)."""
    rng = np.random.default_rng(seed)
    pos, neg = s[y == 1], s[y == 0]
    order = np.argsort(neg, kind="stable")
    neg_sorted = neg[order]
    lo = np.searchsorted(neg_sorted, pos, side="left")
    hi = np.searchsorted(neg_sorted, pos, side="right")

    def counts(idx, n):
        b = idx.shape[0]
        return np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)

    chunk = max(1, getattr(discrimination, "_BOOT_CHUNK_ELEMENTS", 2_000_000) // y.size)
    out = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w = counts(rng.integers(0, pos.size, (b, pos.size)), pos.size)
        v = counts(rng.integers(0, neg.size, (b, neg.size)), neg.size)[:, order]
        cum = np.zeros((v.shape[0], v.shape[1] + 1))
        np.cumsum(v, axis=1, out=cum[:, 1:])
        below, upto = cum[:, lo], cum[:, hi]
        out.append((w * (below + 0.5 * (upto - below))).sum(axis=1) / (pos.size * neg.size))
    low, high = np.percentile(np.concatenate(out), [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(roc_auc_score(y, s)), float(low), float(high)


def loop_bootstrap(y, s, pos_idx, neg_idx, alpha=0.05):
    pos, neg = s[y == 1], s[y == 0]
    labels = np.r_[np.ones(pos.size, int), np.zeros(neg.size, int)]
    aucs = np.array([roc_auc_score(labels, np.r_[pos[i], neg[j]]) for i, j in zip(pos_idx, neg_idx)])
    low, high = np.percentile(aucs, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(roc_auc_score(y, s)), float(low), float(high)


def naive_delong_python(y, s):
    """DeLong variance by the definition: psi over every case-control pair, in pure Python."""
    pos = [float(v) for v in s[y == 1]]
    neg = [float(v) for v in s[y == 0]]
    m, n = len(pos), len(neg)
    v10 = [0.0] * m
    v01 = [0.0] * n
    for i, x in enumerate(pos):
        acc = 0.0
        for j, z in enumerate(neg):
            psi = 1.0 if x > z else (0.5 if x == z else 0.0)
            acc += psi
            v01[j] += psi
        v10[i] = acc / n
    v01 = [v / m for v in v01]
    auc = sum(v10) / m
    s10 = sum((v - auc) ** 2 for v in v10) / (m - 1)
    s01 = sum((v - auc) ** 2 for v in v01) / (n - 1)
    return auc, s10 / m + s01 / n


def naive_delong_numpy(y, s):
    """DeLong variance from the full m x n psi matrix (O(mn) time and memory)."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(v10.mean()), float(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def timed(fn, repeats):
    """(best wall, median CPU, result) of ``repeats`` calls; CPU is process time (all threads)."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), float(np.median(cpus)), out


def with_settings(fn, **settings):
    """Call ``fn`` with module settings of ``discrimination`` changed for the call."""
    def call():
        old = {k: getattr(discrimination, k) for k in settings}
        for k, v in settings.items():
            setattr(discrimination, k, v)
        try:
            return fn()
        finally:
            for k, v in old.items():
                setattr(discrimination, k, v)
    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="cases in the bootstrap / DeLong benchmark")
    parser.add_argument("--n-boot", type=int, default=2_000, help="bootstrap replicates")
    parser.add_argument("--n-naive", type=int, default=2_000, help="cases for the naive O(n^2) DeLong")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best of) for the fast methods")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    y, s = simulate(args.n, 0.3, 0.75, rng)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs visible")
    print(f"data: n = {y.size}, cases = {int(y.sum())} (prevalence {y.mean():.3f}), "
          f"sample AUC = {roc_auc_score(y, s):.4f} (target 0.75), seed {args.seed}")

    print(f"\n== stratified percentile bootstrap, {args.n_boot} replicates ==")
    load_before = os.getloadavg()

    def fast():
        return bootstrap_auc_ci(y, s, n_boot=args.n_boot, seed=args.seed)

    c0, t0 = time.process_time(), time.perf_counter()
    fast()
    t_first, cpu_first = time.perf_counter() - t0, time.process_time() - c0
    t_vec, cpu_vec, (auc_v, low_v, high_v) = timed(fast, args.repeats)
    t_seq, cpu_seq, ci_seq = timed(with_settings(fast, _PREFETCH=False), args.repeats)
    t_np, cpu_np, ci_np = timed(with_settings(fast, _KERNEL_MIN_ELEMENTS=10**18), args.repeats)
    t_prev, cpu_prev, (auc_p, low_p, high_p) = timed(
        lambda: previous_bootstrap_auc_ci(y, s, args.n_boot, args.seed), args.repeats)
    t_draw, cpu_draw, _ = timed(lambda: draws_only(y, args.n_boot, args.seed), args.repeats)
    c0 = time.process_time()
    t0 = time.perf_counter()
    pos_idx, neg_idx = same_indices_as_bootstrap_auc_ci(y, args.n_boot, args.seed)
    t_idx = time.perf_counter() - t0
    t0 = time.perf_counter()
    auc_l, low_l, high_l = loop_bootstrap(y, s, pos_idx, neg_idx)
    t_loop = time.perf_counter() - t0
    cpu_loop = time.process_time() - c0
    t_loop_all = t_idx + t_loop
    print(f"                                          wall (best of {args.repeats})  CPU (median)")
    print(f"bootstrap_auc_ci (numba kernels, overlapped draws): {t_vec:7.3f} s  {cpu_vec:7.3f} s  "
          f"AUC {auc_v:.6f}  95% CI [{low_v:.6f}, {high_v:.6f}]")
    print(f"  the same, draws not overlapped:                   {t_seq:7.3f} s  {cpu_seq:7.3f} s")
    print(f"  its numpy engine (below 1e7 replicate x case):    {t_np:7.3f} s  {cpu_np:7.3f} s")
    print(f"  first call in this process (numba import, kernel load or compile): {t_first:.3f} s wall, "
          f"{cpu_first:.3f} s CPU")
    print(f"previous implementation (before issue 21):          {t_prev:7.3f} s  {cpu_prev:7.3f} s  "
          f"AUC {auc_p:.6f}  95% CI [{low_p:.6f}, {high_p:.6f}]")
    print(f"index draws alone (the floor):                      {t_draw:7.3f} s  {cpu_draw:7.3f} s")
    print(f"loop over roc_auc_score (one run):                  {t_loop_all:7.3f} s  {cpu_loop:7.3f} s  "
          f"AUC {auc_l:.6f}  95% CI [{low_l:.6f}, {high_l:.6f}]  (index draws {t_idx:.3f} s + loop {t_loop:.3f} s)")
    diff = max(abs(low_v - low_l), abs(high_v - high_l), abs(auc_v - auc_l))
    diff_prev = max(abs(low_v - low_p), abs(high_v - high_p), abs(auc_v - auc_p))
    diff_eng = max(abs(a - b) for a, b in zip((auc_v, low_v, high_v), ci_np + ci_seq))
    print(f"same resamples: max |difference| of AUC and CI bounds = {diff:.2e} vs the loop "
          f"({'agree' if diff < 1e-9 else 'DIFFER'}), {diff_prev:.2e} vs the previous implementation "
          f"({'agree' if diff_prev < 1e-12 else 'DIFFER'}), {diff_eng:.2e} between the engines "
          f"({'agree' if diff_eng < 1e-12 else 'DIFFER'})")
    print(f"load average before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"speed-up vs the loop (loop / bootstrap_auc_ci): {t_loop_all / t_vec:.1f}x wall, "
          f"{cpu_loop / cpu_vec:.1f}x CPU; numpy engine {t_loop_all / t_np:.1f}x wall, {cpu_loop / cpu_np:.1f}x CPU")
    print(f"speed-up vs the previous implementation: {t_prev / t_vec:.1f}x wall, {cpu_prev / cpu_vec:.1f}x CPU")
    print(f"bootstrap_auc_ci / index draws alone (load-robust; 1.0 is the floor): {t_vec / t_draw:.2f} wall, "
          f"{cpu_vec / cpu_draw:.2f} CPU")

    print("\n== DeLong CI ==")
    t_fast, (auc_d, low_d, high_d) = best_of(lambda: delong_ci(y, s), max(args.repeats, 5))
    print(f"acceflow delong_ci (Sun & Xu midranks), n = {y.size}: {t_fast * 1e3:8.2f} ms  "
          f"AUC {auc_d:.6f}  95% CI [{low_d:.6f}, {high_d:.6f}]")
    y_small, s_small = simulate(args.n_naive, 0.3, 0.75, np.random.default_rng(args.seed + 1))
    pairs_ratio = (y.sum() * (y.size - y.sum())) / (y_small.sum() * (y_small.size - y_small.sum()))
    t_fast_small, (auc_f, var_f) = best_of(lambda: delong_roc_variance(y_small, s_small), 5)
    t_py, (auc_p, var_p) = best_of(lambda: naive_delong_python(y_small, s_small), 1)
    t_np, (auc_n, var_n) = best_of(lambda: naive_delong_numpy(y_small, s_small), 3)
    print(f"n = {y_small.size}: fast {t_fast_small * 1e3:.2f} ms, naive pure Python {t_py:.3f} s, "
          f"naive numpy pair matrix {t_np * 1e3:.2f} ms")
    print(f"  variances agree: fast {var_f:.10e}, naive Python {var_p:.10e}, naive numpy {var_n:.10e}")
    print(f"extrapolated to n = {y.size} (x{pairs_ratio:.0f} pairs): naive pure Python ~{t_py * pairs_ratio:.1f} s "
          f"({t_py * pairs_ratio / t_fast:,.0f}x the fast algorithm), naive numpy ~{t_np * pairs_ratio:.2f} s "
          f"({t_np * pairs_ratio / t_fast:,.0f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
