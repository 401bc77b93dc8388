"""Where the server may be made to send (webhooks, people's channels): never to link-local or
cloud metadata addresses unless GRIDGEO_NOTIFY_ALLOW_LINK_LOCAL, to loopback only when
GRIDGEO_NOTIFY_ALLOW_LOOPBACK (the suite sets it for its receivers), in every spelling of an
address; a webhook whose address turns forbidden after it was made fails at delivery, and the
receiver gets nothing."""

from __future__ import annotations

import pytest

from gridgeo.config import get_settings
from gridgeo.errors import InvalidInput
from gridgeo.events import report_event
from gridgeo.notify.people import create_channel
from gridgeo.notify.webhooks import create_webhook, list_deliveries, list_webhooks
from gridgeo.notify.worker import deliver_due, fan_out
from helpers.databases import empty_store
from helpers.events_world import event
from helpers.receiver import Receiver

METADATA = ["http://169.254.169.254/latest/meta-data/", "http://user:pw@169.254.169.254/",
            "http://169.254.169.254./", "http://[fd00:ec2::254]/", "http://100.100.100.200/latest/",
            "http://[fe80::1%25eth0]/hook", "http://[::ffff:169.254.169.254]/", "http://0xa9fea9fe/",
            "http://2852039166/", "http://169.254.0.23:80/x"]
LOOPBACK = ["http://127.0.0.1:8113/hook", "http://localhost/", "http://LOCALHOST./x", "http://a.localhost/",
            "http://[::1]/", "http://0.0.0.0/", "http://2130706433/", "http://0x7f000001/", "http://127.1/",
            "http://[::ffff:127.0.0.1]/", "http://127.255.255.254/"]
ALWAYS = ["http://224.0.0.1/", "http://240.0.0.1/"]


def setting(monkeypatch, **env):
    for k, v in env.items():
        monkeypatch.setenv(f"GRIDGEO_{k.upper()}", v)
    get_settings.cache_clear()


def test_forbidden_destinations_are_refused(tmp_path, monkeypatch):
    store = empty_store("sqlite", tmp_path)
    setting(monkeypatch, notify_allow_loopback="false", notify_allow_link_local="false")
    for url in METADATA + LOOPBACK + ALWAYS:
        with pytest.raises(InvalidInput, match="does not send there"):
            create_webhook(store, url, ["*"], actor="admin")
        json_url = url.replace("http://", "json://", 1)
        with pytest.raises(InvalidInput, match="does not send there"):
            create_channel(store, "x", json_url, role="command_room", actor="admin")
    assert list_webhooks(store) == []
    # an intranet address and a public name are fine; a service URL names no host of ours
    for url in ("http://10.0.0.5/hook", "https://ops.example.gov.cn/hook", "http://192.168.1.20:8080/x"):
        create_webhook(store, url, ["*"], actor="admin")
    create_channel(store, "钉钉", "dingtalk://abcdef0123456789/", role="command_room", actor="admin")
    # the settings open what they name, and only that
    setting(monkeypatch, notify_allow_loopback="true")
    for url in LOOPBACK:
        create_webhook(store, url, ["*"], actor="admin")
    with pytest.raises(InvalidInput, match="link-local"):
        create_webhook(store, METADATA[0], ["*"], actor="admin")
    setting(monkeypatch, notify_allow_loopback="false", notify_allow_link_local="true")
    for url in METADATA:
        create_webhook(store, url, ["*"], actor="admin")
    with pytest.raises(InvalidInput, match="loopback"):
        create_webhook(store, LOOPBACK[0], ["*"], actor="admin")
    for url in ALWAYS:
        with pytest.raises(InvalidInput, match="multicast or reserved"):
            create_webhook(store, url, ["*"], actor="admin")
    store.close()
    get_settings.cache_clear()


def test_a_destination_turned_forbidden_fails_at_delivery(world, monkeypatch):
    setting(monkeypatch, outbox_max_attempts="1")
    with Receiver() as rx:
        create_webhook(world, f"http://localhost:{rx.port}/hook", ["*"], actor="admin")  # allowed when made
        setting(monkeypatch, notify_allow_loopback="false")
        report_event(world, event())
        fan_out(world)
        deliver_due(world)
        dead, = list_deliveries(world, state="dead")["items"]
        assert "loopback" in dead["last_error"] and dead["last_status"] is None
        assert rx.requests == []
    get_settings.cache_clear()
