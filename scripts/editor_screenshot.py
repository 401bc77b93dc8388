"""The README's screenshot of the map editor (docs/img/console-editor.png), on the sample.

    .venv/bin/python scripts/editor_screenshot.py

Loads the sample township into a temporary SQLite database, re-plans one village into a
draft (the planner's blocks), serves the app on 127.0.0.1 (a free port), logs a planner in
and previews moving two blocks to the neighbouring grid, in the system's Chromium at
1366x768. Nothing is requested off the machine.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "console-editor.png"))
    args = parser.parse_args()

    import shapely
    import uvicorn
    from playwright.sync_api import sync_playwright

    from gridgeo import auth, sessions
    from gridgeo.api.main import create_app
    from gridgeo.api.resources import get_store
    from gridgeo.plan import lifecycle
    from gridgeo.sample import load_sample
    from gridgeo.store import Store

    folder = Path(tempfile.mkdtemp(prefix="gridgeo-editor-"))
    store = Store(f"sqlite:///{folder / 'sample.db'}")
    store.migrate()
    load_sample(store)
    grids = store.read("grids", plan=store.plan_in_force()["id"])
    village = grids["village_code"].value_counts().index[0]  # a village of several grids
    plan = lifecycle.plan_from_store(store, villages=[village], from_scratch=True, seed=1)
    row = lifecycle.save_draft(store, plan, version="草案-编辑示例", actor="screenshot")
    _, dgrids, blocks = lifecycle.plan_blocks(store, row["id"])
    mine = blocks[blocks["village_code"] == village]
    first, second = sorted(set(mine["grid_code"]))[:2]
    # blocks of the first grid touching the second: the ones a planner would move
    touching = mine[(mine["grid_code"] == first).to_numpy() & shapely.intersects(
        mine.geometry.to_numpy(), dgrids.set_index("code").geometry[second])]
    chosen = touching["block"].astype(int).tolist()[:2]
    auth.create_user(store, "planner-demo", role="planner", name="规划员", actor="screenshot")
    password = sessions.new_password()
    sessions.set_password(store, "planner-demo", password, actor="screenshot")

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
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort())
        page = context.new_page()
        page.goto(base + "/login")
        page.get_by_label("用户名").fill("planner-demo")
        page.get_by_label("密码").fill(password)
        page.get_by_role("button", name="登录").click()
        page.wait_for_selector("header nav")
        page.goto(f"{base}/plans/{row['version']}/edit")
        for i, b in enumerate(chosen):
            page.locator(f"#editor-map path[data-block='{b}']").click(modifiers=["Shift"] if i else [])
        page.get_by_role("button", name="缩放到所选图斑").click()
        page.locator("#move-to").select_option(second)
        page.wait_for_selector("#edit-result table.figures")
        page.mouse.move(5, 5)
        page.screenshot(path=args.out, full_page=True, clip={"x": 0, "y": 0, "width": 1366, "height": 1010})
        browser.close()
    server.should_exit = True
    print(f"saved {args.out} (village {village}, blocks {chosen} of {first} previewed into {second})")


if __name__ == "__main__":
    main()
