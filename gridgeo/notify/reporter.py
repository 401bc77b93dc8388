"""Feedback to the reporter (双反馈): a reporter who left a mobile number and agreed
(``notify_reporter``) is told, by SMS through the county's gateway, when their event is
closed (here, or by the county platform) or not accepted (rejected, or merged into another
report, whose closure they are then told of too).

The gateway is an apprise URL template with ``{phone}`` (``GRIDGEO_REPORTER_CHANNEL``,
e.g. ``json://sms.gateway.internal/send?:to={phone}``), filled at the moment of sending
with the number read from the event: the number is in no outbox row, no delivery, no
error text and no log line (apprise and urllib3 log URLs and bodies at DEBUG; their
records pass :class:`MaskPhones`).
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import and_, or_, select

from gridgeo.errors import InvalidEvent
from gridgeo.store import Store, schema
from gridgeo.timezone import CHINA

__all__ = ["REPORTER_TYPES", "MaskPhones", "mobile_number", "message", "reporters_told", "tell_reporter"]

#: The event types a consenting reporter is told of.
REPORTER_TYPES = frozenset({"event.closed", "event.rejected", "event.merge"})
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_SEPARATORS = re.compile(r"[\s\-()（）]")
#: A mainland mobile number anywhere in a text (what the log filter masks).
_ANY_MOBILE = re.compile(r"1[3-9]\d{9}")


def mobile_number(phone: str | None) -> str:
    """The 11 digits of a mainland mobile number (spaces, dashes and a +86 / 0086 prefix
    taken off), or :class:`InvalidEvent` saying why an SMS cannot reach it."""
    digits = _SEPARATORS.sub("", phone or "")
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix):]
            break
    if not _MOBILE.match(digits):
        raise InvalidEvent("notify_reporter needs reporter_phone to be a mobile number (11 digits starting "
                           "with 13-19, optionally +86): the outcome is sent by SMS")
    return digits


class MaskPhones(logging.Filter):
    """Masks mobile numbers in the records of the libraries that send the SMS (they log
    the URL and the body at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if _ANY_MOBILE.search(text):
            record.msg, record.args = _ANY_MOBILE.sub(lambda m: m.group()[:3] + "********", text), ()
        return True


_MASK = MaskPhones()
for _name in ("apprise", "urllib3.connectionpool", "urllib3.util.retry", "requests"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, MaskPhones) for f in _logger.filters):
        _logger.addFilter(_MASK)


def reporters_told(conn, event_code: str, event_type: str) -> list[str]:
    """The events whose reporter is told of this one (``event_type`` of ``event_code``):
    the event itself when its reporter agreed and left a number; on closure, also the
    reports merged into it whose reporters agreed."""
    if event_type not in REPORTER_TYPES:
        return []
    ev = schema.events
    mine = ev.c.code == event_code
    which = or_(mine, ev.c.duplicate_of == event_code) if event_type == "event.closed" else mine
    return [c for (c,) in conn.execute(select(ev.c.code).where(and_(which, ev.c.notify_reporter.is_(True),
                                                                     ev.c.reporter_phone.is_not(None)))
                                      .order_by(ev.c.id))]


def _when(row) -> str:
    local = row["reported_at"].astimezone(CHINA)
    return f"{local.month}月{local.day}日"


def message(row, event_type: str, about: dict | None = None) -> tuple[str, str]:
    """Title and text (Chinese) of the SMS to the reporter of event ``row``; ``about`` is
    the event closed, when it is another one (the report was merged into it)."""
    from gridgeo.events.workflow import REJECT_REASONS  # not at the top: the intake imports this module

    what = f"您于{_when(row)}反映的{row.get('category_name') or ''}问题（事件编号{row['code']}）"
    if event_type == "event.merge":
        return "网格事件受理结果", f"{what}与事件{row['duplicate_of']}反映的是同一问题，已合并办理，办结后将告知您结果。"
    if event_type == "event.rejected":
        reason = REJECT_REASONS.get(row.get("reject_reason") or "", "")
        result = (row.get("result") or "").strip().rstrip("。.！!")
        detail = f"。说明：{result[:200]}" if result and result != reason else ""
        return "网格事件受理结果", f"{what}不予受理，原因：{reason or '其他'}{detail}。如有疑问，请拨打12345。"
    closed = about or row
    result = (closed.get("result") or "").strip().rstrip("。.！!")
    merged = f"已并入事件{closed['code']}办理，" if about is not None else ""
    tail = f"办理结果：{result[:200]}。" if result else ""
    return "网格事件办理结果", f"{what}{merged}已办结。{tail}感谢您的反映。"


def _event(conn, code: str):
    ev, cat = schema.events, schema.categories
    return conn.execute(select(ev.c.code, ev.c.reported_at, ev.c.reporter_phone, ev.c.notify_reporter,
                               ev.c.duplicate_of, ev.c.reject_reason, ev.c.result, cat.c.name.label("category_name"))
                        .select_from(ev.outerjoin(cat, cat.c.code == ev.c.category_code))
                        .where(ev.c.code == code)).mappings().first()


def tell_reporter(store: Store, template: str, reporter_of: str, event_code: str, event_type: str) -> str | None:
    """Send the SMS to the reporter of ``reporter_of`` about ``event_type`` of
    ``event_code`` (the same event, or the one it was merged into). None when sent, else
    why not -- a text without the number."""
    import apprise

    with store.engine.connect() as conn:
        row = _event(conn, reporter_of)
        about = _event(conn, event_code) if event_code != reporter_of else None
    if row is None or not row["notify_reporter"] or not row["reporter_phone"]:
        return "the reporter did not agree to be told, or left no number"
    try:
        phone = mobile_number(row["reporter_phone"])
    except InvalidEvent:
        return "the reporter's number is not a mobile number"
    title, body = message(dict(row), event_type, dict(about) if about is not None else None)
    from gridgeo.errors import InvalidInput
    from gridgeo.notify.people import check_channel_url

    try:
        check_channel_url(template, resolve=True)
    except InvalidInput as exc:
        return str(exc)
    a = apprise.Apprise()
    if not a.add(template.replace("{phone}", phone)):
        return "GRIDGEO_REPORTER_CHANNEL is not an apprise URL this server can send to"
    try:
        sent = a.notify(title=title, body=body)
    except Exception as exc:  # noqa: BLE001 - a plugin's failure is this delivery's; its text may hold the URL
        return f"the SMS gateway failed ({type(exc).__name__})"
    return None if sent else "the SMS gateway did not take the message"
