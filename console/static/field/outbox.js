/* The phone app's outbox (待发送), shared by the page (field.js) and its service worker (sw.js,
   Background Sync): the IndexedDB stores, and sending what waits, in order, each with its own
   Idempotency-Key. One sender at a time (a Web Lock, where the browser has it): the page and
   the service worker never send the same item at once; and were one send to be repeated (an
   answer lost), the server does each key once.

   Stores: "outbox" (reports, checks, patrols, check-ins waiting), "patrol-points" (the fixes of
   the patrol being recorded), "sent" (the last 20 sent, with the server's answer). */
"use strict";
self.GGOutbox = (function () {
  const DB = "gridgeo-field", STORE = "outbox", POINTS = "patrol-points", SENT = "sent", KEEP_SENT = 20;
  const LOCK = "gridgeo-field-outbox";

  function openDb() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, 3);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, {keyPath: "key"});
        if (!db.objectStoreNames.contains(POINTS)) db.createObjectStore(POINTS, {autoIncrement: true});
        if (!db.objectStoreNames.contains(SENT)) db.createObjectStore(SENT, {autoIncrement: true});
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  let dbReady = null;
  async function tx(mode, fn, name = STORE) {
    const db = await (dbReady = dbReady || openDb());
    return new Promise((resolve, reject) => {
      const t = db.transaction(name, mode);
      const result = fn(t.objectStore(name));
      t.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  }
  const queued = () => tx("readonly", (s) => s.getAll()).then((items) =>
    (items || []).sort((a, b) => a.created.localeCompare(b.created)));
  const put = (item) => tx("readwrite", (s) => s.put(item));
  const remove = (key) => tx("readwrite", (s) => s.delete(key));
  const addPoint = (p) => tx("readwrite", (s) => s.add(p), POINTS);
  const allPoints = () => tx("readonly", (s) => s.getAll(), POINTS).then((p) => p || []);
  const clearPoints = () => tx("readwrite", (s) => s.clear(), POINTS);
  /* The last sent, newest first. */
  const sentLog = () => tx("readonly", (s) => s.getAll(), SENT).then((rows) => (rows || []).reverse());
  function logSent(row) {
    return tx("readwrite", (s) => {
      s.add(row);
      const keys = s.getAllKeys();
      keys.onsuccess = () => keys.result.slice(0, Math.max(0, keys.result.length - KEEP_SENT)).forEach((k) => s.delete(k));
    }, SENT);
  }

  function newKey() {
    if (self.crypto.randomUUID) return "field-" + self.crypto.randomUUID();
    const b = self.crypto.getRandomValues(new Uint8Array(16));
    return "field-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }
  function metres(m) {
    return m < 1000 ? `${Math.round(m)} 米` : `${(m / 1000).toFixed(2)} 公里`;
  }
  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000)), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    if (h) return `${h} 小时 ${String(m).padStart(2, "0")} 分`;
    return m ? `${m} 分 ${String(s % 60).padStart(2, "0")} 秒` : `${s % 60} 秒`;
  }

  function form(item) {
    const f = new FormData();
    if (item.kind === "event") {
      f.append("event", JSON.stringify(item.event));
    } else {
      f.append("action", item.action);
      f.append("version", String(item.version));
      if (item.note) f.append("note", item.note);
    }
    (item.photos || []).forEach((p, i) => f.append("photos", p, p.name || `photo-${i + 1}.jpg`));
    return f;
  }
  function sentResult(item, answer) {
    if (item.kind === "event") return `事件 ${answer.code}`;
    if (item.kind === "patrol") return `巡查已记录，${metres(answer.distance_m)}，${duration(answer.duration_s * 1000)}`;
    if (item.kind === "checkin") return answer.verified ? `签到有效（网格 ${answer.grid_code}）` : "签到未通过核验";
    return answer.state_label;
  }
  async function reason(res) {
    try {
      const j = await res.json();
      return j.detail_zh || j.detail || j.title || `错误 ${res.status}`;
    } catch (err) {
      return res.status === 403 ? "无权操作或安全校验码已失效" : `错误 ${res.status}`;
    }
  }

  /* Send what waits for ``who`` ({username, csrf}: /field/data's answer), in order, until the
     network or the server fails. Returns {sent, needLogin, waiting}. */
  async function sendAll(who) {
    let sent = 0, needLogin = false, waiting = 0;
    for (const item of await queued()) {
      if (item.error || item.username !== who.username) continue;  // another user's: sent under their log-in
      const json = item.kind === "patrol" || item.kind === "checkin";
      const url = {event: "/field/events", patrol: "/field/patrols", checkin: "/field/checkins"}[item.kind]
        || `/field/events/${encodeURIComponent(item.code)}/actions`;
      const headers = {"Idempotency-Key": item.key, "X-CSRF-Token": who.csrf};
      if (json) headers["Content-Type"] = "application/json";
      let res;
      try {
        res = await fetch(url, {method: "POST", body: json ? JSON.stringify(item.body) : form(item),
          credentials: "same-origin", redirect: "manual", headers});
      } catch (err) {
        waiting += 1;
        break;  // no signal: everything stays queued, in order
      }
      if (res.type === "opaqueredirect" || res.status === 401) { needLogin = true; waiting += 1; break; }
      if (res.ok) {
        const answer = await res.json();
        await remove(item.key);
        await logSent({at: new Date().toISOString(), label: item.label, result: sentResult(item, answer)});
        sent += 1;
      } else if (res.status >= 500 || res.status === 408 || res.status === 429) {
        waiting += 1;
        break;  // the server is busy or away: try again later
      } else {
        item.error = await reason(res);  // the server refused it: shown, kept until deleted
        await put(item);
      }
    }
    return {sent, needLogin, waiting};
  }
  function send(who) {
    const locks = self.navigator && self.navigator.locks;
    return locks ? locks.request(LOCK, () => sendAll(who)) : sendAll(who);
  }

  return {queued, put, remove, addPoint, allPoints, clearPoints, sentLog, newKey, metres, duration, send};
})();
