/* sessionguard expiry warning: two minutes before the session would end for
 * inactivity, a notice with a "Stay signed in" button; once it has ended,
 * why (as the server says it). For the admin pages and for any app:
 *
 *   <script src="/_sessionguard/static/expiry.js" defer></script>
 *
 * Options, as data-* attributes of that script tag:
 *   data-warn="120"        seconds of warning before the idle expiry
 *   data-sign-in="/login"  a "Sign in again" link once the session has ended
 *   data-style="none"      no built-in styling (style .sg-expiry yourself)
 *
 * How it knows: every response to a request with a session carries
 * Session-Expires. The script reads it from GET <admin>/api/csrf, sent with
 * X-Session-Passive: 1 so that looking does not keep the session alive; the
 * button sends the same request without that header: an active request,
 * which extends the session. It looks again whenever the warning is due (the
 * user may have been active in another tab), every 15 s while it shows, when
 * the tab becomes visible, and at the expiry itself, when the server's answer
 * (401 with error.reason) says why the session ended. Nothing is decided on
 * the client: the server's clock rules, the script only estimates the skew
 * from the Date header.
 *
 * Events on document, for the app: "sessionguard:expiry" with detail
 * {state: "warning" | "active" | "ended", expires: Date | null,
 *  reason: string | null, message: string | null}.
 *
 * Strict CSP friendly: a file of its own, no inline script, no style
 * attribute (styles are set through the CSSOM), text through textContent. */
