"""`mlbox features` against a real home under tmp_path: apply, ls, materialize, get, history, delete.

The feature source is a small Parquet file written by `write_source` with
event times relative to now, so online reads (which judge the TTL against the
wall clock) see fresh values. Commands run through `mlbox.cli.main`, error
handling included; one case runs the console script as a subprocess.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
from pathlib import Path

import polars as pl
import pytest

from tests.helpers import MLBOX, ok, run_main

UTC = dt.UTC

DEFS = """\
entities:
  - name: customer
    join_keys: [customer_id]
feature_views:
  - name: stats
    entities: [customer]
    source: {parquet: stats.parquet}
    timestamp_field: event_timestamp
    created_timestamp_field: created
    ttl: 2d
    features:
      - {name: spend, dtype: float64}
      - visits: int64
"""


def base_time() -> dt.datetime:
    """A whole hour about a day ago: every row is inside the 2-day TTL, except the stale one."""
    return (dt.datetime.now(UTC) - dt.timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def write_source(folder: Path, t0: dt.datetime) -> Path:
    """Rows of customers 1, 2 and 7; customer 1 has a tie at t0+2h broken by ``created``
    (spend 3.5 created later wins over 3.0); customer 7's only row is 5 days old."""
    h = dt.timedelta(hours=1)
    frame = pl.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 7],
            "event_timestamp": [t0, t0 + 2 * h, t0 + 2 * h, t0 + h, t0 - dt.timedelta(days=5)],
            "created": [t0, t0 + 2 * h, t0 + 3 * h, t0 + h, t0 - dt.timedelta(days=5)],
            "spend": [1.0, 3.0, 3.5, 2.0, 9.0],
            "visits": [1, 2, 3, 4, 5],
        }
    )
    path = folder / "stats.parquet"
    frame.write_parquet(path)
    (folder / "defs.yaml").write_text(DEFS)
    return folder / "defs.yaml"


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one-line error of a refused command (exit code 2)."""
    code, out, err = run_main(capsys, *argv)
    assert code == 2, (out, err)
    assert err.startswith("mlbox: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def defs(home: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    return write_source(folder, base_time())


@pytest.fixture
def applied(capsys: pytest.CaptureFixture[str], defs: Path) -> Path:
    ok(capsys, "features", "apply", str(defs))
    return defs


def window(t0: dt.datetime) -> list[str]:
    return [
        "--start",
        (t0 - dt.timedelta(days=6)).isoformat(),
        "--end",
        (t0 + dt.timedelta(hours=4)).isoformat(),
    ]


def test_apply_then_ls_shows_entities_views_and_versions(
    capsys: pytest.CaptureFixture[str], defs: Path
) -> None:
    dry = ok(capsys, "features", "apply", str(defs), "--dry-run")
    assert "created" in dry and "dry run" in dry
    assert "no features yet" in ok(capsys, "features", "ls")  # the dry run wrote nothing
    out = ok(capsys, "features", "apply", str(defs))
    assert "customer" in out and "stats v1" in out
    assert "unchanged" in ok(capsys, "features", "apply", str(defs))
    listing = ok(capsys, "features", "ls")
    assert "customer" in listing and "customer_id" in listing
    line = next(x for x in listing.splitlines() if x.strip().startswith("stats"))
    assert "v1" in line and "2d" in line and "spend, visits" in line and "never materialized" in line
    # a changed definition is a new version; the old one stays listed
    defs.write_text(DEFS.replace("ttl: 2d", "ttl: 3d"))
    assert "stats v2" in ok(capsys, "features", "apply", str(defs))
    data = json.loads(ok(capsys, "features", "ls", "--json"))
    (view,) = data["views"]
    assert view["version"] == 2 and [v["version"] for v in view["versions"]] == [1, 2]
    assert data["entities"][0]["join_keys"] == ["customer_id"]


def test_materialize_then_get_online_values(capsys: pytest.CaptureFixture[str], applied: Path) -> None:
    t0 = base_time()
    code, out, err = run_main(capsys, "features", "materialize", *window(t0), "--chunk", "1d")
    assert code == 0, err
    assert "stats v1" in out and "rows" in out
    got = json.loads(
        ok(capsys, "features", "get", "stats:spend", "stats:visits", "--entity", "customer_id=1",
           "--entity", "customer_id=2", "--entity", "customer_id=3", "--entity", "customer_id=7", "--json")
    )  # fmt: skip
    assert got["customer_id"] == [1, 2, 3, 7]
    assert got["spend"] == [3.5, 2.0, None, None]  # tie broken by created; 3 unknown; 7 past the TTL
    assert got["visits"] == [3, 4, None, None]
    table = ok(capsys, "features", "get", "stats:spend", "--entity", "customer_id=1", "--with-event-time")
    header, row = table.splitlines()
    assert header.split()[:2] == ["customer_id", "spend"] and "spend__age_s" in header
    assert row.split()[:2] == ["1", "3.5"]
    listing = ok(capsys, "features", "ls")
    assert "never materialized" not in listing and "rows" in listing


def test_incremental_materialize_continues_where_the_last_stopped(
    capsys: pytest.CaptureFixture[str], applied: Path
) -> None:
    first = json.loads(ok(capsys, "features", "materialize", "--incremental", "--json"))
    assert [r["view"] for r in first] == ["stats"]
    again = json.loads(ok(capsys, "features", "materialize", "--incremental", "--view", "stats", "--json"))
    assert again[0]["start"] == pytest.approx(first[0]["end"])


def test_history_writes_a_point_in_time_training_set(
    capsys: pytest.CaptureFixture[str], applied: Path, tmp_path: Path
) -> None:
    t0 = base_time()
    h = dt.timedelta(hours=1)
    entity = tmp_path / "entity.parquet"
    pl.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2],
            "event_timestamp": [t0 + h, t0 + 2 * h, t0 - h, t0 + 3 * h, t0 + dt.timedelta(days=4)],
            "label": [0, 1, 0, 1, 1],
        }
    ).write_parquet(entity)
    out = tmp_path / "out" / "train.parquet"
    text = ok(capsys, "features", "history", str(entity), "stats:spend", "stats:visits", "-o", str(out),
              "--name", "churn")  # fmt: skip
    assert "training set" in text and "stats v1" in text
    frame = pl.read_parquet(out)
    assert frame.columns[:3] == ["customer_id", "event_timestamp", "label"]
    # at t0+1h the t0 row; at t0+2h the tie's later-created row; before any row: null;
    # customer 2 at t0+3h its t0+1h row; four days later it is past the TTL
    assert frame["spend"].to_list() == [1.0, 3.5, None, 2.0, None]
    record = json.loads(ok(capsys, "features", "history", str(entity), "stats:*", "-o", str(out), "--json"))
    assert record["row_count"] == 5 and record["views"][0]["name"] == "stats"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["features", "apply", "missing.yaml"], "does not exist"),
        (["features", "materialize"], "--start"),
        (["features", "materialize", "--start", "yesterday", "--end", "now"], "--start"),
        (["features", "materialize", "--start", "2024-01-02", "--end", "2024-01-01"], "--start"),
        (["features", "materialize", "--incremental", "--start", "2024-01-01"], "--start"),
        (["features", "materialize", "--incremental", "--chunk", "soon"], "--chunk"),
        (["features", "get", "stats:spend", "--entity", "customer_id"], "--entity"),
        (["features", "get", "stats:nope", "--entity", "customer_id=1"], "nope"),
        (["features", "get", "nope:spend", "--entity", "customer_id=1"], "nope"),
        (["features", "get", "stats:spend", "--entity", "wrong_key=1"], "customer_id"),
        (["features", "history", "no-such.parquet", "stats:spend", "-o", "x.parquet"], "ENTITY_FILE"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], applied: Path, argv: list[str], needle: str
) -> None:
    assert needle in fails(capsys, *argv)


def test_bad_definitions_name_the_problem(capsys: pytest.CaptureFixture[str], defs: Path) -> None:
    defs.write_text(DEFS.replace("timestamp_field: event_timestamp", "timestamp_field: when"))
    assert "when" in fails(capsys, "features", "apply", str(defs))
    defs.write_text(DEFS.replace("visits: int64", "visits: string"))
    assert "visits" in fails(capsys, "features", "apply", str(defs))
    defs.write_text("entities: [")
    assert "YAML" in fails(capsys, "features", "apply", str(defs))


def test_history_refuses_an_entity_file_without_its_time_column(
    capsys: pytest.CaptureFixture[str], applied: Path, tmp_path: Path
) -> None:
    entity = tmp_path / "entity.csv"
    entity.write_text("customer_id,ts\n1,2024-01-01T00:00:00\n")
    assert "event_timestamp" in fails(
        capsys, "features", "history", str(entity), "stats:spend", "-o", str(tmp_path / "o.parquet")
    )
    assert "--output" in fails(
        capsys, "features", "history", str(entity), "stats:spend", "-o", str(tmp_path / "o.txt")
    )


def test_console_script(applied: Path, subprocess_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [str(MLBOX), "features", "ls", "--json"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["views"][0]["name"] == "stats"
    bad = subprocess.run(
        [str(MLBOX), "features", "get", "stats:spend"], env=subprocess_env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "--entity" in bad.stderr
    assert (
        "Feature store"
        in subprocess.run(
            [str(MLBOX), "features", "--help"],
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )


# -- delete ---------------------------------------------------------------------------------------

ON_DEMAND = """\
on_demand_feature_views:
  - name: per_visit
    sources: [stats]
    features:
      - {name: ratio, dtype: float64, expression: spend / visits}
