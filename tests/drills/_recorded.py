"""A drill run once with its raw runs kept beside its figures, for tests that check both."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from sendguard.drills import Drill, DrillResult, Value

R = TypeVar("R")


class RecordedDrill(Generic[R]):
    """`drill` run at `scale`, its replay split in two: `run` makes one run's record
    (kept in `runs`, by ``guarded``), `figures` turns it into the table's values."""

    def __init__(
        self,
        drill: Drill,
        run: Callable[..., R],
        figures: Callable[[R], Mapping[str, Value]],
        scale: float,
    ) -> None:
        self.runs: dict[bool, R] = {}

        def recording(*, guarded: bool, scale: float) -> Mapping[str, Value]:
            self.runs[guarded] = record = run(guarded=guarded, scale=scale)
            return figures(record)

        self.result: DrillResult = dataclasses.replace(drill, replay=recording).run(scale)
