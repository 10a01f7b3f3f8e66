"""TIMESTAMPTZ values: ISO 8601 text on the wire, UTC microseconds since the epoch when stored.

Milvus 2.6 takes ISO 8601 strings (an offset or ``Z``; text without one is read in the
collection's ``timezone`` property, UTC by default), stores the absolute time, compares in UTC,
and returns ISO text (``2025-01-01T00:00:00Z`` in UTC, the offset form in another zone).
Filters write ``ISO '...'`` for a time and ``INTERVAL 'P1DT2H'`` for a duration. Like
``schema.py``, this module imports nothing from the package.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

# The collection property naming the zone of text without an offset (and of returned text).
TIMEZONE_PROPERTY = "timezone"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def zone(name: str | None) -> tzinfo:
    """The IANA zone ``name`` (UTC when empty); ValueError when it is not a zone."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"invalid timezone: {name}") from None


def parse_time(text: str, default_zone: tzinfo = UTC) -> int:
    """UTC microseconds of an ISO 8601 time; ValueError when ``text`` is not one."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise ValueError(f"invalid timestamptz value: {text!r}, expected an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_zone)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def parse_duration(text: str) -> int:
    """Microseconds of an ISO 8601 duration (weeks, days, hours, minutes, seconds)."""
    match = _DURATION.match(text.strip().upper())
    if match is None or text.strip().upper() in ("P", "PT"):
        raise ValueError(f"invalid interval: {text!r}, expected an ISO 8601 duration such as 'P1DT2H'")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return round(timedelta(**parts) / timedelta(microseconds=1))


def format_time(micros: int, out_zone: tzinfo = UTC) -> str:
    moment = (_EPOCH + timedelta(microseconds=micros)).astimezone(out_zone)
    spec = "microseconds" if moment.microsecond else "seconds"
    text = moment.isoformat(timespec=spec)
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def times_from_text(texts: pa.Array, default_zone: tzinfo = UTC) -> pa.Array:
    """A string column as int64 UTC microseconds (nulls stay null)."""
    return pa.array(
        [None if t is None else parse_time(t, default_zone) for t in texts.to_pylist()], pa.int64()
    )


def times_to_text(micros: pa.Array, out_zone: tzinfo = UTC) -> pa.Array:
    """An int64 microseconds column as ISO text (nulls stay null)."""
    return pa.array(
        [None if m is None else format_time(m, out_zone) for m in micros.to_pylist()], pa.string()
    )
