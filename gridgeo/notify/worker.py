"""The delivery worker: fans outbox rows out into deliveries, delivers them with retries and
exponential backoff, in order per event and receiver, and sweeps for events turning yellow
or red (:func:`sweep_warnings`).

Any number of workers may run on one database (one per ``gridgeo serve`` worker process, or
``gridgeo notify run``): a delivery is claimed by moving its ``next_at`` past the send's
timeout with a guarded update, so two workers never send it at once; a worker killed mid-send
leaves it to be sent again after that lease (the receiver drops the duplicate by its
``webhook-id``, the delivery key).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import aliased
from standardwebhooks import Webhook

from gridgeo.config import get_settings
from gridgeo.events.db import write_txn
from gridgeo.events.deadlines import warning_levels
from gridgeo.events.records import event_record, history_record, iso, now_utc
from gridgeo.events.workflow import OVERDUE_STATES
from gridgeo.errors import InvalidInput
from gridgeo.notify.outbox import record
from gridgeo.notify.people import in_quiet_hours, recipients, send
from gridgeo.notify.reporter import REPORTER_TYPES, reporters_told, tell_reporter
from gridgeo.notify.webhooks import check_destination
from gridgeo.store import Store, schema

__all__ = ["OutboxWorker", "deliver_due", "fan_out", "run_once", "sweep_warnings"]

log = logging.getLogger("gridgeo.notify")
#: Personal data no webhook receives.
_PRIVATE = ("reporter_name", "reporter_phone", "reporter_staff_code")
_RANK = {None: 0, "green": 0, "yellow": 1, "red": 2}
FAN_OUT_BATCH, DELIVER_BATCH = 500, 100


def _payload(conn, code: str, type_: str, seq: int | None, at: dt.datetime) -> dict:
    ev, ea = schema.events, schema.event_actions
    row = conn.execute(select(ev).where(ev.c.code == code)).mappings().first()
    if row is None:
        return {"type": type_, "timestamp": iso(at), "data": {"event_code": code}}
    event = {k: v for k, v in event_record(row, with_actions=False).items() if k not in _PRIVATE}
    data = {"event": event}
    if seq is not None:
        line = conn.execute(select(ea).where(ea.c.event_id == row["id"], ea.c.seq == seq)).mappings().first()
        if line is not None:
            data["action"] = history_record(line)
    return {"type": type_, "timestamp": iso(at), "data": data}


def fan_out(store: Store, limit: int = 500) -> int:
    """Turn waiting outbox rows into deliveries (one per matching receiver), in one
    transaction; returns how many rows were taken."""
    ob, wh, dl, ev = schema.outbox, schema.webhooks, schema.deliveries, schema.events
    s = get_settings()
    with store.engine.connect() as conn:  # a read first: no write lock taken for nothing
        top = conn.execute(select(ob.c.id).where(ob.c.dispatched.is_(False))
                           .order_by(ob.c.id.desc()).limit(1)).scalar()
        if top is None:
            return 0
        receivers = (conn.execute(select(func.count()).select_from(wh).where(wh.c.active.is_(True))).scalar_one()
                     + conn.execute(select(func.count()).select_from(schema.channels)
                                    .where(schema.channels.c.active.is_(True))).scalar_one()
                     + bool(s.handoff_url) + bool(s.reporter_channel))
    if not receivers:  # nobody to tell: one statement marks them all
        with write_txn(store) as conn:
            return conn.execute(ob.update().where(ob.c.dispatched.is_(False), ob.c.id <= top)
                                .values(dispatched=True)).rowcount
    with write_txn(store) as conn:
        q = select(ob).where(ob.c.dispatched.is_(False)).order_by(ob.c.id).limit(limit)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows = conn.execute(q).mappings().all()
        if not rows:
            return 0
        hooks = conn.execute(select(wh.c.id, wh.c.event_types).where(wh.c.active.is_(True))).all()
        people = conn.execute(select(func.count()).select_from(schema.channels)
                              .where(schema.channels.c.active.is_(True))).scalar_one()
        now = now_utc()
        out, nobody = [], []
        for r in rows:
            targets = [("webhook", str(h)) for h, types in hooks if "*" in types or r["event_type"] in types]
            if r["event_type"] == "event.escalated" and s.handoff_url:
                targets.append(("handoff", "county"))
            if s.reporter_channel and r["event_type"] in REPORTER_TYPES:  # 双反馈: the reporters who agreed
                targets += [("reporter", c) for c in reporters_told(conn, r["event_code"], r["event_type"])]
            if people:
                scope = conn.execute(select(ev.c.grid_code, ev.c.department, ev.c.platform)
                                     .where(ev.c.code == r["event_code"])).mappings().first()
                targets += [("person", c) for c in recipients(conn, r["event_type"], scope and dict(scope))]
            if not targets:  # nobody asked for it: marked, no payload built
                nobody.append(r["id"])
                continue
            payload = _payload(conn, r["event_code"], r["event_type"], r["seq"], r["at"])
            conn.execute(ob.update().where(ob.c.id == r["id"]).values(dispatched=True, data=payload))
            out += [{"outbox_id": r["id"], "channel": ch, "target": t, "event_code": r["event_code"],
                     "event_type": r["event_type"], "delivery_key": f"msg_{r['id']}_{ch}_{t}",
                     "state": "pending", "attempts": 0, "next_at": now, "created_at": now} for ch, t in targets]
        if nobody:
            conn.execute(ob.update().where(ob.c.id.in_(nobody)).values(dispatched=True))
        if out:
            conn.execute(dl.insert(), out)
    return len(rows)


def _backoff(attempts: int) -> float:
    s = get_settings()
    delay = min(s.outbox_backoff_max, s.outbox_backoff_seconds * 2 ** max(attempts - 1, 0))
    return delay * (1 + 0.25 * random.random())


def _due(conn, now: dt.datetime, limit: int):
    """Pending deliveries due now that no earlier pending delivery of the same event and
    receiver holds back (in order per event)."""
    dl = schema.deliveries
    earlier = aliased(dl)
    q = (select(dl.c.id, dl.c.channel, dl.c.target, dl.c.delivery_key, dl.c.next_at, dl.c.attempts, dl.c.event_type,
                dl.c.outbox_id)
         .where(dl.c.state == "pending", dl.c.next_at <= now,
                ~exists().where(and_(earlier.c.state == "pending", earlier.c.channel == dl.c.channel,
                                     earlier.c.target == dl.c.target, earlier.c.event_code == dl.c.event_code,
                                     earlier.c.id < dl.c.id)))
         .order_by(dl.c.id).limit(limit))
    return conn.execute(q).mappings().all()


def _send(client: httpx.Client, url: str, secret: str, key: str, body: bytes) -> httpx.Response:
    check_destination(urlsplit(url).hostname)  # where the name points now (InvalidInput: a failed try)
    now = dt.datetime.now(dt.timezone.utc)
    headers = {"content-type": "application/json", "webhook-id": key,
               "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(secret).sign(key, now, body)}
    return client.post(url, content=body, headers=headers)


def deliver_due(store: Store, *, limit: int = 100, client: httpx.Client | None = None) -> int:
    """Send what is due; returns how many were delivered."""
    s = get_settings()
    dl, ob, wh = schema.deliveries, schema.outbox, schema.webhooks
    now = now_utc()
    lease = now + dt.timedelta(seconds=2 * s.outbox_timeout + 5)
    with store.engine.connect() as conn:
        due = _due(conn, now, limit)
    if not due:
        return 0
    own = client is None
    client = client or httpx.Client(timeout=s.outbox_timeout, follow_redirects=False)
    delivered = 0
    blocked: set[tuple] = set()
    try:
        for d in due:
            with write_txn(store) as conn:  # claim it: no other worker sends it meanwhile
                got = conn.execute(dl.update().where(dl.c.id == d["id"], dl.c.state == "pending",
                                                     dl.c.next_at == d["next_at"]).values(next_at=lease)).rowcount
                if not got:
                    continue
                row = conn.execute(select(dl.c.event_code, ob.c.data).join(ob, ob.c.id == dl.c.outbox_id)
                                   .where(dl.c.id == d["id"])).first()
                quiet_until = None
                if d["channel"] == "webhook":
                    hook = conn.execute(select(wh.c.url, wh.c.secret).where(wh.c.id == int(d["target"]))).first()
                    url, secret = hook
                elif d["channel"] == "person":
                    ch = schema.channels
                    url, qs, qe = conn.execute(select(ch.c.url, ch.c.quiet_start, ch.c.quiet_end)
                                               .where(ch.c.id == int(d["target"]))).first()
                    secret = None
                    quiet_until = in_quiet_hours(qs, qe, now)
                    if quiet_until is not None:  # waits for the end of the quiet hours: no attempt
                        conn.execute(dl.update().where(dl.c.id == d["id"]).values(next_at=quiet_until))
                elif d["channel"] == "reporter":  # the number is read when sending (gridgeo.notify.reporter)
                    url, secret = None, None
                    if s.reporter_quiet_hours:
                        quiet_until = in_quiet_hours(*s.reporter_quiet_hours.split("-"), now)
                    if quiet_until is not None:
                        conn.execute(dl.update().where(dl.c.id == d["id"]).values(next_at=quiet_until))
                else:
                    url, secret = s.handoff_url, s.handoff_secret.get_secret_value() if s.handoff_secret else None
            if quiet_until is not None:
                blocked.add((d["channel"], d["target"], row[0]))
                continue
            if (d["channel"], d["target"], row[0]) in blocked:
                _release(store, d["id"], d["next_at"])
                continue
            status, error, receipt = None, None, None
            if d["channel"] == "reporter":
                template = s.reporter_channel.get_secret_value() if s.reporter_channel else None
                error = (tell_reporter(store, template, d["target"], row[0], d["event_type"]) if template
                         else "GRIDGEO_REPORTER_CHANNEL is not set")
                _settle(store, d, status, error, receipt, blocked, row[0])
                delivered += error is None
                continue
            if d["channel"] == "person":
                try:
                    error = send(url, row[1])
                except Exception as exc:  # noqa: BLE001 - a plugin's failure is this delivery's
                    error = f"{type(exc).__name__}: {str(exc)[:300]}"
                _settle(store, d, status, error, receipt, blocked, row[0])
                delivered += error is None
                continue
            body = json.dumps(_body(store, d["channel"], row[1]), ensure_ascii=False).encode()
            try:
                r = _send(client, url, secret, d["delivery_key"], body)
                status = r.status_code
                if 200 <= status < 300:
                    if d["channel"] == "handoff":
                        try:
                            receipt = r.json()
                        except ValueError:
                            receipt = {"text": r.text[:2000]}
                else:
                    error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
            except InvalidInput as exc:  # the URL now points where the server does not send
                error = str(exc)[:300]
            _settle(store, d, status, error, receipt, blocked, row[0])
            delivered += error is None
    finally:
        if own:
            client.close()
    return delivered


def _settle(store: Store, d, status, error, receipt, blocked: set, event_code: str) -> None:
    """Record one attempt: delivered, or failed (retried after a backoff, dead after the last)."""
    s = get_settings()
    dl = schema.deliveries
    attempts = d["attempts"] + 1
    with write_txn(store) as conn:
        if error is None:
            conn.execute(dl.update().where(dl.c.id == d["id"]).values(
                state="delivered", attempts=attempts, last_status=status, last_error=None,
                delivered_at=now_utc(), receipt=receipt))
            return
        dead = attempts >= s.outbox_max_attempts
        conn.execute(dl.update().where(dl.c.id == d["id"]).values(
            state="dead" if dead else "pending", attempts=attempts, last_status=status,
            last_error=error, next_at=now_utc() + dt.timedelta(seconds=_backoff(attempts))))
    # later deliveries of this event to this receiver wait behind it
    blocked.add((d["channel"], d["target"], event_code))
    log.info("delivery %s to %s %s failed (%s), attempt %s%s", d["id"], d["channel"], d["target"],
             error, attempts, ": dead" if dead else "")


def _release(store: Store, delivery_id: int, next_at: dt.datetime) -> None:
    dl = schema.deliveries
    with write_txn(store) as conn:
        conn.execute(dl.update().where(dl.c.id == delivery_id).values(next_at=next_at))


def _body(store: Store, channel: str, payload: dict) -> dict:
    if channel != "handoff":
        return payload
    from gridgeo.notify.handoff import handoff_body

    return handoff_body(store, payload)


def sweep_warnings(store: Store, now: dt.datetime | None = None) -> dict[str, int]:
    """Record every open event that turned yellow or red since the last sweep: the event's
    ``warning``, a history line (``warn`` / ``overdue``) and its outbox row, one transaction.
    Idempotent: an event is recorded once per level (an extension sets it back)."""
    now = now or now_utc()
    ev, ea = schema.events, schema.event_actions
    with store.engine.connect() as conn:
        rows = conn.execute(select(ev.c.id, ev.c.code, ev.c.version, ev.c.state, ev.c.reported_at,
                                   ev.c.deadline_at, ev.c.deadline_workdays, ev.c.warning)
                            .where(ev.c.state.in_(sorted(OVERDUE_STATES)), ev.c.deadline_at.is_not(None),
                                   ev.c.warning.is_(None) | (ev.c.warning != "red"))).all()
    counts = {"yellow": 0, "red": 0}
    if not rows:
        return counts
    frame = pd.DataFrame(rows, columns=["id", "code", "version", "state", "reported", "deadline", "workdays",
                                        "warning"])
    epoch = pd.Timestamp(0, tz="UTC")
    rep = (pd.to_datetime(frame["reported"], utc=True) - epoch).dt.total_seconds().to_numpy()
    due = (pd.to_datetime(frame["deadline"], utc=True) - epoch).dt.total_seconds().to_numpy()
    level = warning_levels(now.timestamp(), rep, due, frame["workdays"].notna().to_numpy(), np.ones(len(frame), bool))
    rank = pd.Series(level).map(_RANK).to_numpy()
    before = frame["warning"].map(_RANK).fillna(0).to_numpy()
    turned = np.flatnonzero(rank > before)  # only these are written, one by one (few per sweep)
    if not len(turned):
        return counts
    with write_txn(store) as conn:
        for i in turned:
            r, lv = rows[i], level[i]
            action = "overdue" if lv == "red" else "warn"
            done = conn.execute(ev.update().where(ev.c.id == r.id, ev.c.version == r.version)
                                .values(warning=lv, version=r.version + 1)).rowcount
            if not done:  # changed meanwhile: the next sweep sees it again
                continue
            late = round((now - r.deadline_at).total_seconds() / 3600.0, 1) if lv == "red" else None
            conn.execute(ea.insert().values(event_id=r.id, seq=r.version + 1, at=now, action=action,
                                            actor="system", role="system", from_state=r.state,
                                            to_state=r.state, note=None,
                                            data={"warning": lv, **({"late_hours": late} if late else {})}))
            record(conn, [(r.code, action, r.version + 1, now)])
            counts[lv] += 1
    return counts


def run_once(store: Store, *, sweep: bool = True) -> dict:
    """One round: sweep, fan out, deliver."""
    out = {"swept": sweep_warnings(store) if sweep else None}
    out["fanned_out"] = fan_out(store)
    out["delivered"] = deliver_due(store)
    return out


class OutboxWorker:
    """The worker as a daemon thread (``gridgeo serve`` starts one per process)."""

    def __init__(self, store: Store):
        self.store = store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OutboxWorker:
        self._thread = threading.Thread(target=self._run, name="gridgeo-outbox", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        s = get_settings()
        last_sweep = 0.0
        with httpx.Client(timeout=s.outbox_timeout, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    t = dt.datetime.now().timestamp()
                    if t - last_sweep >= s.sweep_seconds:
                        sweep_warnings(self.store)
                        last_sweep = t
                    # Straight on only while a full batch was taken (a backlog); else wait the
                    # poll interval, so that a steady trickle of intakes is taken in batches,
                    # not by a loop spinning beside the intake.
                    busy = (fan_out(self.store, limit=FAN_OUT_BATCH) >= FAN_OUT_BATCH
                            or deliver_due(self.store, limit=DELIVER_BATCH, client=client) >= DELIVER_BATCH)
                except Exception:  # noqa: BLE001 - a lost database must not end the thread
                    log.exception("outbox worker round failed")
                    busy = False
                if not busy:
                    self._stop.wait(s.outbox_poll_seconds)
