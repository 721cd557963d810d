"""Calendar arithmetic for due dates: calendar-day and business-day (WORKDAY) offsets."""

from __future__ import annotations

from collections.abc import Container
from datetime import date, timedelta
from functools import lru_cache

from runtime.model import BusinessCalendar


@lru_cache(maxsize=64)
def _holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    import holidays  # imported only by definitions with a business calendar

    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=[year]).keys())


class Holidays(Container[date]):
    """The public holidays of a business calendar, looked up per year and cached."""

    def __init__(self, calendar: BusinessCalendar | None) -> None:
        self.calendar = calendar
        self._years: dict[int, frozenset[date]] = {}

    def __contains__(self, day: object) -> bool:
        if self.calendar is None or not isinstance(day, date):
            return False
        year = self._years.get(day.year)
        if year is None:
            year = self._years[day.year] = _holidays(
                self.calendar.country, self.calendar.subdivision, day.year)
        return day in year


def check_calendar(calendar: BusinessCalendar) -> str | None:
    """None if the calendar is known to the holidays package, else what is wrong."""
    import holidays

    supported = holidays.list_supported_countries()
    if calendar.country not in supported:
        return (f"country {calendar.country!r} is not known to the holidays package "
                "(use ISO 3166 alpha-2, e.g. US)")
    if calendar.subdivision is not None and calendar.subdivision not in supported[calendar.country]:
        return (f"subdivision {calendar.subdivision!r} of {calendar.country} is not known to the "
                f"holidays package (e.g. {', '.join(supported[calendar.country][:5])})")
    return None


def is_business_day(day: date, holidays: Container[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_business_days(anchor: date, n: int, holidays: Container[date] = frozenset()) -> date:
    """Like a spreadsheet's WORKDAY: the anchor is not counted; n != 0 always lands on a business
    day; 0 is the anchor itself (even on a weekend)."""
    step = 1 if n > 0 else -1
    day = anchor
    remaining = abs(n)
    while remaining:
        day += timedelta(days=step)
        if is_business_day(day, holidays):
            remaining -= 1
    return day


def due_date(
    anchor: date,
    *,
    offset_days: int | None,
    offset_business_days: int | None,
    holidays: Container[date] = frozenset(),
) -> date:
    if offset_business_days is not None:
        return add_business_days(anchor, offset_business_days, holidays)
    return anchor + timedelta(days=offset_days or 0)
