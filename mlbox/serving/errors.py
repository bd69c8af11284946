"""The scoring path's own failures, in mlbox's one error family.

Each carries the HTTP status the scoring routes answer with; `Overloaded`
and `NotReady` also say when to come back (``Retry-After``). The rule
between 400 and 422 is written once, in `mlbox.api.serving`: 400 when the
body cannot be read as a request, 422 (`InvalidContent`, `SchemaMismatch`,
`ModelFailed`) when it was read and what it holds cannot be scored.
"""

from __future__ import annotations

from mlbox.store.errors import InvalidInput, MlboxError, NotFound


class InvalidContent(InvalidInput):
    """A body that was read but holds values that cannot be scored (422).

    Tensors that contradict themselves (an unknown datatype, values not of
    their datatype, a value count that is not the shape's product, a negative
    dimension, ragged rows), or nothing to score. The body's syntax was fine,
    so a 400 would send the client looking for a framing bug that is not there.
    """

    http_status = 422


class Overloaded(MlboxError):
    """The model's queue is full: the caller should back off and retry."""

    http_status = 503

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, field=None)
        self.retry_after_s = retry_after_s


class NotReady(Overloaded):
    """The model is still loading (or failed to load and is being retried)."""


class InferenceTimeout(MlboxError):
    """No answer within the per-request timeout."""

    http_status = 504


class ModelFailed(MlboxError):
    """The model raised on inputs that passed its signature (a NaN it refuses, an unseen category).

    A 422, not a 500: the same inputs fail again, other inputs in the same
    batch were scored (a failing batch is retried request by request), and a
    client that retries 5xx must not retry this forever.
    """

    http_status = 422


class Retired(Exception):
    """Internal: the deployment was swapped out between lookup and submit; look it up again."""


class NotServed(NotFound):
    """A version (or a plain model name) no alias serves, asked for on an open route (404).

    Open routes score only what is already loaded; loading another version takes memory
    (and a GPU could be at stake), so it needs the API token (`mlbox.serving.ondemand`).
    """
