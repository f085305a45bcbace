"""The Lambda entry points the Terraform module deploys, each a few lines over the library.

They ship in the Lambda zip (``make package``), never in the wheel: a service installing
``dynamodb-outbox`` gets one top-level package, ``outbox``, and keeps the name ``worker`` for itself.

A function's cold start makes tens of thousands of objects that live as long as it does (modules,
classes, botocore's models and clients), and the garbage collector scanning them again and again
as they come is a good part of a first request (bench/RESULTS.md, "Cold start"). So in a Lambda
function's own process (Lambda sets ``AWS_LAMBDA_FUNCTION_NAME``; the tests and the local stack,
which share their process, do not) the collector waits until the first invocation has answered;
then what the cold start made is frozen (``gc.freeze``: kept, never scanned again, the few hundred
objects of garbage among them too) and the collector resumes.
"""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")

_PAUSED = "AWS_LAMBDA_FUNCTION_NAME" in os.environ and gc.isenabled()
if _PAUSED:
    gc.disable()


def entry_point(handler: Callable[_P, _R]) -> Callable[_P, _R]:
    """``handler`` as Lambda calls it: once its first invocation has answered, the collector resumes."""

    @functools.wraps(handler)
    def invoked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return handler(*args, **kwargs)
        finally:
            if _PAUSED and not gc.isenabled():  # the first invocation: an O(1) move, no collection
                gc.freeze()
                gc.enable()

    return invoked