(function () {
  "use strict";

  const script = document.currentScript;
  if (!script) return;
  const base = new URL(script.src, location.href).pathname.replace(/\/static\/expiry\.js$/, "");
  const PROBE = base + "/api/csrf";
  const WARN_MS = Math.max(Number(script.dataset.warn) || 120, 10) * 1000;
  const SIGN_IN = script.dataset.signIn || null;
  const STYLED = script.dataset.style !== "none";
  const LONGEST_WAIT = 60 * 60 * 1000;  // look at least hourly (and setTimeout overflows past 24.8 days)
  const WHILE_WARNING = 15 * 1000;
  const RETRY = 10 * 1000;
  const SKEW = 30 * 1000;  // a smaller clock difference than this is the Date header's rounding

  let expires = null;  // the server's Session-Expires, ms; null: never
  let offset = 0;  // the server's clock minus ours, ms
  let timer = null;
  let ticker = null;
  let ended = false;
  let box = null;
  let countdown = null;
  let message = null;
  let button = null;

  function now() { return Date.now() + offset; }

  function emit(state, reason, text) {
    document.dispatchEvent(new CustomEvent("sessionguard:expiry", {detail: {
      state: state, expires: expires === null ? null : new Date(expires), reason: reason || null,
      message: text || null,
    }}));
  }

  /** Ask the server; "ok", "ended" or "failed". ``active``: the request counts as use. */
  async function look(active) {
    const headers = {"Accept": "application/json"};
    if (!active) headers["X-Session-Passive"] = "1";
    let response;
    try {
      response = await fetch(PROBE, {headers: headers, credentials: "same-origin", cache: "no-store",
                                      redirect: "manual"});
    } catch (exc) {
      return "failed";
    }
    if (response.type === "opaqueredirect" || response.status === 401) {
      let error = {};
      try { error = (await response.json()).error || {}; } catch (exc) { error = {}; }
      end(typeof error.reason === "string" ? error.reason : null,
          typeof error.reason === "string" && typeof error.message === "string" ? error.message : null);
      return "ended";
    }
    if (!response.ok) return "failed";
    const date = Date.parse(response.headers.get("Date") || "");
    const skew = isNaN(date) ? 0 : date - Date.now();
    offset = Math.abs(skew) > SKEW ? skew : 0;
    const header = response.headers.get("Session-Expires");
    const parsed = header ? Date.parse(header) : NaN;
    expires = isNaN(parsed) ? null : parsed;
    return "ok";
  }

  async function refresh() {
    clearTimeout(timer);
    if (ended) return;
    const result = await look(false);
    if (result === "ended") return;
    if (result === "failed") { timer = setTimeout(refresh, RETRY); return; }
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (ended) return;
    if (expires === null) { hide(); timer = setTimeout(refresh, LONGEST_WAIT); return; }
    const left = expires - now();
    if (left > WARN_MS) {
      hide();
      timer = setTimeout(refresh, Math.min(left - WARN_MS, LONGEST_WAIT));
      return;
    }
    warn();
    // look again soon (another tab may have used the session), and just after the expiry
    timer = setTimeout(refresh, Math.min(WHILE_WARNING, Math.max(left, 0) + 1000));
  }

  // -- the notice ------------------------------------------------------------------

  function style(el, rules) {
    if (STYLED) for (const [name, value] of Object.entries(rules)) el.style.setProperty(name, value);
  }

  function build() {
    box = document.createElement("div");
    box.className = "sg-expiry";
    box.hidden = true;
    message = document.createElement("p");
    message.className = "sg-expiry-message";
    message.setAttribute("role", "alert");
    countdown = document.createElement("p");
    countdown.className = "sg-expiry-countdown";
    button = document.createElement("button");
    button.type = "button";
    button.className = "sg-expiry-stay";
    button.textContent = "Stay signed in";
    button.addEventListener("click", stay);
    box.append(message, countdown, button);
    style(box, {
      position: "fixed", left: "1rem", right: "1rem", bottom: "1rem", margin: "0 auto", "max-width": "32rem",
      padding: "0.75rem 1rem", "z-index": "2147483647", background: "#fff8e1", color: "#1f2328",
      border: "2px solid #8a5a00", "border-radius": "6px", "box-shadow": "0 4px 16px rgba(0,0,0,.25)",
      font: "16px/1.5 system-ui, sans-serif",
    });
    for (const p of [message, countdown]) style(p, {margin: "0 0 0.5rem"});
    style(button, {font: "inherit", padding: "0.35rem 1rem", cursor: "pointer"});
    document.body.append(box);
  }

  function clock(ms) {
    const seconds = Math.max(0, Math.ceil(ms / 1000));
    const minutes = Math.floor(seconds / 60);
    return minutes + ":" + String(seconds % 60).padStart(2, "0");
  }

  function tick() {
    if (expires !== null) countdown.textContent = "Time left: " + clock(expires - now()) + ".";
  }

  function warn() {
    if (!box) build();
    if (box.hidden || box.dataset.state !== "warning") {
      box.dataset.state = "warning";
      box.hidden = false;
      button.hidden = false;
      // set after showing, so that the alert is announced
      message.textContent = "Your session is about to end because you have been inactive.";
      emit("warning");
    }
    tick();
    clearInterval(ticker);
    ticker = setInterval(tick, 1000);
  }

  function hide() {
    clearInterval(ticker);
    if (box && !box.hidden) {
      box.hidden = true;
      box.dataset.state = "active";
      emit("active");
    }
  }

  async function stay() {
    button.disabled = true;
    const result = await look(true);
    button.disabled = false;
    if (result === "ok") {
      schedule();
    } else if (result === "failed") {
      countdown.textContent = "The server could not be reached; try again.";
    }
  }

  function end(reason, text) {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    clearInterval(ticker);
    if (!box) build();
    box.dataset.state = "ended";
    box.hidden = false;
    button.hidden = true;
    const shown = text || "Your session has ended.";
    message.textContent = shown;
    countdown.replaceChildren();
    if (SIGN_IN) {
      const link = document.createElement("a");
      link.href = SIGN_IN;
      link.textContent = "Sign in again";
      countdown.append(link);
    } else {
      countdown.textContent = "Reload the page to sign in again.";
    }
    emit("ended", reason, shown);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") refresh();
  });
  refresh();
})();