"""


def test_delete_asks_first_then_removes_the_view_and_its_online_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, applied: Path
) -> None:
    ok(capsys, "features", "materialize", *window(base_time()))
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out, err = run_main(capsys, "features", "delete", "stats")
    assert code == 1 and "nothing deleted" in err
    assert "delete feature view 'stats' (v1 kept for training-set lineage, 3 online rows removed)?" in err
    assert "stats" in ok(capsys, "features", "ls")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no answer at all (a script without --yes)
    code, _, err = run_main(capsys, "features", "delete", "stats")
    assert code == 1 and "pass --yes" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    out = ok(capsys, "features", "delete", "stats")
    assert out == "deleted feature view stats: v1 kept for training-set lineage, 3 online rows removed\n"
    assert not any(line.strip().startswith("stats") for line in ok(capsys, "features", "ls").splitlines())
    err = fails(capsys, "features", "get", "stats:spend", "--entity", "customer_id=1")
    assert "feature view 'stats' was deleted" in err
    assert "already deleted" in fails(capsys, "features", "delete", "stats", "--yes")
    # applying the same file brings it back at the same version
    applied_again = ok(capsys, "features", "apply", str(applied)).splitlines()
    assert ["restored", "feature_view", "stats", "v1"] in [line.split() for line in applied_again]


def test_delete_refusals_are_one_line_exit_2_before_any_question(
    capsys: pytest.CaptureFixture[str], applied: Path
) -> None:
    applied.write_text(DEFS + ON_DEMAND)
    ok(capsys, "features", "apply", str(applied))
    # refused before the prompt: no stdin is read (pytest's stdin raises when read)
    err = fails(capsys, "features", "delete", "stats")
    assert "cannot delete feature view 'stats': on-demand view 'per_visit' reads it" in err
    assert "cannot delete entity 'customer': feature view 'stats' uses it" in fails(
        capsys, "features", "delete", "customer", "--entity"
    )
    assert "no feature view named 'customer'" in fails(capsys, "features", "delete", "customer", "--yes")
    assert "no entity named 'stats'" in fails(capsys, "features", "delete", "stats", "--entity", "--yes")
    result = json.loads(ok(capsys, "features", "delete", "per_visit", "--yes", "--json"))
    assert result["kind"] == "feature_view" and result["versions"] == [1] and result["online_rows"] == 0
    ok(capsys, "features", "delete", "stats", "--yes")
    assert ok(capsys, "features", "delete", "customer", "--entity", "--yes") == "deleted entity customer\n"
    assert "no features yet" in ok(capsys, "features", "ls")


def test_materialize_draws_a_rich_bar_on_a_terminal_and_nothing_in_a_pipe(
    capsys: pytest.CaptureFixture[str], applied: Path, subprocess_env: dict[str, str]
) -> None:
    """One progress library everywhere: the bar is rich's (``━``, ``done/total chunks``) on a terminal's
    stderr, as ``mlbox predict``'s; a pipe gets no bar frames at all."""
    import os
    import pty

    argv = [str(MLBOX), "features", "materialize", *window(base_time()), "--chunk", "1d"]
    leader, follower = pty.openpty()
    env = {**subprocess_env, "TERM": "xterm", "COLUMNS": "120"}
    try:
        proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=follower, timeout=120)
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0, drawn
    text = drawn.decode(errors="replace")
    assert "stats v1" in text and "━" in text and "chunks" in text, text
    piped = subprocess.run(argv, env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr
    assert "stats v1" in piped.stdout
