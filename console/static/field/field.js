/* The phone app (/field): report with the phone's position, photos and a category; verify or
   rework the tasks of one's grids; record a patrol (巡查) and check in (签到). Every report and
   action is first put in IndexedDB with its own Idempotency-Key (outbox.js), then sent; what
   could not be sent (no signal, server unreachable) is sent again when the signal returns: by
   the service worker (Background Sync, where the browser has it, even with the page closed),
   and by this page (the "online" event, and a retry every 20 s). The server does each key
   once: a send cut off half-way and sent again makes one event, or one action. */
"use strict";
(function () {
  const RETRY_MS = 20000, SYNC_TAG = "gridgeo-outbox";
  const RECORDING = "gridgeo-field-patrol";  // localStorage: the patrol being recorded ({key, username, started})
  const MAX_ACCURACY_M = 100;  // fixes worse than this are not kept in a track
  const $ = (id) => document.getElementById(id);
  let data = null, position = null, sending = false, needLogin = false;

  const {queued, put, remove, addPoint, allPoints, clearPoints, newKey, sentLog, metres, duration} = self.GGOutbox;

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
      const n = (it.photos || []).length;
      const el = li(`${chinaTime(it.created)} ${it.label}${n ? `（${n} 张照片）` : ""}`,
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
    const sent = await sentLog();
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

  // -- photos: downscaled on the phone before they are queued -----------------------------------
  // A phone's photo is 3-12 MB; drawn on a canvas at most MAX_SIDE pixels on its long side and
  // saved as JPEG it is a few hundred kB, so a queue of reports fits in IndexedDB and goes out
  // on a weak signal. Re-encoding drops the EXIF, its GPS too: a report without the phone's own
  // fix keeps its photos as taken (the server may locate the event by them).
  const MAX_SIDE = 2048, JPEG_QUALITY = 0.85, SMALL_BYTES = 1500000;
  async function downscale(file) {
    if (!file.type || !file.type.startsWith("image/") || !window.createImageBitmap) return file;
    let bmp;
    try {
      bmp = await createImageBitmap(file, {imageOrientation: "from-image"});
    } catch (err) {
      return file;  // a format this browser cannot draw (HEIC on most): sent as taken
    }
    const scale = Math.min(1, MAX_SIDE / Math.max(bmp.width, bmp.height));
    if (scale === 1 && file.size <= SMALL_BYTES) { bmp.close(); return file; }
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bmp.width * scale));
    canvas.height = Math.max(1, Math.round(bmp.height * scale));
    canvas.getContext("2d").drawImage(bmp, 0, 0, canvas.width, canvas.height);
    bmp.close();
    const blob = await new Promise((ok) => canvas.toBlob(ok, "image/jpeg", JPEG_QUALITY));
    if (!blob || blob.size >= file.size) return file;
    const name = (file.name || "photo").replace(/\.[^.]*$/, "") + ".jpg";
    return new File([blob], name, {type: "image/jpeg", lastModified: file.lastModified});
  }
  const photosOf = (input, keepExif) => keepExif ? Array.from(input.files)
    : Promise.all(Array.from(input.files).map(downscale));

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
      photos: await photosOf($("photo"), !position), label: `上报：${cat ? cat.name : code}${address ? " · " + address : ""}`});
    $("report").reset();
    renderCategories();
    msg.textContent = navigator.onLine ? "已保存，正在发送…" : "已保存在手机上，有信号后自动发送";
    await render();
    syncLater();
    flush();
  }
  async function queueAction(task, form, submitter) {
    const action = submitter ? submitter.value : "verify";
    const note = form.elements.note.value.trim(), msg = form.querySelector(".msg");
    if ((data.note_required || []).includes(action) && !note) { msg.textContent = "退回返工须填写意见"; return; }
    await put({key: newKey(), username: data.username, kind: "action", created: new Date().toISOString(), code: task.code,
      version: task.version, action, note, photos: await photosOf(form.elements.photo, false),
      label: `${action === "verify" ? "核查通过" : "退回返工"}：${task.code}`});
    await render();
    syncLater();
    flush();
  }

  // -- patrols (巡查) and check-ins (签到) --------------------------------------------------------
  // While a patrol is recorded, every fix of watchPosition goes to IndexedDB (a reload, or the
  // browser closing the page, loses nothing kept so far; recording resumes when the page opens
  // again). On 结束巡查 the track is queued like a report, with its own Idempotency-Key, and sent
  // as the app's JSON ({crs, points: [[lon, lat, epoch_ms]]}); the server cleans and measures it.
  let watch = null, track = {points: 0, metres: 0, last: null}, ticker = null;
  const recording = () => JSON.parse(localStorage.getItem(RECORDING) || "null");
  function step(a, b) {  // metres between two fixes (short: an equirectangular step is enough to show)
    const k = Math.PI / 180, x = (b[0] - a[0]) * k * Math.cos((a[1] + b[1]) / 2 * k), y = (b[1] - a[1]) * k;
    return 6371008.8 * Math.hypot(x, y);
  }
  function showPatrol() {
    const rec = recording();
    $("patrol-start").hidden = !!rec;
    $("patrol-stop").hidden = !rec;
    $("patrol-state").textContent = rec ? "巡查中" : "未开始";
    $("patrol-state").classList.toggle("on", !!rec);
    $("patrol-km").textContent = metres(track.metres);
    $("patrol-time").textContent = duration(rec ? Date.now() - rec.started : 0);
    $("patrol-points").textContent = String(track.points);
  }
  async function keepFix(p) {
    const rec = recording();
    if (!rec || p.coords.accuracy > MAX_ACCURACY_M) return;
    const point = [p.coords.longitude, p.coords.latitude, Math.round(p.timestamp)];
    if (track.last && point[2] <= track.last[2]) return;  // time must move forward
    await addPoint(point);
    if (track.last) track.metres += step(track.last, point);
    track.last = point;
    track.points += 1;
    position = {lon: point[0], lat: point[1], accuracy: p.coords.accuracy};
    showPatrol();
  }
  async function resumeTrack() {  // the figures of what IndexedDB holds (after a reload)
    const pts = await allPoints();
    track = {points: pts.length, metres: 0, last: pts.length ? pts[pts.length - 1] : null};
    for (let i = 1; i < pts.length; i++) track.metres += step(pts[i - 1], pts[i]);
  }
  function startWatching() {
    if (watch !== null || !navigator.geolocation) return;
    watch = navigator.geolocation.watchPosition(keepFix, (err) => {
      $("patrol-msg").textContent = err.code === 1 ? "未允许定位，无法记录巡查轨迹" : "暂时无法定位，恢复后继续记录";
    }, {enableHighAccuracy: true, maximumAge: 0, timeout: 30000});
    ticker = setInterval(showPatrol, 1000);
  }
  function stopWatching() {
    if (watch !== null) navigator.geolocation.clearWatch(watch);
    watch = null;
    clearInterval(ticker);
  }
  async function startPatrol() {
    if (!navigator.geolocation) { $("patrol-msg").textContent = "此设备不能定位，无法记录巡查"; return; }
    if (!data) { $("patrol-msg").textContent = "请先联网打开一次本页"; return; }
    await clearPoints();
    track = {points: 0, metres: 0, last: null};
    localStorage.setItem(RECORDING, JSON.stringify({key: newKey(), username: data.username, started: Date.now()}));
    $("patrol-msg").textContent = "正在记录轨迹，请保持本页打开";
    startWatching();
    showPatrol();
  }
  async function stopPatrol() {
    const rec = recording();
    if (!rec) return;
    stopWatching();
    const pts = await allPoints();
    localStorage.removeItem(RECORDING);
    await clearPoints();
    const figures = `${metres(track.metres)}，${duration(Date.now() - rec.started)}`;
    track = {points: 0, metres: 0, last: null};
    showPatrol();
    if (pts.length < 2) { $("patrol-msg").textContent = "定位点太少，本次巡查未保存"; return; }
    await put({key: rec.key, username: rec.username, kind: "patrol", created: new Date(rec.started).toISOString(),
      body: {crs: "wgs84", points: pts}, photos: [], label: `巡查：${figures}（${pts.length} 个定位点）`});
    $("patrol-msg").textContent = navigator.onLine ? "巡查已结束，正在上传…" : "巡查已结束，轨迹保存在手机上，有信号后自动上传";
    await render();
    syncLater();
    flush();
  }
  function checkIn() {
    if (!navigator.geolocation) { $("patrol-msg").textContent = "此设备不能定位，无法签到"; return; }
    if (!data) { $("patrol-msg").textContent = "请先联网打开一次本页"; return; }
    $("patrol-msg").textContent = "签到定位中…";
    navigator.geolocation.getCurrentPosition(async (p) => {
      const at = new Date(p.timestamp).toISOString();
      await put({key: newKey(), username: data.username, kind: "checkin", created: new Date().toISOString(),
        body: {lon: p.coords.longitude, lat: p.coords.latitude, at}, photos: [],
        label: `签到：${p.coords.latitude.toFixed(5)}, ${p.coords.longitude.toFixed(5)}（±${Math.round(p.coords.accuracy)} 米）`});
      $("patrol-msg").textContent = navigator.onLine ? "已签到，正在发送…" : "已签到，有信号后自动发送";
      await render();
      syncLater();
      flush();
    }, (err) => {
      $("patrol-msg").textContent = err.code === 1 ? "未允许定位，无法签到" : "定位失败，请重试";
    }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 0});
  }

  // -- sending (outbox.js, shared with the service worker's Background Sync) ------------------
  async function flush() {
    if (sending || !data) return;
    sending = true;
    let result = {sent: 0, needLogin: false};
    try {
      result = await self.GGOutbox.send(data);
    } finally {
      sending = false;
    }
    if (result.needLogin) needLogin = true;
    if (result.sent) {
      $("report-msg").textContent = "";
      await loadData();
    }
    await render();
  }
  /* Ask the browser to send the queue when the signal returns, even if this page is closed by
     then (Background Sync, where the browser has it); the page's own sending stays. */
  function syncLater() {
    if (!("serviceWorker" in navigator) || !("SyncManager" in self)) return;
    navigator.serviceWorker.ready.then((reg) => reg.sync.register(SYNC_TAG)).catch(() => undefined);
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("report").addEventListener("submit", queueReport);
    $("cat-search").addEventListener("input", renderCategories);
    $("locate").addEventListener("click", locate);
    $("send-now").addEventListener("click", flush);
    $("patrol-start").addEventListener("click", startPatrol);
    $("patrol-stop").addEventListener("click", stopPatrol);
    $("checkin").addEventListener("click", checkIn);
    if (recording()) {  // a patrol was being recorded when the page was closed or reloaded
      await resumeTrack();
      $("patrol-msg").textContent = "继续记录巡查轨迹，请保持本页打开";
      startWatching();
    }
    showPatrol();
    window.addEventListener("online", () => { showNet(); flush(); });
    window.addEventListener("offline", showNet);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) flush(); });
    setInterval(flush, RETRY_MS);
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/sw.js", {scope: "/field"}).catch(() => undefined);
      // the service worker sent something (Background Sync): show it
      navigator.serviceWorker.addEventListener("message", (e) => {
        if (e.data && e.data.type === "gridgeo-outbox-sent") loadData().then(render);
      });
    }
    locate();
    await loadData();
    await render();
    flush();
  });
})();
