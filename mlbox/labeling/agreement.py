"""Inter-annotator agreement: Cohen's kappa, Fleiss' kappa, Krippendorff's alpha (nominal).

Pure functions over ``ratings``: one dict per task mapping annotator -> class.
Missing ratings are allowed (alpha handles them natively; kappa uses the tasks
both annotators rated; Fleiss uses the tasks with the most common number of
ratings, since it needs the same count per task). A statistic that is not
defined (fewer than two ratings, or one class only: no chance disagreement)
is None, never a made-up number.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

Ratings = Sequence[Mapping[str, str]]


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two annotators' paired labels."""
    if len(a) != len(b):
        raise ValueError("cohen_kappa needs paired labels")
    n = len(a)
    if n == 0:
        return None
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[c] * cb[c] for c in ca.keys() | cb.keys()) / (n * n)
    if pe == 1.0:
        return None
    return (po - pe) / (1 - pe)


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa of a tasks x categories matrix of counts (every row sums to the same n >= 2)."""
    rows = [list(r) for r in counts if sum(r) > 0]
    if not rows:
        return None
    n = sum(rows[0])
    if n < 2 or any(sum(r) != n for r in rows):
        raise ValueError("fleiss_kappa needs the same number (>= 2) of ratings per task")
    big_n = len(rows)
    k = len(rows[0])
    p_j = [sum(r[j] for r in rows) / (big_n * n) for j in range(k)]
    p_i = [(sum(x * x for x in r) - n) / (n * (n - 1)) for r in rows]
    p_bar = sum(p_i) / big_n
    pe = sum(p * p for p in p_j)
    if pe == 1.0:
        return None
    return (p_bar - pe) / (1 - pe)


def krippendorff_alpha(ratings: Ratings) -> float | None:
    """Krippendorff's alpha for nominal data; tasks with fewer than two ratings are not pairable."""
    coincide: dict[tuple[str, str], float] = defaultdict(float)
    for unit in ratings:
        values = list(unit.values())
        m = len(values)
        if m < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincide[(c, k)] += 1.0 / (m - 1)
    n_c: dict[str, float] = defaultdict(float)
    for (c, _k), w in coincide.items():
        n_c[c] += w
    n = sum(n_c.values())
    if n <= 1:
        return None
    observed = sum(w for (c, k), w in coincide.items() if c != k)
    expected = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k)
    if expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def fleiss_from_ratings(ratings: Ratings, classes: Sequence[str]) -> float | None:
    """Fleiss' kappa over the tasks that have the most common number (>= 2) of ratings."""
    sizes = Counter(len(u) for u in ratings if len(u) >= 2)
    if not sizes:
        return None
    n = max(sizes, key=lambda s: (sizes[s], s))
    index = {c: i for i, c in enumerate(classes)}
    counts = []
    for unit in ratings:
        if len(unit) != n:
            continue
        row = [0] * len(classes)
        for v in unit.values():
            row[index[v]] += 1
        counts.append(row)
    return fleiss_kappa(counts)


def pairwise_cohen(ratings: Ratings) -> dict[tuple[str, str], float | None]:
    """Cohen's kappa of every pair of annotators over the tasks both rated."""
    annotators = sorted({a for u in ratings for a in u})
    out: dict[tuple[str, str], float | None] = {}
    for x, y in combinations(annotators, 2):
        pairs = [(u[x], u[y]) for u in ratings if x in u and y in u]
        out[(x, y)] = cohen_kappa([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None
    return out


@dataclass(frozen=True)
class AgreementReport:
    tasks: int
    """Tasks with two ratings or more."""
    cohen: float | None
    """Mean of the pairwise Cohen's kappas."""
    fleiss: float | None
    alpha: float | None
    per_label: dict[str, dict[str, float | None]]
    """label -> {"fleiss", "alpha"} of that label against the rest."""
    per_annotator: dict[str, dict[str, float | None]]
    """annotator -> {"cohen" (mean with the others), "with_majority" (share agreeing with the majority), "tasks"}."""


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def report(ratings: Ratings, classes: Sequence[str]) -> AgreementReport:
    """Every statistic the service shows, overall, per label and per annotator."""
    multi = [u for u in ratings if len(u) >= 2]
    seen = sorted({v for u in multi for v in u.values()} - set(classes))
    classes = [*classes, *seen]
    pairs = pairwise_cohen(multi)
    per_label: dict[str, dict[str, float | None]] = {}
    for c in classes:
        binary = [{a: ("yes" if v == c else "no") for a, v in u.items()} for u in multi]
        per_label[c] = {
            "fleiss": fleiss_from_ratings(binary, ["yes", "no"]) if binary else None,
            "alpha": krippendorff_alpha(binary),
        }
    per_annotator: dict[str, dict[str, float | None]] = {}
    for a in sorted({a for u in multi for a in u}):
        mine = [k for (x, y), k in pairs.items() if a in (x, y)]
        agree = total = 0
        for u in multi:
            if a not in u:
                continue
            winner = majority(list(u.values()))
            if winner is not None:
                total += 1
                agree += u[a] == winner
        per_annotator[a] = {
            "cohen": _mean(mine),
            "with_majority": agree / total if total else None,
            "tasks": float(sum(a in u for u in multi)),
        }
    return AgreementReport(
        tasks=len(multi),
        cohen=_mean(list(pairs.values())),
        fleiss=fleiss_from_ratings(multi, classes) if multi else None,
        alpha=krippendorff_alpha(multi),
        per_label=per_label,
        per_annotator=per_annotator,
    )


def majority(values: Sequence[str]) -> str | None:
    """The most common value; None on a tie for first (a disagreement a reviewer settles)."""
    if not values:
        return None
    top = Counter(values).most_common()
    if len(top) > 1 and top[0][1] == top[1][1]:
        return None
    return top[0][0]
