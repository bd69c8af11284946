"""Pipelines: cached DAGs of steps run on the scheduler, schedules, file triggers, backfills and lineage."""
