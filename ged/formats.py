"""French formats for everything a person reads (pages and e-mails): numbers,
amounts, dates and sizes, written by Babel's CLDR data for ``fr_FR``, never by
hand. « 1 000,00 € », « 15 mars 2026 », « 15/03/2026 », « 1,2 Mo »."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from babel.dates import format_date as _babel_date, format_datetime as _babel_datetime
from babel.numbers import format_currency, format_decimal

LOCALE = "fr_FR"
TIMEZONE = "Europe/Paris"
# Sizes in the French units (octet): 1 Ko = 1 000 octets, as Windows Explorer's French
# UI and macOS's Finder show them.
_UNITS = ("o", "Ko", "Mo", "Go", "To")


def _paris(value: dt.datetime) -> dt.datetime:
    from zoneinfo import ZoneInfo

    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(ZoneInfo(TIMEZONE))


def _as_date(value) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return _paris(value).date()
    return value


def number(value, digits: int | None = None) -> str:
    """« 1 234 » or, with ``digits``, « 1 234,50 »."""
    if value is None or value == "":
        return "—"
    fmt = None if digits is None else "#,##0." + "0" * digits if digits else "#,##0"
    return format_decimal(value, format=fmt, locale=LOCALE)


def money(value, currency: str | None = "EUR") -> str:
    """« 1 000,00 € »; a value that is not a number is shown as given."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    return format_currency(amount, (currency or "EUR").upper()[:3], locale=LOCALE)


def date_long(value) -> str:
    """« 15 mars 2026 » (a time is read in Paris time); text that is no date is shown as is."""
    day = _as_date(value)
    if day is None:
        return str(value) if value not in (None, "") else "—"
    return _babel_date(day, format="long", locale=LOCALE)


def date_short(value) -> str:
    """« 15/03/2026 »."""
    day = _as_date(value)
    if day is None:
        return str(value) if value not in (None, "") else "—"
    return _babel_date(day, format="dd/MM/yyyy", locale=LOCALE)


def datetime_short(value) -> str:
    """« 15/03/2026 14:05 » in Paris time."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        return date_short(value)
    return _babel_datetime(_paris(value), format="dd/MM/yyyy HH:mm", locale=LOCALE)


def datetime_long(value) -> str:
    """« 15 mars 2026 à 14:05 » in Paris time."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return (_babel_date(_paris(value).date(), format="long", locale=LOCALE) + " à "
            + _babel_datetime(_paris(value), format="HH:mm", locale=LOCALE))


def size(value) -> str:
    """« 1,2 Mo », « 830 o »: one decimal above a kilo-octet, French separators."""
    if value is None or value == "":
        return "—"
    amount = float(value)
    unit = 0
    while amount >= 1000 and unit < len(_UNITS) - 1:
        amount /= 1000
        unit += 1
    if unit == 0:
        return f"{format_decimal(int(amount), locale=LOCALE)} {_UNITS[0]}"
    return f"{format_decimal(round(amount, 1), format='#,##0.#', locale=LOCALE)} {_UNITS[unit]}"


def plural(count: int, one: str, many: str) -> str:
    """« 1 document », « 1 200 documents »."""
    return f"{number(count)} {one if count in (0, 1) else many}"


FILTERS = {
    "number_fr": number,
    "money_fr": money,
    "date_fr": date_long,
    "date_short_fr": date_short,
    "datetime_fr": datetime_short,
    "datetime_long_fr": datetime_long,
    "size_fr": size,
}
