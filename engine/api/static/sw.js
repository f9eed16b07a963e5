/* nurture service worker: shows pushes, reports receipts and clicks, follows rotations.
 *
 * A push carries JSON: {title, body, url, icon, tag, token}. The notification shows title,
 * body and icon; a click opens `url` and reports `push_click` (with the signed token) to the
 * nurture API; every push also reports `push_received`. When the browser rotates the
 * subscription, the new one is registered for the same subscriber.
 */
"use strict";
var API = new URL(self.location.href).searchParams.get("api") || self.location.origin;
var IDENTITY = "https://nurture.invalid/identity";

function report(kind, token) {
  if (!token) return Promise.resolve();
  return fetch(API + "/v1/track/" + kind, {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({token: token}),
  }).catch(function () { /* offline: the click still opens the page */ });
}

self.addEventListener("push", function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; }
  catch (e) { data = {title: event.data ? event.data.text() : ""}; }
  var options = {
    body: data.body || undefined, icon: data.icon || undefined, tag: data.tag || undefined,
    data: {url: data.url || null, token: data.token || null},
  };
  event.waitUntil(Promise.all([
    self.registration.showNotification(data.title || "", options),
    report("push-received", data.token),
  ]));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var data = event.notification.data || {};
  var opening = data.url ? self.clients.openWindow(data.url).catch(function () {}) : null;
  event.waitUntil(Promise.all([opening, report("push-click", data.token)]));
});

self.addEventListener("message", function (event) {
  if (!event.data || event.data.type !== "nurture-identity") return;
  event.waitUntil(caches.open("nurture").then(function (cache) {
    return cache.put(IDENTITY, new Response(JSON.stringify(event.data)));
  }));
});

self.addEventListener("pushsubscriptionchange", function (event) {
  event.waitUntil((async function () {
    var cache = await caches.open("nurture");
    var stored = await cache.match(IDENTITY);
    if (!stored) return;
    var identity = await stored.json();
    var subscription = event.newSubscription ||
      await self.registration.pushManager.subscribe(event.oldSubscription.options);
    await fetch(identity.api + "/v1/subscribers/" + encodeURIComponent(identity.subscriber) +
                "/push-subscriptions", {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Nurture-Token": identity.token},
      body: JSON.stringify(subscription.toJSON()),
    });
  })());
});

self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });
