"""Time zones as Azure ML names them: Windows names ("Pacific Standard Time"), as in
``azure.ai.ml.constants.TimeZone``, mapped to IANA zones through tzlocal's copy of the Unicode
CLDR ``windowsZones`` table (kept current by tzlocal's releases, so no table is kept here)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from shoal.constants import TimeZone  # built from the same table (TimeZone.PACIFIC_STANDARD_TIME, …)

UTC_NAME = "UTC"
__all__ = ["UTC_NAME", "TimeZone", "zone_info"]


def zone_info(name: str) -> ZoneInfo:
    """The zone of an Azure (Windows) time zone name, or of an IANA name (``Europe/Paris``)."""
    text = str(getattr(name, "value", name) or UTC_NAME).strip()
    iana = win_tz.get(text) or next((v for k, v in win_tz.items() if k.lower() == text.lower()), None)
    try:
        return ZoneInfo(iana or text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {text!r}: give a Windows time zone name as Azure ML does "
            "(for example 'UTC', 'Pacific Standard Time', 'W. Europe Standard Time') or an IANA name"
        ) from None
