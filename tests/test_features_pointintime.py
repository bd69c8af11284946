"""The bucket-join kernel (`mlbox.features.pointintime`) against a brute-force reference.

Pure numpy, no files: random entity rows and source rows (ties on event time
with different created times, NULL created, full ties, keys no entity row has,
rows older than the TTL or newer than every entity row, duplicate entity rows),
fed in random batches. The public API is checked against brute force in
``test_features_offline.py``; this file covers the kernel's own paths (the
entity sort and its int64-overflow fallback, the search, batching, compaction).
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mlbox.features import pointintime as pit

NULL = None

Source = list[tuple[int, int, int | None]]  # (slot, event, created or NULL)


def reference(entities: list[tuple[int, int]], source: Source, ttl: int | None) -> list[tuple | None]:
    """Per entity row: (slot, event, created) of the newest source row of its slot at or
    before its time (ties: the greatest created, NULL lowest), None when there is none,
    when its slot is -1, or when that row is older than ``t - ttl``."""
    out: list[tuple | None] = []
    for slot, t in entities:
        cands = [r for r in source if slot >= 0 and r[0] == slot and r[1] <= t]
        if not cands:
            out.append(None)
            continue
        best = max(cands, key=lambda r: (r[1], pit.MIN if r[2] is None else r[2]))
        out.append(None if ttl is not None and best[1] < t - ttl else best)
    return out


def run_kernel(
    entities: list[tuple[int, int]], n_slots: int, source: Source, ttl: int | None, cuts: list[int]
) -> tuple[list[tuple | None], pit.BucketJoin]:
    """The kernel's answer, the source fed in batches split at ``cuts``, values kept the
    way `viewjoin` keeps them: appended per batch, the last per bucket wins."""
    join = pit.BucketJoin(
        np.array([e[0] for e in entities], dtype=np.int64),
        np.array([e[1] for e in entities], dtype=np.int64),
        n_slots,
        ttl,
    )
    kept_buckets, kept_rows = [], []
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(source)), len(source)]
    for lo, hi in itertools.pairwise(bounds):
        part = source[lo:hi]
        rows, buckets = join.merge(
            np.array([r[0] for r in part], dtype=np.int64),
            np.array([r[1] for r in part], dtype=np.int64),
            np.array([pit.MIN if r[2] is None else r[2] for r in part], dtype=np.int64),
        )
        assert rows.size == buckets.size and (np.diff(rows) > 0).all()  # increasing, as promised
        kept_buckets.append(buckets)
        kept_rows.append(rows + lo)
    buckets = np.concatenate(kept_buckets) if kept_buckets else np.zeros(0, dtype=np.int64)
    rows = np.concatenate(kept_rows) if kept_rows else np.zeros(0, dtype=np.int64)
    keep = pit.latest(buckets, join.size)
    assert len(set(buckets[keep].tolist())) == keep.size  # one value per bucket
    owner = np.full(join.size, -1)
    owner[buckets[keep]] = rows[keep]
    answer = join.finish()
    assert answer.shape == (len(entities),)
    out: list[tuple | None] = []
    for bucket in answer.tolist():
        if bucket < 0:
            out.append(None)
        else:
            assert owner[bucket] >= 0, "a bucket that answers a row must have kept a value"
            out.append(source[owner[bucket]])
    return out, join


@st.composite
def cases(draw: st.DrawFn) -> tuple:
    n_slots = draw(st.integers(1, 9))
    entities = draw(
        st.lists(st.tuples(st.integers(-1, n_slots - 1), st.integers(0, 30)), min_size=0, max_size=25)
    )
    source = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_slots),  # n_slots: a key no entity row has
                st.integers(-5, 35),  # before every entity row, after every one, in between
                st.one_of(st.none(), st.integers(0, 4)),  # few values: ties, full ties, NULL
            ),
            max_size=60,
        )
    )
    if entities and source:  # aim some source rows exactly at entity times (the <= edge)
        aimed = st.tuples(st.sampled_from(entities), st.one_of(st.none(), st.integers(0, 4)))
        source += [(max(e[0], 0), e[1], c) for e, c in draw(st.lists(aimed, max_size=15))]
        source = draw(st.permutations(source))  # late rows: any order
    ttl = draw(st.one_of(st.none(), st.integers(0, 12)))
    cuts = draw(st.lists(st.integers(0, len(source)), max_size=8))
    # Times far apart (x 2^56, 2^57) make slot * span overflow int64 from 2 to 5 slots on,
    # which sends the entity sort to its lexsort fallback; offsets far from 0 test wrapping.
    scale, offset = draw(st.sampled_from([(1, 0), (1, -(2**61)), (1, 2**60), (2**57, 0), (2**56, -(2**61))]))
    return n_slots, entities, source, ttl, cuts, scale, offset


def rescale(case: tuple) -> tuple:
    n_slots, entities, source, ttl, cuts, scale, offset = case
    entities = [(s, offset + scale * t) for s, t in entities]
    source = [(s, offset + scale * ev, c) for s, ev, c in source]
    return n_slots, entities, source, None if ttl is None else ttl * scale, cuts


class TestBucketJoin:
    @settings(max_examples=400, deadline=None)
    @given(case=cases())
    def test_matches_brute_force_in_any_batches(self, case: tuple) -> None:
        n_slots, entities, source, ttl, cuts = rescale(case)
        got, _ = run_kernel(entities, n_slots, source, ttl, cuts)
        times = [t for _, t in entities]
        wide = bool(times) and n_slots * (max(times) - min(times) + 1) >= 2**63
        event("entity sort: lexsort (slot x span past int64)" if wide else "entity sort: one argsort")
        assert got == reference(entities, source, ttl)
        one_batch, _ = run_kernel(entities, n_slots, source, ttl, [])
        assert one_batch == got  # (slot, event, created) equal: full ties may pick either row

    def test_example_at_two_time_scales(self) -> None:
        """Ties on event time broken by created (NULL lowest), the TTL, a duplicate entity
        row, a key no entity row has; at 2^58 times the entity sort falls back to lexsort."""
        entities = [(0, 10), (0, 20), (0, 30), (1, 5), (1, 25), (0, 20)]
        source: Source = [(0, 12, 1), (0, 20, NULL), (0, 20, 0), (0, 3, 9), (1, 25, 2), (1, 26, 3), (2, 1, 1)]
        for scale in (1, 2**58):
            ents = [(s, scale * t) for s, t in entities]
            src = [(s, scale * ev, c) for s, ev, c in source]
            got, _ = run_kernel(ents, 2, src, 15 * scale, [3])
            assert got == reference(ents, src, 15 * scale)
            assert [g and g[1] // scale for g in got] == [3, 20, 20, None, 25, 20]
            assert got[1] == (0, 20 * scale, 0)  # created 0 beats NULL on the event tie

    def test_search_stays_inside_its_slot(self) -> None:
        """A short slot next to a longer one with earlier times: the search must not
        walk into the neighbour's entity rows."""
        entities = [(0, 10), (1, 1), (1, 2), (1, 3), (1, 4), (1, 5)]
        got, _ = run_kernel(entities, 2, [(0, 5, NULL), (1, 2, 1)], None, [])
        assert got == [(0, 5, None), None, (1, 2, 1), (1, 2, 1), (1, 2, 1), (1, 2, 1)]

    def test_extreme_times(self) -> None:
        """Events near int64's ends, and a TTL that reaches past them (saturating bounds)."""
        entities = [(0, 2**62), (0, 2**62 + 10), (0, 2**62 + 20)]
        source: Source = [(0, pit.MIN + 1, NULL), (0, 2**62 + 5, NULL), (0, pit.MAX, 3)]
        got, _ = run_kernel(entities, 1, source, None, [])
        assert got == [(0, pit.MIN + 1, None), (0, 2**62 + 5, None), (0, 2**62 + 5, None)]
        got, _ = run_kernel(entities, 1, source, 2**62, [1])
        assert got == [None, (0, 2**62 + 5, None), (0, 2**62 + 5, None)]
        early = [(0, pit.MIN + 10)]  # t - ttl would wrap around to a huge time
        assert run_kernel(early, 1, [(0, pit.MIN + 1, NULL)], 100, [])[0] == [(0, pit.MIN + 1, None)]

    def test_ttl_edges_and_rows_older_than_every_entity_row(self) -> None:
        entities = [(0, 100), (0, 200), (1, 50)]
        source: Source = [(0, 90, NULL), (0, 100, NULL), (0, 150, NULL), (1, -1000, NULL)]
        got, _ = run_kernel(entities, 2, source, 50, [])
        assert got == [(0, 100, None), (0, 150, None), None]  # 150 is exactly t - ttl: kept
        got, _ = run_kernel(entities, 2, source, None, [1, 2])
        assert got == [(0, 100, None), (0, 150, None), (1, -1000, None)]

    def test_no_entity_rows_and_no_source(self) -> None:
        assert run_kernel([], 1, [(0, 1, NULL)], None, [])[0] == []
        assert run_kernel([(0, 1), (-1, 2)], 1, [], 3, [])[0] == [None, None]
        join = pit.BucketJoin(np.array([-1, -1]), np.array([0, 0]), 0, None)
        assert join.size == 0 and join.finish().tolist() == [-1, -1]


