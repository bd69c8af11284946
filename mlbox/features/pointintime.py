"""The point-in-time join as a streaming "bucket join": numpy only, no I/O.

The question, per entity row ``(key, t)``: which source row of the same key has
the greatest ``(event, created)`` with ``event <= t`` (NULL created sorts
first), and is its event within the TTL (``event >= t - ttl``)?

Why buckets. Sort the entity rows by ``(slot, t)`` (a slot is a dense number
for a key). A source row ``(slot, ev)`` can only answer entity rows of its slot
with ``t >= ev``; call the first of them, ``j``, its *bucket*. Every row in
bucket ``j`` is newer than ``t[j-1]``, so newer than every row of an earlier
bucket of the slot: the answer for entity row ``j`` is the best row of the
nearest non-empty bucket at or before ``j`` in its slot. So one pass over the
source that keeps, per bucket, only its best row so far (event, then created)
answers every entity row, with memory O(entity rows) whatever the source's
size and order: batches can come in any number, any order, any size.

Per batch (`BucketJoin.merge`): drop rows that cannot matter (no entity row of
their key, an event after the slot's newest entity time, or older than the
slot's oldest entity time minus the TTL), find each row's bucket with a
branchless binary search over its slot's entity times (every row steps in
lock-step, so numpy runs it as a few vector passes; sorting the batch first
costs more than it saves),
and fold the rows into the per-bucket best with ``np.maximum.at`` (event
first, then created among the rows that hold the top event). It returns the
rows that became a bucket's best; the caller keeps their feature values, so
payload columns of any type never enter this module. `BucketJoin.finish`
forward-fills the buckets within each slot, applies the TTL and maps back to
input order. `latest` compacts the caller's kept values (last one per bucket).
"""

from __future__ import annotations

import numpy as np

MIN = np.iinfo(np.int64).min  # the created time of a row whose created is NULL: it loses every tie
MAX = np.iinfo(np.int64).max


def _saturating_sub(values: np.ndarray, amount: int) -> np.ndarray:
    """``values - amount`` that stops at int64's minimum instead of wrapping."""
    return np.maximum(values, MIN + amount) - amount


def sort_order(slots: np.ndarray, times: np.ndarray, n_slots: int) -> np.ndarray:
    """The permutation sorting rows by ``(slot, time)``.

    One argsort on ``slot * span + (time - tmin)`` when that fits in int64
    (about three times faster than a two-key lexsort); otherwise, e.g. for
    timestamps spread over centuries with many keys, the lexsort.
    """
    if slots.size == 0:
        return np.zeros(0, dtype=np.int64)
    tmin, tmax = int(times.min()), int(times.max())
    span = tmax - tmin + 1
    if n_slots * span < 2**63:
        return np.argsort(slots * span + (times - tmin))
    return np.lexsort((times, slots))


