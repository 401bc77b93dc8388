/* The phone app (/field): report with the phone's position, photos and a category; verify or
   rework the tasks of one's grids. Every report and action is first put in IndexedDB with its
   own Idempotency-Key, then sent; what could not be sent (no signal, server unreachable) is
   sent again when the signal returns (the "online" event, and a retry every 20 s). The server
   does each key once: a send cut off half-way and sent again makes one event, or one action. */
"use strict";
(function () {
  const DB = "gridgeo-field", STORE = "outbox", SENT = "gridgeo-field-sent", RETRY_MS = 20000;
  const $ = (id) => document.getElementById(id);
  let data = null, position = null, sending = false, needLogin = false;

  // -- IndexedDB ------------------------------------------------------------------------
  function openDb() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE, {keyPath: "key"});
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  const dbReady = openDb();
  async function tx(mode, fn) {
    const db = await dbReady;
    return new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const result = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  }
  const queued = () => tx("readonly", (s) => s.getAll()).then((items) =>
    (items || []).sort((a, b) => a.created.localeCompare(b.created)));
  const put = (item) => tx("readwrite", (s) => s.put(item));
  const remove = (key) => tx("readwrite", (s) => s.delete(key));

  function newKey() {
    if (crypto.randomUUID) return "field-" + crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return "field-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  // -- what the page shows ---------------------------------------------------------------
  function chinaTime(iso) {
    const d = new Date(iso);
    return d.toLocaleString("zh-CN", {timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hour12: false});
  }
  function li(text, why, cls) {
    const el = document.createElement("li");
    el.textContent = text;
    if (why) {
      const w = document.createElement("span");
      w.className = "why" + (cls ? " " + cls : "");
      w.textContent = why;
      el.appendChild(w);
    }
    return el;
  }
  function showNet() {
    const net = $("net");
    net.textContent = needLogin ? "请重新登录" : (navigator.onLine ? "在线" : "离线");
    net.classList.toggle("off", !navigator.onLine || needLogin);
  }
  async function renderOutbox() {
    const items = await queued();
    const list = $("outbox");
    list.replaceChildren();
    for (const it of items) {
      const other = data && it.username !== data.username;
      const el = li(`${chinaTime(it.created)} ${it.label}${it.photos.length ? `（${it.photos.length} 张照片）` : ""}`,
        it.error ? `未能发送：${it.error}` : (other ? `由 ${it.username} 登录后发送` : "等待发送"), it.error ? "" : "wait");
      el.dataset.key = it.key;
      if (it.error) {
        const drop = document.createElement("button");
        drop.type = "button"; drop.className = "small"; drop.textContent = "删除此条";
        drop.addEventListener("click", async () => { await remove(it.key); render(); });
        el.appendChild(drop);
      }
      list.appendChild(el);
    }
    $("outbox-count").textContent = `${items.length} 条`;
    const sent = JSON.parse(localStorage.getItem(SENT) || "[]");
    $("sent").replaceChildren(...sent.map((s) => li(`${chinaTime(s.at)} ${s.label} → ${s.result}`)));
    return items;
  }
  function renderCategories() {
    const sel = $("category"), q = $("cat-search").value.trim().toLowerCase();
    const keep = sel.value;
    const cats = (data ? data.categories : []).filter((c) => !q || c.name.toLowerCase().includes(q)
      || c.code.toLowerCase().startsWith(q)).slice(0, 200);
    sel.replaceChildren(...cats.map((c) => new Option(`${c.name}（${c.code}）`, c.code, false, c.code === keep)));
    if (cats.length === 1) sel.value = cats[0].code;
  }
  async function renderTasks(items) {
    const pending = new Set(items.filter((i) => i.kind === "action").map((i) => i.code));
    const list = $("tasks"), tpl = $("task-tpl");
    const tasks = data ? data.tasks : [];
    list.replaceChildren();
    for (const t of tasks) {
      const node = tpl.content.firstElementChild.cloneNode(true);
      node.dataset.code = t.code;
      node.querySelector(".code").textContent = t.code;
      node.querySelector(".state").textContent = pending.has(t.code) ? "已核查，待发送" : t.state_label;
      node.querySelector(".cat").textContent = t.category_name || t.category_code || "";
      node.querySelector(".addr").textContent = t.address || "";
      node.querySelector(".desc").textContent = t.description || "";
      const form = node.querySelector("form");
      if (pending.has(t.code)) { node.classList.add("pending"); form.hidden = true; }
      form.addEventListener("submit", (e) => { e.preventDefault(); queueAction(t, form, e.submitter); });
      list.appendChild(node);
    }
    $("tasks-count").textContent = `${tasks.length} 件`;
    $("tasks-note").textContent = tasks.length ? "" : "暂无待核查事件";
  }
  async function render() {
    showNet();
    const items = await renderOutbox();
    await renderTasks(items);
  }

  // -- data and position -----------------------------------------------------------------
  async function loadData() {
    try {
      const res = await fetch("/field/data", {credentials: "same-origin", redirect: "manual"});
      if (res.type === "opaqueredirect" || res.status === 401) { needLogin = true; return; }
      if (!res.ok) return;
      data = await res.json();
      needLogin = false;
      renderCategories();
    } catch (err) {
      $("tasks-note").textContent = "无网络，且本机没有保存的数据";
    }
  }
  function locate() {
    if (!navigator.geolocation) { $("pos").textContent = "此设备不能定位，请填写地址"; return; }
    $("pos").textContent = "定位中…";
    navigator.geolocation.getCurrentPosition((p) => {
      position = {lon: p.coords.longitude, lat: p.coords.latitude, accuracy: p.coords.accuracy};
      $("pos").textContent = `已定位 ${position.lat.toFixed(5)}, ${position.lon.toFixed(5)}（±${Math.round(position.accuracy)} 米）`;
    }, (err) => {
      position = null;
      $("pos").textContent = err.code === 1 ? "未允许定位，请填写地址" : "定位失败，请填写地址或重试";
    }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 60000});
  }

  // -- queueing -----------------------------------------------------------------------------
  async function queueReport(e) {
    e.preventDefault();
    const code = $("category").value, msg = $("report-msg");
    if (!code) { msg.textContent = "请选择事项类别"; $("cat-search").focus(); return; }
    const address = $("address").value.trim(), description = $("description").value.trim();
    if (!position && !address) { msg.textContent = "没有定位，请填写地址"; $("address").focus(); return; }
    const cat = data.categories.find((c) => c.code === code);
    const event = {category_code: code, description: description || null, address: address || null,
      reported_at: new Date().toISOString()};
    if (position) { event.lon = position.lon; event.lat = position.lat; }
    await put({key: newKey(), username: data.username, kind: "event", created: new Date().toISOString(), event,
      photos: Array.from($("photo").files), label: `上报：${cat ? cat.name : code}${address ? " · " + address : ""}`});
    $("report").reset();
    renderCategories();
    msg.textContent = navigator.onLine ? "已保存，正在发送…" : "已保存在手机上，有信号后自动发送";
    await render();
    flush();
  }
  async function queueAction(task, form, submitter) {
    const action = submitter ? submitter.value : "verify";
    const note = form.elements.note.value.trim(), msg = form.querySelector(".msg");
    if ((data.note_required || []).includes(action) && !note) { msg.textContent = "退回返工须填写意见"; return; }
    await put({key: newKey(), username: data.username, kind: "action", created: new Date().toISOString(), code: task.code,
      version: task.version, action, note, photos: Array.from(form.elements.photo.files),
      label: `${action === "verify" ? "核查通过" : "退回返工"}：${task.code}`});
    await render();
    flush();
  }

  // -- sending --------------------------------------------------------------------------------
  function body(item) {
    const form = new FormData();
    if (item.kind === "event") {
      form.append("event", JSON.stringify(item.event));
    } else {
      form.append("action", item.action);
      form.append("version", String(item.version));
      if (item.note) form.append("note", item.note);
    }
    item.photos.forEach((p, i) => form.append("photos", p, p.name || `photo-${i + 1}.jpg`));
    return form;
  }
  async function reason(res) {
    try {
      const j = await res.json();
      return j.detail || j.title || `错误 ${res.status}`;
    } catch (err) {
      return res.status === 403 ? "无权操作或安全校验码已失效" : `错误 ${res.status}`;
    }
  }
  async function flush() {
    if (sending || !data) return;
    sending = true;
    let sentAny = false;
    try {
      for (const item of await queued()) {
        if (item.error || item.username !== data.username) continue;  // another user's: sent under their log-in
        const url = item.kind === "event" ? "/field/events" : `/field/events/${encodeURIComponent(item.code)}/actions`;
        let res;
        try {
          res = await fetch(url, {method: "POST", body: body(item), credentials: "same-origin", redirect: "manual",
            headers: {"Idempotency-Key": item.key, "X-CSRF-Token": data.csrf}});
        } catch (err) {
          break;  // no signal: everything stays queued, in order
        }
        if (res.type === "opaqueredirect" || res.status === 401) { needLogin = true; break; }
        if (res.ok) {
          const answer = await res.json();
          await remove(item.key);
          const sent = JSON.parse(localStorage.getItem(SENT) || "[]");
          sent.unshift({at: new Date().toISOString(), label: item.label,
            result: item.kind === "event" ? `事件 ${answer.code}` : answer.state_label});
          localStorage.setItem(SENT, JSON.stringify(sent.slice(0, 20)));
          sentAny = true;
        } else if (res.status >= 500 || res.status === 408 || res.status === 429) {
          break;  // the server is busy or away: try again later
        } else {
          item.error = await reason(res);  // the server refused it: shown, kept until deleted
          await put(item);
        }
      }
    } finally {
      sending = false;
    }
    if (sentAny) {
      $("report-msg").textContent = "";
      await loadData();
    }
    await render();
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("report").addEventListener("submit", queueReport);
    $("cat-search").addEventListener("input", renderCategories);
    $("locate").addEventListener("click", locate);
    $("send-now").addEventListener("click", flush);
    window.addEventListener("online", () => { showNet(); flush(); });
    window.addEventListener("offline", showNet);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) flush(); });
    setInterval(flush, RETRY_MS);
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/sw.js", {scope: "/field"}).catch(() => undefined);
    }
    locate();
    await loadData();
    await render();
    flush();
  });
})();
