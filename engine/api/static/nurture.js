/* nurture.js — web push for a site, in one call.
 *
 *   <script src="https://NURTURE_API/nurture.js"></script>
 *   (or a copy on the site's own origin: <script src="/nurture.js" data-api="https://NURTURE_API">)
 *   nurture.subscribe({subscriber: "the site's id", token: "from POST /v1/subscribers/{id}/token"})
 *
 * Call it when the site chooses (after a click, not on page load): it asks for permission,
 * registers the service worker, subscribes with the VAPID key, and registers the subscription
 * for the subscriber. `nurture.refresh(...)` (on any page load) re-registers if the browser
 * has rotated the subscription, and subscribes again if the subscription was made for another
 * VAPID key (the server's key was replaced: push services would refuse every message), and
 * registers it for whoever is logged in now. `nurture.unsubscribe(...)` turns this browser's
 * pushes off (a settings page, a log-out on a shared browser). The service worker must be
 * served from the site's own origin (copy /sw.js, or a one-line
 * `importScripts("https://NURTURE_API/sw.js")`).
 */
(function (global) {
  "use strict";
  var script = document.currentScript;
  // Where the API is: the script tag's `data-api` (a site whose content security policy
  // wants scripts from its own origin serves a copy of this file, and names the API so),
  // else the folder this file came from (`https://api.example`, or with a reverse proxy
  // that serves nurture under a path, `https://shop.example/nurture`).
  // A site that bundles this file into its own script sets `window.NURTURE_API` first.
  var named = global.NURTURE_API || (script && script.getAttribute("data-api"));
  var api = (named || (script && script.src ? new URL(".", script.src).href
                                            : global.location.origin)).replace(/\/+$/, "");
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

  function remembered(subscriber, endpoint) {
    // who the browser's subscription was last registered for: on a shared browser another
    // person logging in must register it for themselves (else the first one's pushes, with
    // their name in them, keep coming to the browser the other one uses)
    return JSON.stringify([subscriber, endpoint]);
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
    try { global.localStorage.setItem(STORED, remembered(subscriber, subscription.endpoint)); }
    catch (e) { /* private browsing */ }
    return answer.json();
  }

  async function unregister(endpoint, subscriber, token) {
    try {
      await fetch(api + "/v1/subscribers/" + encodeURIComponent(subscriber) +
                  "/push-subscriptions/remove", {
        method: "POST",
        headers: {"Content-Type": "application/json", "X-Nurture-Token": token},
        body: JSON.stringify({endpoint: endpoint}),
      });
    } catch (e) { /* the dispatcher removes it anyway when the push service says it is gone */ }
  }

  function madeFor(subscription, key) {
    // whether the subscription was made for this VAPID key (true when the browser does not say)
    var options = subscription.options;
    if (!options || !options.applicationServerKey) return true;
    var had = new Uint8Array(options.applicationServerKey);
    if (had.length !== key.length) return false;
    for (var i = 0; i < key.length; i++) if (had[i] !== key[i]) return false;
    return true;
  }

  async function stale(registration, key, options) {
    // the browser's subscription, or null; one made for another VAPID key (the server's key
    // was replaced) is dropped: push services refuse messages signed with the new key
    var subscription = await registration.pushManager.getSubscription();
    if (subscription && !madeFor(subscription, key)) {
      var endpoint = subscription.endpoint;
      await subscription.unsubscribe();
      await unregister(endpoint, options.subscriber, options.token);
      return {renewed: true, subscription: null};
    }
    return {renewed: false, subscription: subscription};
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
      var key = toBytes(await publicKey());
      var subscription = (await stale(registration, key, options)).subscription;
      if (!subscription) {
        subscription = await registration.pushManager.subscribe({
          userVisibleOnly: true, applicationServerKey: key});
      }
      await register(subscription.toJSON(), options.subscriber, options.token);
      return {status: "subscribed", endpoint: subscription.endpoint};
    },
    refresh: async function (options) {
      if (!nurture.supported() || Notification.permission !== "granted") return {status: "idle"};
      var registration = await worker(options.serviceWorker);
      await tellWorker(registration, options.subscriber, options.token);
      var key = toBytes(await publicKey());
      var found = await stale(registration, key, options);
      if (found.renewed) {
        var renewed = await registration.pushManager.subscribe({
          userVisibleOnly: true, applicationServerKey: key});
        await register(renewed.toJSON(), options.subscriber, options.token);
        return {status: "renewed", endpoint: renewed.endpoint};
      }
      var subscription = found.subscription;
      if (!subscription) return {status: "none"};
      var known = null;
      try { known = global.localStorage.getItem(STORED); } catch (e) { /* private */ }
      if (known === remembered(options.subscriber, subscription.endpoint)) {
        return {status: "current"};
      }
      await register(subscription.toJSON(), options.subscriber, options.token);
      return {status: "registered", endpoint: subscription.endpoint};
    },
    unsubscribe: async function (options) {
      // "turn notifications off" in the site's settings, or a log-out on a shared browser:
      // no more pushes for this subscriber to this browser, until `subscribe` again
      if (!nurture.supported()) return {status: "unsupported"};
      var registration = await navigator.serviceWorker.getRegistration();
      var subscription = registration && await registration.pushManager.getSubscription();
      if (!subscription) return {status: "none"};
      var endpoint = subscription.endpoint;
      await unregister(endpoint, options.subscriber, options.token);
      await subscription.unsubscribe();
      try { global.localStorage.removeItem(STORED); } catch (e) { /* private browsing */ }
      return {status: "unsubscribed", endpoint: endpoint};
    },
    register: register,
  };
  global.nurture = nurture;
})(window);
