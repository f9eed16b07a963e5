/* nurture.js — web push for a site, in one call.
 *
 *   <script src="https://NURTURE_API/nurture.js"></script>
 *   nurture.subscribe({subscriber: "the site's id", token: "from POST /v1/subscribers/{id}/token"})
 *
 * Call it when the site chooses (after a click, not on page load): it asks for permission,
 * registers the service worker, subscribes with the VAPID key, and registers the subscription
 * for the subscriber. `nurture.refresh(...)` (on any page load) re-registers if the browser
 * has rotated the subscription. The service worker must be served from the site's own origin
 * (copy /sw.js, or a one-line `importScripts("https://NURTURE_API/sw.js")`).
 */
(function (global) {
  "use strict";
  var script = document.currentScript;
  var api = script ? new URL(script.src).origin : global.location.origin;
  var STORED = "nurture.endpoint";

  function toBytes(base64url) {
    var padded = base64url + "====".slice(0, (4 - (base64url.length % 4)) % 4);
    var raw = atob(padded.replace(/-/g, "+").replace(/_/g, "/"));
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  async function publicKey() {
    var answer = await fetch(api + "/v1/push/public-key");
    if (!answer.ok) throw new Error("nurture: cannot read the public key (" + answer.status + ")");
    return (await answer.json()).public_key;
  }

  async function register(subscription, subscriber, token) {
    var answer = await fetch(api + "/v1/subscribers/" + encodeURIComponent(subscriber) +
                             "/push-subscriptions", {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Nurture-Token": token},
      body: JSON.stringify(subscription),
    });
    if (!answer.ok) {
      var detail = "";
      try { detail = (await answer.json()).detail; } catch (e) { /* not JSON */ }
      throw new Error("nurture: registration refused (" + answer.status + "): " + detail);
    }
    try { global.localStorage.setItem(STORED, subscription.endpoint); } catch (e) { /* private */ }
    return answer.json();
  }

  async function worker(path) {
    path = path || "/sw.js";
    if (api !== global.location.origin && path.indexOf("api=") < 0) {
      // the site's own worker (importScripts of ours) needs to know where the API is
      path += (path.indexOf("?") < 0 ? "?" : "&") + "api=" + encodeURIComponent(api);
    }
    var registration = await navigator.serviceWorker.register(path);
    await navigator.serviceWorker.ready;
    return registration;
  }

  async function tellWorker(registration, subscriber, token) {
    var target = registration.active || registration.waiting || registration.installing;
    if (target) target.postMessage({type: "nurture-identity", api: api,
                                    subscriber: subscriber, token: token});
  }

  var nurture = {
    api: api,
    supported: function () {
      return "serviceWorker" in navigator && "PushManager" in global && "Notification" in global;
    },
    subscribe: async function (options) {
      if (!nurture.supported()) return {status: "unsupported"};
      var permission = await Notification.requestPermission();
      if (permission !== "granted") return {status: permission};
      var registration = await worker(options.serviceWorker);
      await tellWorker(registration, options.subscriber, options.token);
      var subscription = await registration.pushManager.getSubscription();
      if (!subscription) {
        subscription = await registration.pushManager.subscribe({
          userVisibleOnly: true, applicationServerKey: toBytes(await publicKey())});
      }
      await register(subscription.toJSON(), options.subscriber, options.token);
      return {status: "subscribed", endpoint: subscription.endpoint};
    },
    refresh: async function (options) {
      if (!nurture.supported() || Notification.permission !== "granted") return {status: "idle"};
      var registration = await worker(options.serviceWorker);
      await tellWorker(registration, options.subscriber, options.token);
      var subscription = await registration.pushManager.getSubscription();
      if (!subscription) return {status: "none"};
      var known = null;
      try { known = global.localStorage.getItem(STORED); } catch (e) { /* private */ }
      if (known === subscription.endpoint) return {status: "current"};
      await register(subscription.toJSON(), options.subscriber, options.token);
      return {status: "registered", endpoint: subscription.endpoint};
    },
    register: register,
  };
  global.nurture = nurture;
})(window);
