"""errors.raisable_copy: what a kept error is raised as (same type, message, attributes, cause)."""

from __future__ import annotations

import pytest

from quicsilver.errors import (
    ApplicationError,
    IdleTimeoutError,
    StreamError,
    TransportClosedError,
    TransportError,
    TransportErrorCode,
    raisable_copy,
)


@pytest.mark.parametrize(
    "error",
    [
        ApplicationError(0x10, "bye", remote=True),
        TransportError(TransportErrorCode.FLOW_CONTROL_ERROR, "too much"),
        StreamError(8, 3, remote=False),
        IdleTimeoutError("idle"),
        TransportClosedError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_copy_is_the_same_error_but_another_object(error: Exception) -> None:
    cause = ValueError("why")
    error.__cause__ = cause
    copy = raisable_copy(error)
    assert copy is not error and type(copy) is type(error)
    assert str(copy) == str(error) and copy.args == error.args
    assert copy.__dict__ == error.__dict__ and copy.__cause__ is cause
    with pytest.raises(type(error)) as info:
        raise copy
    assert error.__traceback__ is None  # raising the copy leaves the kept error untouched
    assert info.value is copy