class TestSortOrder:
    @settings(max_examples=150, deadline=None)
    @given(
        rows=st.lists(st.tuples(st.integers(0, 6), st.integers(-(2**62), 2**62)), max_size=30),
    )
    def test_sorts_by_slot_then_time_even_past_int64(self, rows: list[tuple[int, int]]) -> None:
        slots = np.array([r[0] for r in rows], dtype=np.int64)
        times = np.array([r[1] for r in rows], dtype=np.int64)
        order = pit.sort_order(slots, times, 7)  # spans near 2^63: the lexsort fallback
        assert sorted(order.tolist()) == list(range(len(rows)))
        assert [rows[i] for i in order] == sorted(rows)


class TestDenseSlots:
    @settings(max_examples=200, deadline=None)
    @given(
        base=st.sampled_from([0, -(2**62) + 1, 2**62 - 100, 5]),
        entity=st.lists(st.integers(0, 60), min_size=1, max_size=20),
        probes=st.lists(
            st.one_of(
                st.integers(-5, 70),
                st.sampled_from([pit.MIN, pit.MAX, pit.MIN + 1, -(2**62), 2**62, 2**63 - 2**62]),
            ),
            max_size=20,
        ),
    )
    def test_maps_in_range_keys_and_nothing_else(
        self, base: int, entity: list[int], probes: list[int]
    ) -> None:
        keys = np.array([base + k for k in entity], dtype=np.int64)
        dense = pit.dense_range(keys, keys.size)
        assert dense is not None
        kmin, n_slots = dense
        source = [base + p if -5 <= p <= 70 else p for p in probes]
        expected = [k - kmin if kmin <= k < kmin + n_slots else n_slots for k in source]
        keys = np.array(source, dtype=np.int64)
        assert pit.dense_slots(keys, kmin, n_slots).tolist() == expected
        assert keys.tolist() == source  # left alone unless told
        assert pit.dense_slots(keys, kmin, n_slots, overwrite=True).tolist() == expected

    def test_wide_or_extreme_ranges_are_refused(self) -> None:
        assert pit.dense_range(np.array([0, 10**9]), 10) is None  # sparse: a hash join instead
        assert pit.dense_range(np.array([2**62, 2**62 + 1]), 10) is None  # could wrap
        assert pit.dense_range(np.array([], dtype=np.int64), 0) is None
        assert pit.dense_range(np.array([7, 7, 9]), 3) == (7, 3)


def test_latest_keeps_the_last_entry_per_bucket() -> None:
    buckets = np.array([3, 1, 3, 0, 1, 3])
    keep = pit.latest(buckets, 5)
    assert keep.tolist() == [3, 4, 5]  # bucket 0 at 3, bucket 1 at 4, bucket 3 at 5
