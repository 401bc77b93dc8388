"""Screenshots of the console for the README (docs/img/console-*.png), from a replayed sample.

    .venv/bin/python scripts/console_screenshots.py --database sqlite:///gridgeo.db

Serves the app on 127.0.0.1 (a free port) over the database, logs the demo users in with
fresh passwords (``gridgeo users demo`` does the same) and saves the command room, an event,
the leadership's dashboard at 1366x768 and the grid worker's page on a phone-sized screen,
in the system's Chromium. Nothing is requested off the machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = parser.parse_args()

    import socket

    import uvicorn
    from playwright.sync_api import sync_playwright
    from sqlalchemy import select

    from gridgeo import auth, sessions
    from gridgeo.api.main import create_app
    from gridgeo.api.resources import get_store
    from gridgeo.store import Store, schema

    store = Store(args.database)
    users = {u["username"]: u for u in auth.demo_users(store, days=1)}
    passwords = {}
    for name in users:
        passwords[name] = sessions.new_password()
        sessions.set_password(store, name, passwords[name], actor="screenshots")
    ev = schema.events
    with store.engine.connect() as conn:
        worker_grids = users["demo-worker"]["grids"]
        event = conn.execute(select(ev.c.code).where(ev.c.state == "in_progress", ev.c.pos_lon.is_not(None))
                             .order_by(ev.c.reported_at.desc()).limit(1)).scalar()
    app = create_app()
    app.dependency_overrides[get_store] = lambda: store
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    out = Path(args.out)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])

        def page_for(user, phone=False):
            size = {"width": 390, "height": 844} if phone else {"width": 1366, "height": 768}
            ctx = browser.new_context(viewport=size, is_mobile=phone, has_touch=phone, locale="zh-CN",
                                      device_scale_factor=1)
            ctx.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort())
            page = ctx.new_page()
            page.goto(base + "/login")
            page.get_by_label("用户名").fill(user)
            page.get_by_label("密码").fill(passwords[user])
            page.get_by_role("button", name="登录").click()
            page.wait_for_selector("header nav")
            return page

        command = page_for("demo-command")
        command.goto(base + "/command?queue=overdue")
        command.screenshot(path=str(out / "console-command.png"))
        command.goto(f"{base}/events/{event}")
        command.wait_for_selector("#map.leaflet-container")
        command.locator("details:has(form[data-action='extend']) > summary").click()
        time.sleep(0.3)
        command.screenshot(path=str(out / "console-event.png"))
        leader = page_for("demo-leader")
        leader.screenshot(path=str(out / "console-dashboard.png"))
        worker = page_for("demo-worker", phone=True)
        worker.wait_for_selector("#map.leaflet-container")
        time.sleep(0.3)
        worker.screenshot(path=str(out / "console-grid-phone.png"))
        browser.close()
    server.should_exit = True
    print(f"saved console-command.png, console-event.png, console-dashboard.png, console-grid-phone.png "
          f"in {out} (grid worker: {', '.join(worker_grids)})")


if __name__ == "__main__":
    main()
