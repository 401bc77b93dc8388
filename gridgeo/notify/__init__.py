"""Notifications (通知): the transactional outbox, webhooks for other systems, the delivery
worker with retries and a dead-letter state, and the sweeper that records events turning
yellow or red.

Every change others are told of writes an :data:`~gridgeo.store.schema.outbox` row in the
transaction of the change (:func:`gridgeo.notify.outbox.record`): the intake's batch, an
action, a sweep. The worker (:mod:`gridgeo.notify.worker`) fans each row out into one
delivery per receiver and delivers them, in order per event and receiver, signed as the
Standard Webhooks specification says.
"""

from gridgeo.notify.outbox import EVENT_TYPES, event_type, record

__all__ = ["EVENT_TYPES", "event_type", "record"]
