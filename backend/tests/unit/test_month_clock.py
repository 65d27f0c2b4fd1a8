"""MonthClock (cached month tag / seconds to next month) agrees with the datetime versions,
including across a month and a year boundary."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nova.limits import plan
from nova.limits.plan import MonthClock, month_tag, seconds_to_next_month


@pytest.mark.parametrize(
    "moments",
    [
        [datetime(2026, 11, 30, 23, 59, 58, tzinfo=UTC), datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)],
        [datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC)],
    ],
)
def test_month_clock_matches_datetime_math(moments: list[datetime], monkeypatch: pytest.MonkeyPatch) -> None:
    clock = MonthClock()
    for moment in moments:
        monkeypatch.setattr(plan.time, "time", moment.timestamp)
        assert clock.read() == (month_tag(moment), seconds_to_next_month(moment))