class BucketJoin:
    """The entity side of one view's join, and each bucket's best source row so far.

    ``slots``: per entity row (input order), its key's slot in ``[0, n_slots)``,
    or -1 for a row that matches nothing (a NULL key or time). ``times``: the
    rows' times in epoch microseconds. Source rows are later given slots in
    ``[0, n_slots]``, ``n_slots`` meaning "a key no entity row has".
    """

    def __init__(self, slots: np.ndarray, times: np.ndarray, n_slots: int, ttl_us: int | None) -> None:
        slots = np.asarray(slots, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        self.n_rows = slots.size
        self.ttl_us = ttl_us
        rows = np.flatnonzero(slots >= 0)
        s, t = (slots, times) if rows.size == slots.size else (slots[rows], times[rows])
        order = sort_order(s, t, n_slots)
        self.order = order if rows.size == slots.size else rows[order]  # sorted position -> input row
        self.t = t[order]
        sorted_slots = s[order]
        counts = np.bincount(sorted_slots, minlength=n_slots + 1).astype(np.int64)
        self.slot_lo = np.cumsum(counts) - counts
        self.slot_len = counts
        used = counts > 0
        # Bounds that drop useless source rows before any search: MIN/MAX make an
        # unused slot (and the "unknown key" slot n_slots) reject every row.
        self.slot_last = np.full(n_slots + 1, MIN, dtype=np.int64)
        self.slot_last[used] = self.t[self.slot_lo[used] + counts[used] - 1]
        self.slot_floor = np.full(n_slots + 1, MAX, dtype=np.int64)
        if ttl_us is None:
            self.slot_floor[used] = MIN
        else:  # a row older than every entity time of its slot minus the TTL is nulled for all
            self.slot_floor[used] = _saturating_sub(self.t[self.slot_lo[used]], ttl_us)
        self.seg_start = self.slot_lo[sorted_slots]
        self.steps = int(max(int(counts.max()) - 1, 0)).bit_length() if counts.size else 0
        self.best_ev = np.full(self.t.size, MIN, dtype=np.int64)
        self.best_cr = np.full(self.t.size, MIN, dtype=np.int64)
        # Entity times padded with MAX, so a search probe past the end needs no clipping.
        self._t_padded = np.concatenate([self.t, np.full(1 << self.steps, MAX, dtype=np.int64)])

    @property
    def size(self) -> int:
        """The number of buckets (entity rows that can match)."""
        return int(self.t.size)

    def buckets_of(self, slots: np.ndarray, ev: np.ndarray) -> np.ndarray:
        """Each row's bucket: the first entity position of its slot with ``t >= ev``.

        Assumes ``ev <= slot_last[slot]`` (so the bucket exists). A branchless
        binary search in which every row takes the same ``steps`` halvings of its
        slot's range, so each step is a handful of whole-array numpy operations.
        (Measured: as fast as searching a combined ``slot * span + t`` key, which
        needs an int64-overflow fallback, or skipping rows whose slot has one
        entity row; the gathers' memory latency is the cost, not the passes.)
        """
        pos = self.slot_lo[slots]
        if self.steps == 0:
            return pos
        last = pos + self.slot_len[slots] - 1  # the answer lies in [pos, last]
        below = pos - 1  # the last position known to have t < ev
        t = self._t_padded
        for k in range(self.steps - 1, -1, -1):
            probe = below + (1 << k)
            take = probe < last  # never into the next slot's entity rows
            take &= t[probe] < ev
            np.add(below, 1 << k, out=below, where=take)
        return below + 1

    def merge(self, slots: np.ndarray, ev: np.ndarray, cr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold a batch of source rows into the buckets' best rows.

        ``slots`` in ``[0, n_slots]``, ``ev`` event times and ``cr`` created
        times (``MIN`` for NULL) in epoch microseconds, no NULL events. Returns
        ``(rows, buckets)``: the batch rows, in increasing order, that are now
        their bucket's best (a full tie with the previous best may replace it:
        either answer is right), for the caller to keep their feature values. A
        bucket can appear more than once (full ties within the batch); `latest`
        keeps the last.
        """
        bound = self.slot_last[slots]
        ok = ev <= bound
        np.take(self.slot_floor, slots, out=bound)  # one batch-sized temporary, not two
        ok &= ev >= bound
        del bound
        rows = np.flatnonzero(ok)
        if rows.size == 0:
            return rows, rows
        ev, cr = ev[rows], cr[rows]
        p = self.buckets_of(slots[rows], ev)
        old = self.best_ev[p]
        cand = np.flatnonzero(ev >= old)  # a row older than its bucket's best cannot win
        if cand.size < p.size:
            p, ev, cr, old = p[cand], ev[cand], cr[cand], old[cand]
        np.maximum.at(self.best_ev, p, ev)
        new = self.best_ev[p]
        top = ev == new
        # A bucket whose best event rose in this batch forgets the old best's created time.
        self.best_cr[p[top & (old < new)]] = MIN
        np.maximum.at(self.best_cr, p[top], cr[top])
        win = np.flatnonzero(top & (cr == self.best_cr[p]))
        return rows[cand[win]], p[win]

    def finish(self) -> np.ndarray:
        """Per entity row in input order: the bucket whose best row answers it, or -1.

        The nearest non-empty bucket at or before the row within its slot
        (forward fill, reset at each slot's first row), nulled when that row's
        event is older than ``t - ttl``.
        """
        m = self.t.size
        filled = np.where(self.best_ev > MIN, np.arange(m, dtype=np.int64), -1)
        np.maximum.accumulate(filled, out=filled)
        found = filled >= self.seg_start
        src = np.maximum(filled, 0)
        if self.ttl_us is not None:
            found &= self.best_ev[src] >= _saturating_sub(self.t, self.ttl_us)
        out = np.full(self.n_rows, -1, dtype=np.int64)
        out[self.order] = np.where(found, src, -1)
        return out


def latest(buckets: np.ndarray, n_buckets: int) -> np.ndarray:
    """Indices into ``buckets`` of the last entry of each bucket, in increasing order.

    The caller appends each batch's winners in batch order, so the last entry
    of a bucket is its current best (``np.maximum.at`` makes "last" defined
    even with repeated buckets, which plain fancy assignment does not).
    """
    last = np.full(n_buckets, -1, dtype=np.int64)
    np.maximum.at(last, buckets, np.arange(buckets.size, dtype=np.int64))
    return last[last >= 0]


DENSE_LIMIT = 2**62  # keys within +-2^62: ``key - kmin`` never wraps into [0, n_slots)


def dense_range(keys: np.ndarray, n_rows: int) -> tuple[int, int] | None:
    """``(kmin, n_slots)`` when single integer keys can index a table directly.

    A table lookup is about four times cheaper than a hash join per source row,
    but costs memory per slot: allowed when the key range is at most twice the
    entity rows (or 65,536), so it stays O(entity rows). None otherwise.
    """
    if keys.size == 0:
        return None
    kmin, kmax = int(keys.min()), int(keys.max())
    n_slots = kmax - kmin + 1
    if kmin <= -DENSE_LIMIT or kmax >= DENSE_LIMIT or n_slots > max(2 * n_rows, 65_536):
        return None
    return kmin, n_slots


def dense_slots(keys: np.ndarray, kmin: int, n_slots: int, *, overwrite: bool = False) -> np.ndarray:
    """Slots of integer keys under a dense table ``slot = key - kmin`` (from
    `dense_range`); a key out of range gets ``n_slots`` (unknown). Seen as
    unsigned, "below kmin" is huge, so one ``minimum`` clamps both sides.
    ``overwrite`` reuses ``keys`` (int64, writable) for the result: one
    batch-sized allocation less, whose fresh pages would each cost a fault."""
    keys = np.asarray(keys, dtype=np.int64)
    off = (np.subtract(keys, kmin, out=keys) if overwrite else keys - kmin).view(np.uint64)
    np.minimum(off, np.uint64(n_slots), out=off)
    return off.view(np.int64)
