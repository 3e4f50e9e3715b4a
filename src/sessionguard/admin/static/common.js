/* sessionguard pages: helpers shared by admin.js and me.js.
 *
 * - DOM is built with createElement and textContent only: every string from
 *   the API (user agents, metadata, user ids, cities) is attacker-controlled,
 *   so nothing here ever assigns innerHTML.
 * - Every API call is same-origin with the session cookie; every write sends
 *   X-CSRF-Token from GET {api}/csrf (fetched once, refreshed once on a 403).
 * - Status messages go to the page's single aria-live region.
 */
(function () {
  "use strict";

  const API = document.body.dataset.api;
  const statusBox = document.getElementById("status");

  /** An API answer that was not 2xx: status, error code, message and the
   *  field it names (a 422 names the bad field). */
  class ApiError extends Error {
    constructor(status, data) {
      const error = (data && typeof data === "object" && data.error) || {};
      super(typeof error.message === "string" ? error.message : "The server answered " + status + ".");
      this.status = status;
      this.code = typeof error.code === "string" ? error.code : "";
      this.field = typeof error.field === "string" ? error.field : null;
    }
  }

  /** h("td", {class: "x", "data-label": "IP"}, ["text", node]) — attributes via
   *  setAttribute, children as text nodes or elements. */
  function h(tag, attrs, children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children || []) {
      if (child === null || child === undefined) continue;
      el.append(child instanceof Node ? child : String(child));  // strings become text nodes
    }
    return el;
  }

  function announce(message, kind) {
    statusBox.className = "status" + (kind ? " " + kind : "");
    statusBox.textContent = "";
    // A fresh text node after a tick makes screen readers repeat an identical message.
    window.setTimeout(function () { statusBox.textContent = message; }, 30);
  }

  let csrfToken = null;
  let ended = false;

  async function csrf(refresh) {
    if (csrfToken === null || refresh) {
      const data = await call("GET", "/csrf");
      csrfToken = data.csrf_token;
    }
    return csrfToken;
  }

  async function call(method, path, body, token) {
    const headers = {"Accept": "application/json"};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers["X-CSRF-Token"] = token;
    let response;
    try {
      response = await fetch(API + path, {
        method: method,
        headers: headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
        redirect: "manual",  // ON_INVALID=redirect:… must not hand us an HTML page as JSON
      });
    } catch (exc) {
      throw new ApiError(0, {error: {code: "network", message: "The server could not be reached."}});
    }
    if (response.type === "opaqueredirect" || response.status === 401) {
      let error = {};
      try { error = (await response.json()).error || {}; } catch (exc) { error = {}; }
      // error.reason: why the session ended, error.message says it in words
      sessionEnded(typeof error.reason === "string" ? error.message : null);
      throw new ApiError(401, {error: {code: "unauthenticated", message: "Your session has ended."}});
    }
    if (response.status === 204) return null;
    let data = null;
    try { data = await response.json(); } catch (exc) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  /** Call the JSON API; writes carry the CSRF token. */
  async function api(method, path, body) {
    if (method === "GET") return call(method, path, body);
    try {
      return await call(method, path, body, await csrf(false));
    } catch (exc) {
      if (!(exc instanceof ApiError) || exc.status !== 403 || !/csrf/i.test(exc.code + " " + exc.message)) throw exc;
      return call(method, path, body, await csrf(true));  // the token may have rotated with the session
    }
  }

  /** The session is over: controls off, and why (``message``) in the status
   *  region, unless ``quiet`` (expiry.js shows it in its own notice). */
  function sessionEnded(message, quiet) {
    if (ended) return;
    ended = true;
    document.querySelectorAll("main button, main input, main select").forEach(function (el) { el.disabled = true; });
    if (!quiet) announce((message ? message + " " : "Your session has ended. ") + "Reload the page to sign in again.", "error");
  }

  document.addEventListener("sessionguard:expiry", function (event) {
    if (event.detail && event.detail.state === "ended") sessionEnded(event.detail.message, true);
  });

  // -- formatting -----------------------------------------------------------

  const thisYear = new Date().getFullYear();
  const shortDate = new Intl.DateTimeFormat(undefined, {month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"});
  const longDate = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "short"});
  const dateFormat = {format: function (d) { return (d.getFullYear() === thisYear ? shortDate : longDate).format(d); }};
  const relative = new Intl.RelativeTimeFormat(undefined, {numeric: "auto", style: "short"});
  const STEPS = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"], [4.35, "week"], [12, "month"], [Infinity, "year"]];

  function ago(date) {
    let amount = (date.getTime() - Date.now()) / 1000;
    for (const [size, unit] of STEPS) {
      if (Math.abs(amount) < size) return relative.format(Math.round(amount), unit);
      amount /= size;
    }
    return "";
  }

  /** A <time> element: absolute date, or relative ("5 min. ago") with the date as title. */
  function time(iso, options) {
    if (!iso) return h("span", {class: "muted"}, [(options && options.none) || "never"]);
    const date = new Date(iso);
    if (isNaN(date.getTime())) return h("span", {}, [iso]);
    const absolute = dateFormat.format(date);
    const relativeText = options && options.relative ? ago(date) : "";
    return h("time", {datetime: iso, title: relativeText ? absolute : iso}, [relativeText || absolute]);
  }

  function displayName(session) {
    const name = session.metadata && session.metadata.name;
    return typeof name === "string" && name.trim() ? name : session.user_id;
  }

  function roles(session) {
    const list = session.metadata && session.metadata.roles;
    return Array.isArray(list) ? list.filter(function (r) { return typeof r === "string"; }) : [];
  }

  const PLATFORM_NAMES = {web: "Web", mobile: "Mobile", desktop: "Desktop"};

  function platformName(platform) {
    const name = String(platform || "");  // an extra kind (PLATFORMS): pages.platform_title
    return PLATFORM_NAMES[platform] || name.charAt(0).toUpperCase() + name.slice(1).replace(/_/g, " ");
  }

  // -- form errors ------------------------------------------------------------

  function clearErrors(form) {
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    form.querySelectorAll(".error").forEach(function (el) { el.textContent = ""; el.hidden = true; });
  }

  /** Which control an API error is about: the error's ``field``, else the
   *  longest control name the message starts with ("platforms.web.idle_timeout: …"). */
  function fieldOf(form, error) {
    const names = Array.from(form.elements).map(function (el) { return el.name; }).filter(Boolean);
    if (error.field && names.indexOf(error.field) >= 0) return error.field;
    const text = (error.field || "") + " " + error.message;
    let best = null;
    for (const name of names) {
      const found = text.indexOf(name) >= 0;
      if (found && (best === null || name.length > best.length)) best = name;
    }
    return best;
  }

  /** Show ``error`` next to the control it names (or in ``fallbackId``), and announce it. */
  function showError(form, error, fallbackId) {
    const name = error.status === 422 ? fieldOf(form, error) : null;
    const control = name ? form.elements.namedItem(name) : null;
    const message = error.message.replace(/^[\w.]+:\s*/, "");
    const label = control ? form.querySelector('label[for="' + control.id + '"]') : null;
    const where = control ? document.getElementById(control.id + "-error") : document.getElementById(fallbackId);
    if (where) { where.textContent = message; where.hidden = false; }
    if (control) {
      control.setAttribute("aria-invalid", "true");
      control.focus();
    }
    const legend = control && control.closest("fieldset.platform") ? control.closest("fieldset.platform").querySelector("legend") : null;
    const prefix = label ? (legend ? legend.textContent + " " : "") + label.textContent.toLowerCase() + ": " : "";
    announce(prefix + message, "error");
  }

  /** Run an async action; report any failure in the status region (a 401
   *  was reported by call() already). ``onError`` undoes optimistic UI. */
  function guarded(action, onError) {
    return action().catch(function (exc) {
      if (onError) onError(exc);
      if (exc instanceof ApiError && exc.status === 401) return;
      announce(exc instanceof ApiError ? exc.message : "Something went wrong: " + exc, "error");
    });
  }

  function permissions() {
    return (document.body.dataset.permissions || "").split(" ").filter(Boolean);
  }

  // Each ended session's reason in words, from the server (reasons.py): "admin" or "me" wording.
  const ENDED_WORDS = JSON.parse(document.body.dataset.endedWords || "{}");

  function endedWords(reason, who) {
    const words = ENDED_WORDS[who] || {};
    return Object.prototype.hasOwnProperty.call(words, reason) ? words[reason] : "Ended";
  }

  window.sessionguard = {
    API: API, ApiError: ApiError, h: h, api: api, announce: announce, time: time,
    displayName: displayName, roles: roles, platformName: platformName,
    clearErrors: clearErrors, showError: showError, permissions: permissions, guarded: guarded,
    sessionEnded: sessionEnded, endedWords: endedWords,
    sessionId: document.body.dataset.sessionId || null,
  };
})();
