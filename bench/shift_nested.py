"""Test-time shift for the verdict, chosen and calibrated on inner folds only, scored on outer folds.

    .venv/bin/python bench/shift_nested.py [--data DIR] [--seeds 5] [--jobs 2]

``bench/verdict_ideas.py`` found that averaging the verdict blend over the windows ending 0..K s before the alarm
scores +1.56 +/- 0.90 over the served blend (K=3), but K was read off the outer folds and the average is less well
calibrated (ECE 0.061). Here both are chosen where they may be: per outer fold (5 folds x each fold seed,
``models.data.cv_folds``), features-typed is fitted on the batch and on the incremental features of the outer training
part's inner folds (4, grouped by record), and on those inner out-of-fold probabilities

- a calibration map per K (``models.calibration.fit_on_oof``: none / Platt / temperature / isotonic, chosen by CV on
  the inner folds) is fitted to the blend ``mean(mean_o<=K batch@o, mean_o<=K inc@o)``,
- K in 0..4 is chosen by the inner folds' challenge score of the map's nested output at the 1/6 cut (ties: smaller K).

The outer fit (on the whole outer training part) is scored on the outer test part at shifts 0..4 (the incremental
side at 0..8) and passed through the chosen K and map. With the row on the alarm window, the incremental side's K is
also chosen in 0..8, and by the inner folds' Brier score instead of the challenge score (``models.verdict_shift.best_k``). Fixed-K rules (map chosen inside, K fixed in advance) are reported beside it, and the same rules
with the row on the alarm window alone (only the incremental side averaged over 0..K s): that shift costs the service
nothing, where the row's earlier windows cost it one featurized window each. The fold predictions are kept in the cache
folder (``--refit`` recomputes them; a fit missing from it is done alone), so a new rule costs seconds, not the
~35 min of fits. Features come
from ``bench/verdict_ideas.py``'s cache (computed there when missing).

Writes bench/results/shift_nested.json (per rule: score, AUROC, ECE, TPR, TNR, per type, mean and spread over fold
seeds, paired difference to the served blend; the K and map chosen per outer fold) and shift_nested.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from feature_sets import _row, paired_bars, print_rules, summarize_rules  # noqa: E402
from models.data import RecordInfo, cv_folds, load_dataset, resolve_data_dir  # noqa: E402
from models.verdict_shift import averaged, best_k, candidates, default_cache, shift_features  # noqa: E402
from verdict_ideas import INC_SHIFTS, SHIFTS, _fit_predict, cache_path, feature_matrices  # noqa: E402

INNER = 4
SERVED = "served: mean(batch, inc)"
ROW0 = "row on the alarm window"
PARTS = (("batch", SHIFTS), ("inc8", INC_SHIFTS))  # (fit, the shifts it is scored at): the row side, the incremental side
ROW0_SERVED = ROW0 + ", inc: K (0..4) and map chosen on inner folds"
# rule families: (the row side's K: None = K as the incremental side, 0 = the alarm window alone; how K is chosen on the
# inner folds (models.verdict_shift.best_k); the largest K it may choose; the name of a fixed-K rule, map chosen inside
# (None: reported by an earlier family); the name of the rule with K and map chosen inside; the fixed Ks reported)
FAMILIES = ((None, "score", 4, "shift 0..{K} s + map (map nested)", "shift: K and map chosen on inner folds", SHIFTS),
            (0, "score", 4, ROW0 + ", inc 0..{K} s + map (map nested)", ROW0_SERVED, INC_SHIFTS[1:5]),
            (0, "score", 8, ROW0 + ", inc 0..{K} s + map (map nested)", ROW0 + ", inc: K (0..8) and map chosen on inner folds",
             INC_SHIFTS[5:]),
            (0, "brier", 8, None, ROW0 + ", inc: K (0..8) by inner Brier, map chosen inside", ()))


def sides(P: dict, idx) -> list[np.ndarray]:
    """[row side [shifts, len(idx)], incremental side [shifts, len(idx)]] from ``P[(fit, shift)]``, shift 0 first."""
    return [np.stack([P[part, o][idx] for o in shifts]) for part, shifts in PARTS]


def blend(P: dict, K: int, idx, k_row: int | None = None) -> np.ndarray:
    """``models.verdict_shift.averaged`` on rows ``idx`` of ``P[(fit, shift)]`` (the row side over 0..``k_row``, None: K)."""
    return averaged(*sides(P, idx), K, k_row)


def choose(P_in: dict, y: np.ndarray, T: np.ndarray, inner: np.ndarray, k_row: int | None = None,
           by: str = "score", max_k: int = 8) -> tuple[int, dict, dict]:
    """(K chosen, {K: map}, {K: inner score}) from the inner out-of-fold probabilities of one outer training part: the
    served selection (``models.verdict_shift.candidates`` / ``best_k``) on the inner folds, K in 0..``max_k``."""
    row, inc = sides(P_in, np.arange(len(y)))
    cands = candidates(row, inc[: max_k + 1], y, list(T), inner, k_row)
    return best_k(cands, by), {K: c["map"] for K, c in cands.items()}, {K: c["score"] for K, c in cands.items()}


def fold_predictions(F, T, y, outer, inner, seeds: list, jobs: int, n: int, fits) -> tuple[dict, dict]:
    """Outer test probabilities {s: {(fit, shift): [n]}} and inner out-of-fold ones {(s, k): {(fit, shift): [n]}} of
    the fits named in ``fits``."""
    from joblib import Parallel, delayed
    from tqdm import tqdm

    # one task: a fit ("batch" / "inc") on a training mask, scored at every shift on a test mask
    work = []
    for s in seeds:
        for k in range(5):
            for name in fits:
                work.append((s, k, -1, name, outer[s] != k, outer[s] == k))
                for j in range(INNER):
                    work.append((s, k, j, name, (inner[s, k] >= 0) & (inner[s, k] != j), inner[s, k] == j))
    res = Parallel(n_jobs=jobs, return_as="generator")(delayed(_fit_predict)(F, name, T, y, tr, te) for *_, name, tr, te in work)
    P_out = {s: {} for s in seeds}  # outer test probabilities per (fit, shift)
    P_in = {}  # (s, k) -> {(fit, shift): probability per record}, filled on the outer training part
    for (s, k, j, name, tr, te), pred in tqdm(zip(work, res), total=len(work), desc="fits (outer + inner)", unit="fit"):
        into = P_out[s] if j < 0 else P_in.setdefault((s, k), {})
        for o, p in pred.items():
            into.setdefault((name, o), np.zeros(n))[te] = p
    return P_out, P_in


COMMITTED = ROOT / "bench" / "results" / "fold_predictions"
# the code the fold predictions come from: the features, the incremental features, the fitted model, the fit itself
FIT_SOURCES = ("models/features.py", "models/beats.py", "models/beat_kernels.py", "models/incremental.py",
               "models/incremental_kernels.py", "models/feature_models.py", "models/typed_heads.py", "models/verdict_shift.py",
               "bench/verdict_ideas.py")


def fit_fingerprint() -> str:
    """A hash of ``FIT_SOURCES`` and the scikit-learn / numpy versions: kept fold predictions made by other code are stale
    (any edit counts, comments too: a refit costs time, a stale figure costs the truth)."""
    import hashlib

    import sklearn

    h = hashlib.sha256(f"sklearn {sklearn.__version__} numpy {np.__version__}".encode())
    for rel in FIT_SOURCES:
        h.update(rel.encode())
        h.update((ROOT / rel).read_bytes())
    return h.hexdigest()[:16]


def _stored_fingerprint(path: Path) -> str | None:
    with np.load(path, allow_pickle=False) as z:
        return str(z["fingerprint"]) if "fingerprint" in z.files else None


def preds_path(n: int, seeds: int, first_seed: int = 0, restore: bool = True) -> Path:
    """Where the fold predictions of fold seeds ``first_seed`` .. ``first_seed + seeds - 1`` are kept (the fits take ~27 min
    on 2 cores; new rules re-use them). A fresh checkout has no cache: where the repository holds a copy of that file
    (``COMMITTED``: fold seeds 0..4 and 5..9 of the 501 development records) made by the code checked out now (same
    ``fit_fingerprint``), ``restore`` copies it into the cache first, so the verdict benches run in seconds; otherwise the
    fits are redone (``bench/shift_nested.py``; ``--refit`` always recomputes)."""
    path = cache_path(n).parent / f"shift_nested_preds_{n}_s{seeds}{f'_from{first_seed}' if first_seed else ''}.npz"
    kept = COMMITTED / path.name
    if restore and not path.is_file() and kept.is_file():
        now, stored = fit_fingerprint(), _stored_fingerprint(kept)
        if stored != now:
            print(f"[fold predictions] the repository's {kept.name} was made by other code (fingerprint {stored}, now {now}): "
                  "not used, the fits are redone", file=sys.stderr)
            return path
        import os
        import shutil

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        shutil.copyfile(kept, tmp)
        os.replace(tmp, path)
        print(f"[fold predictions] {path.name}: copied the repository's kept fits (fingerprint {now}) into {path.parent}",
              file=sys.stderr)
    return path


def save_preds(path: Path, names: list[str], P_out: dict, P_in: dict) -> None:
    arrays = {f"out|{s}|{f}|{o}": v for s, d in P_out.items() for (f, o), v in d.items()}
    arrays.update({f"in|{s}|{k}|{f}|{o}": v for (s, k), d in P_in.items() for (f, o), v in d.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, records=np.array(names), fingerprint=np.array(fit_fingerprint()), **arrays)
    kept = COMMITTED / path.name
    if kept.is_file() and _stored_fingerprint(kept) != fit_fingerprint():
        print(f"[fold predictions] new fits in {path}; the repository's {kept.name} is now stale: copy the new file over it "
              "and commit it, so fresh checkouts skip the fits", file=sys.stderr)


def load_preds(path: Path, names: list[str], seeds) -> tuple[dict, dict]:
    """The kept fold predictions of the fold seeds ``seeds`` (a list)."""
    z = np.load(path, allow_pickle=False)
    if list(z["records"]) != names:
        raise SystemExit(f"{path} holds other records: delete it or pass --refit")
    stored = str(z["fingerprint"]) if "fingerprint" in z.files else None
    if stored is not None and stored != fit_fingerprint():
        raise SystemExit(f"{path} was fitted by other code (fingerprint {stored}, now {fit_fingerprint()}): run bench/shift_nested.py "
                         "--refit with these fold seeds")
    if stored is None:
        print(f"[fold predictions] {path.name} carries no fingerprint (made before they were kept): trusted as it is",
              file=sys.stderr)
    P_out: dict = {s: {} for s in seeds}
    P_in: dict = {}
    for key in z.files:
        parts = key.split("|")
        if parts[0] == "out":
            P_out[int(parts[1])][parts[2], int(parts[3])] = z[key]
        elif parts[0] == "in":
            P_in.setdefault((int(parts[1]), int(parts[2])), {})[parts[3], int(parts[4])] = z[key]
    return P_out, P_in


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="fold seeds first-seed .. first-seed + seeds - 1 (a fresh set of folds)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "shift_nested.json"))
    ap.add_argument("--refit", action="store_true", help="refit even where the fold predictions are cached")
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    warnings.simplefilter("ignore", RuntimeWarning)

    records, _ = load_dataset(resolve_data_dir(args.data), progress=True)
    records = [r for r in records if r.label is not None]
    F = feature_matrices(records, cache_path(len(records)))
    T = np.array([r.alarm_type for r in records])
    y = np.array([int(r.label) for r in records])
    infos = [RecordInfo(r.name, r.alarm_type, int(r.label)) for r in records]
    n = len(y)
    t0 = time.perf_counter()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    outer = {s: cv_folds(infos, 5, seed=s) for s in seeds}
    inner = {}  # (s, k): inner fold id per record of the outer training part, -1 elsewhere
    for s in seeds:
        for k in range(5):
            tr = np.flatnonzero(outer[s] != k)
            f = np.full(n, -1)
            f[tr] = cv_folds([infos[i] for i in tr], INNER, seed=s)
            inner[s, k] = f
    pred_cache = preds_path(n, args.seeds, args.first_seed, restore=not args.refit)
    P_out, P_in = ({s: {} for s in seeds}, {})
    if pred_cache.is_file() and not args.refit:
        P_out, P_in = load_preds(pred_cache, [r.name for r in records], seeds)
    # a fit is (re)done when any shift it is scored at is missing from the cache
    todo = [part for part, shifts in PARTS if any((part, o) not in P_out[seeds[0]] for o in shifts)]
    if todo:
        F.update(shift_features(records, INC_SHIFTS, progress=True, cache=default_cache(n)))  # the longer reach (cached)
        new_out, new_in = fold_predictions(F, T, y, outer, inner, seeds, args.jobs, n, todo)
        for s, d in new_out.items():
            P_out[s].update(d)
        for key, d in new_in.items():
            P_in.setdefault(key, {}).update(d)
        save_preds(pred_cache, [r.name for r in records], P_out, P_in)
    cached = not todo
    cv_s = time.perf_counter() - t0

    per_seed: dict[str, list] = {}
    chosen: dict = {inside: [] for *_, inside, _ks in FAMILIES}
    for s in seeds:
        probs: dict[str, np.ndarray] = {SERVED: blend(P_out[s], 0, np.arange(n))}
        for k_row, by, max_k, fixed, inside, ks in FAMILIES:
            for K in ks:
                if k_row is None and K:
                    probs[f"shift 0..{K} s, raw"] = blend(P_out[s], K, np.arange(n))
                probs[fixed.format(K=K)] = np.zeros(n)
            probs[inside] = np.zeros(n)
        for k in range(5):
            tr, te = np.flatnonzero(outer[s] != k), np.flatnonzero(outer[s] == k)
            P_tr = {key: v[tr] for key, v in P_in[s, k].items()}
            for k_row, by, max_k, fixed, inside, ks in FAMILIES:
                K, maps, scores = choose(P_tr, y[tr], T[tr], inner[s, k][tr], k_row, by, max_k)
                for Kf in ks:
                    probs[fixed.format(K=Kf)][te] = maps[Kf].transform(blend(P_out[s], Kf, te, k_row))
                probs[inside][te] = maps[K].transform(blend(P_out[s], K, te, k_row))
                chosen[inside].append({"seed": s, "fold": k, "K": K, "map": maps[K].method,
                                          "inner_scores": {str(a): round(b, 2) for a, b in scores.items()}})
        for name, p in probs.items():
            per_seed.setdefault(name, []).append(_row(y, p, T))

    summary = summarize_rules(per_seed, SERVED, "minus_served")
    out = {"command": "bench/shift_nested.py " + " ".join(sys.argv[1:]), "records": n, "fold_seeds": args.seeds, "first_seed": args.first_seed,
           "model": "features-typed (TypedHeads, vote base) on batch and on incremental features; cut at 1/6",
           "protocol": f"nested, record-grouped: 5 outer folds per fold seed; per outer fold {INNER} inner folds of its "
                       "training part give the out-of-fold probabilities on which the calibration map (per K) and K are "
                       "chosen; the outer fit on the whole training part is scored on the outer test part",
           "chosen_K": {inside: dict(Counter(c["K"] for c in v)) for inside, v in chosen.items()},
           "chosen_map": {inside: dict(Counter(c["map"] for c in v)) for inside, v in chosen.items()},
           "cv_wall_s": round(cv_s, 1), "fold_predictions": f"{'read from' if cached else 'fitted, kept in'} {pred_cache.name}",
           "summary": summary, "per_fold": chosen, "per_seed": per_seed}
    Path(args.out).write_text(json.dumps(out, indent=1))
    _plot(out, Path(args.out).with_suffix(".png"))
    print_rules(summary, 42)
    for inside in chosen:
        print(f"{inside}: K chosen per outer fold {out['chosen_K'][inside]}; maps {out['chosen_map'][inside]}")
    print(f"wrote {args.out}")
    return 0


def _plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = out["summary"]
    names = list(summ)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
    paired_bars(a1, summ, out["fold_seeds"])
    a2.scatter([summ[m]["ece"]["mean"] for m in names], [summ[m]["score"]["mean"] for m in names])
    for m in names:
        a2.annotate(m.replace(" (map nested)", ""), (summ[m]["ece"]["mean"], summ[m]["score"]["mean"]), fontsize=6)
    a2.axvline(0.05, color="r", lw=0.8, label="ECE 0.05")
    a2.set_xlabel("ECE (10 bins)")
    a2.set_ylabel("challenge score")
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
