/* The phone app's service worker (served at /sw.js, scope /field).
   - The app's shell (the page, its style sheets, script, manifest, icons) is kept at install.
   - The page and /field/data: the network first, the last answer kept when there is no signal.
   - Assets: from the cache, refreshed from the network in the background.
   - Nothing else is touched: posts go to the network (the page queues them in IndexedDB
     when they fail), other console pages are not controlled (the scope is /field).
   - Background Sync (where the browser has it): the page registers "gridgeo-outbox" when it
     queues something; when the signal returns, even with the page closed, the browser wakes
     this worker, which sends the queue with outbox.js (the page's own sender, under one lock)
     as the logged-in user (/field/data gives the CSRF token), and tells open pages. */
"use strict";
importScripts("/static/field/outbox.js");
const CACHE = "gridgeo-field-v3";
const SHELL = ["/field", "/field/data", "/field/manifest.webmanifest", "/static/console.css",
  "/static/field/field.css", "/static/field/field.js", "/static/field/outbox.js", "/static/field/icon-192.png",
  "/static/field/icon-512.png"];
const FRESH_FIRST = new Set(["/field", "/field/data"]);

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => Promise.all(SHELL.map((url) =>
    fetch(url, {credentials: "same-origin", redirect: "manual"}).then((res) => {
      if (res.ok && res.type === "basic") return cache.put(url, res);
      return undefined;  // not logged in yet: kept at the first visit instead
    }).catch(() => undefined)))).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(
    keys.filter((k) => k.startsWith("gridgeo-field-") && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

async function freshFirst(request, path) {
  const cache = await caches.open(CACHE);
  try {
    const res = await fetch(request);
    if (res.ok && res.type === "basic" && !res.redirected) await cache.put(path, res.clone());
    return res;
  } catch (err) {
    const kept = await cache.match(path);
    if (kept) return kept;
    throw err;
  }
}

async function cacheFirst(request, path) {
  const cache = await caches.open(CACHE);
  const kept = await cache.match(path);
  const refresh = fetch(request).then(async (res) => {
    if (res.ok && res.type === "basic") await cache.put(path, res.clone());
    return res;
  });
  if (kept) {
    refresh.catch(() => undefined);
    return kept;
  }
  return refresh;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (FRESH_FIRST.has(url.pathname)) {
    event.respondWith(freshFirst(request, url.pathname));
  } else if (SHELL.includes(url.pathname)) {
    event.respondWith(cacheFirst(request, url.pathname));
  }
});

async function syncOutbox() {
  // no signal yet: fetch throws, and the browser tries this sync again later
  const res = await fetch("/field/data", {credentials: "same-origin", redirect: "manual"});
  if (!res.ok || res.type !== "basic") return;  // logged out: sent by the page after the log-in
  const who = await res.json();
  const result = await self.GGOutbox.send(who);
  if (result.sent) {
    const pages = await self.clients.matchAll({type: "window"});
    pages.forEach((page) => page.postMessage({type: "gridgeo-outbox-sent", sent: result.sent}));
  }
  if (result.waiting && !result.needLogin) throw new Error("the outbox still waits");  // retried later
}

self.addEventListener("sync", (event) => {
  if (event.tag === "gridgeo-outbox") event.waitUntil(syncOutbox());
});
