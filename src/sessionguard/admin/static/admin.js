/* sessionguard admin page: session table, policy form, audit log and
 * "sign out everyone". Data comes from the JSON API; see common.js for the
 * rules every string obeys (textContent only). */
(function () {
  "use strict";

  const sg = window.sessionguard;
  const h = sg.h;
  const guarded = sg.guarded;
  const PAGE = 50;
  const canRevoke = sg.permissions().indexOf("sessions:revoke") >= 0;

  const EVENT_NAMES = {
    login: "Signed in", logout: "Signed out", idle_timeout: "Idle timeout",
    absolute_timeout: "Lifetime reached", evicted: "Evicted (session limit)", rejected: "Login refused",
    revoked: "Revoked", signout_all: "Everyone signed out", policy_changed: "Policy changed",
    settings_changed: "User timeouts changed", rate_limited: "Events not recorded (self-service limit)",
    roles_changed: "Roles changed", anomaly: "Client changed (possible hijack)",
    would_end: "Would have ended (report-only)", device_bound: "Bound to the device",
  };

  // -- sessions ---------------------------------------------------------------

  const table = document.getElementById("sessions-table");
  const tbody = table.tBodies[0];
  const headers = Array.from(table.tHead.rows[0].cells).filter(function (th) { return th.dataset.key; });
  const filters = document.getElementById("session-filters");
  const textFilter = document.getElementById("f-text");
  const moreButton = document.getElementById("sessions-more");
  const summary = document.getElementById("sessions-summary");
  const empty = document.getElementById("sessions-empty");
  const sortKey = document.getElementById("sort-key");
  const sortDir = document.getElementById("sort-dir");

  const state = {sessions: [], ended: new Set(), cursor: null, query: {}, sort: "created_at", dir: "descending"};

  const SORT_VALUES = {
    name: function (s) { return sg.displayName(s).toLowerCase(); },
    roles: function (s) { return sg.roles(s).join(", ").toLowerCase(); },
    platform: function (s) { return s.platform; },
    device: function (s) { return (s.device || "").toLowerCase(); },
    ip: function (s) { return s.ip || ""; },
    city: function (s) { return (s.city || "").toLowerCase(); },
    created_at: function (s) { return s.created_at || ""; },
    last_seen_at: function (s) { return s.last_seen_at || ""; },
    expires_at: function (s) { return s.expires_at || "9999"; },  // never expires: last
    status: function (s) { return statusText(s); },
  };

  function isEnded(s) {
    return s.status === "ended" || state.ended.has(s.id);
  }

  function statusText(s) {
    if (s.status === "ended") return "Ended: " + sg.endedWords(s.ended_reason, "admin");
    if (state.ended.has(s.id)) return "Signed out";
    return s.id === sg.sessionId ? "Active (this session)" : "Active";
  }

  function cell(label, children, className) {
    // One wrapper per cell: on phones the cell is a two-column grid (label, value).
    return h("td", {"data-label": label, class: className || null}, [h("div", {class: "cell"}, children)]);
  }

  function row(s) {
    const name = sg.displayName(s);
    const ended = isEnded(s);
    const roleList = sg.roles(s);
    const status = h("div", {class: "badges"}, [
      h("span", {class: ended ? "badge ended" : "badge ok"}, [s.status === "ended" ? "Ended" : ended ? "Signed out" : "Active"]),
      s.id === sg.sessionId && !ended ? h("span", {class: "badge"}, ["This session"]) : null,
      s.remember_me ? h("span", {class: "badge"}, ["Remembered"]) : null,
    ]);
    const reason = s.status === "ended" ? h("div", {class: "ended-reason"}, [
      sg.endedWords(s.ended_reason, "admin"), " ", h("span", {class: "muted"}, [sg.time(s.ended_at)]),
    ]) : null;
    const tr = h("tr", {"data-session-id": s.id, "data-user-id": s.user_id, "data-status": s.status || "active",
      class: ended ? "ended" : null}, [
      cell("User", [
        h("strong", {}, [name]),
        name !== s.user_id ? h("div", {class: "muted"}, [s.user_id]) : null,
      ]),
      cell("Roles", [roleList.length ? roleList.join(", ") : h("span", {class: "muted"}, ["none"])]),
      cell("Platform", [sg.platformName(s.platform)]),
      cell("Device", [h("span", {title: s.user_agent || null}, [s.device || "Unknown device"]),
        s.device_bound ? " " : null, s.device_bound ? h("span", {class: "badge", title: "Device-bound (DBSC): its cookie works only in the browser that holds its key"}, ["bound"]) : null]),
      cell("IP address", [s.ip || "unknown"], "nowrap"),
      cell("City", [s.city || h("span", {class: "muted"}, ["unknown"])]),
      cell("Login", [sg.time(s.created_at)], "nowrap"),
      cell("Last seen", [sg.time(s.last_seen_at, {relative: true})], "nowrap"),
      cell(s.status === "ended" ? "Ended" : "Expires", [sg.time(s.expires_at)], "nowrap"),
      cell("Status", [status, reason], "status-cell"),
    ]);
    if (canRevoke) {
      tr.append(h("td", {class: "row-actions", "data-label": "Actions"}, [h("div", {class: "row-buttons"}, [
        h("button", {
          type: "button", class: "small link-danger", "data-action": "end-session", disabled: ended,
          "aria-label": "Sign out the " + (s.device || "unknown device") + " session of " + name,
        }, ["Sign out"]),
        h("button", {
          type: "button", class: "small secondary", "data-action": "end-user",
          "aria-label": "Sign out every session of " + name,
        }, ["Sign out user"]),
      ])]));
    }
    tr.session = s;
    return tr;
  }

  function render() {
    const value = SORT_VALUES[state.sort];
    const sign = state.dir === "ascending" ? 1 : -1;
    const sorted = state.sessions.slice().sort(function (a, b) {
      const x = value(a), y = value(b);
      return x < y ? -sign : x > y ? sign : 0;
    });
    const needle = textFilter.value.trim().toLowerCase();
    let shown = 0;
    tbody.replaceChildren.apply(tbody, sorted.map(function (s) {
      const tr = row(s);
      const haystack = [sg.displayName(s), s.user_id, s.device, s.ip, s.city || "", s.user_agent].join(" ").toLowerCase();
      tr.hidden = needle !== "" && haystack.indexOf(needle) < 0;
      if (!tr.hidden) shown += 1;
      return tr;
    }));
    headers.forEach(function (th) {
      if (th.dataset.key === state.sort) th.setAttribute("aria-sort", state.dir);
      else th.removeAttribute("aria-sort");
    });
    sortKey.value = state.sort;
    sortDir.value = state.dir;
    empty.hidden = shown > 0;
    moreButton.hidden = state.cursor === null;
    const total = state.sessions.length;
    summary.textContent = (shown === total ? total + (total === 1 ? " session" : " sessions") : shown + " of " + total + " sessions")
      + " shown" + (state.cursor !== null ? "; more can be loaded." : ".");
  }

  async function loadSessions(more) {
    const params = new URLSearchParams({limit: String(PAGE)});
    for (const [key, value] of Object.entries(state.query)) if (value) params.set(key, value);
    if (more && state.cursor) params.set("cursor", state.cursor);
    const data = await sg.api("GET", "/sessions?" + params.toString());
    if (!more) { state.sessions = []; state.ended.clear(); }
    const known = new Set(state.sessions.map(function (s) { return s.id; }));
    for (const s of data.sessions) if (!known.has(s.id)) state.sessions.push(s);
    state.cursor = data.next_cursor || null;
    render();
    return data.sessions.length;
  }

  function sortBy(key, dir) {
    if (!dir) {
      const dates = key === "created_at" || key === "last_seen_at" || key === "expires_at";
      dir = state.sort === key ? (state.dir === "ascending" ? "descending" : "ascending") : (dates ? "descending" : "ascending");
    }
    state.sort = key;
    state.dir = dir;
    render();
  }

  headers.forEach(function (th) {
    th.querySelector("button").addEventListener("click", function () {
      sortBy(th.dataset.key);
      const title = th.textContent.trim();
      sg.announce("Sorted by " + title + ", " + state.dir + ".");
    });
  });
  sortKey.addEventListener("change", function () { sortBy(sortKey.value, sortDir.value); });
  sortDir.addEventListener("change", function () { sortBy(sortKey.value, sortDir.value); });
  textFilter.addEventListener("input", render);

  filters.addEventListener("submit", function (event) {
    event.preventDefault();
    state.query = {user_id: filters.elements.user_id.value.trim(), platform: filters.elements.platform.value,
      status: filters.elements.status.value === "active" ? "" : filters.elements.status.value};
    state.cursor = null;
    guarded(async function () {
      const count = await loadSessions(false);
      sg.announce(count === 0 ? "No sessions match." : "Sessions filtered.");
    });
  });
  document.getElementById("sessions-refresh").addEventListener("click", function () {
    guarded(async function () { await loadSessions(false); sg.announce("Sessions refreshed."); });
  });
  moreButton.addEventListener("click", function () {
    guarded(async function () {
      const count = await loadSessions(true);
      sg.announce("Loaded " + count + " more " + (count === 1 ? "session." : "sessions."));
    });
  });

  function focusAfter(tr) {
    // The pressed button is now disabled; keep keyboard users in the table.
    let next = tr.nextElementSibling;
    while (next && (next.hidden || !next.querySelector("button:not(:disabled)"))) next = next.nextElementSibling;
    (next ? next.querySelector("button:not(:disabled)") : document.getElementById("sessions-refresh")).focus();
  }

  tbody.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    const tr = button.closest("tr");
    const s = tr.session;
    const name = sg.displayName(s);
    button.disabled = true;
    guarded(async function () {
      if (button.dataset.action === "end-session") {
        let message = "Signed out the " + (s.device || "unknown device") + " session of " + name + ".";
        try {
          await sg.api("DELETE", "/sessions/" + encodeURIComponent(s.id));
        } catch (exc) {
          if (!(exc instanceof sg.ApiError) || exc.status !== 404) throw exc;
          message = "That session of " + name + " had already ended.";
        }
        state.ended.add(s.id);
        render();
        sg.announce(message, "ok");
      } else {
        const data = await sg.api("POST", "/users/" + encodeURIComponent(s.user_id) + "/signout", {});
        state.sessions.forEach(function (x) { if (x.user_id === s.user_id) state.ended.add(x.id); });
        render();
        const n = data && typeof data.ended === "number" ? data.ended : 0;
        sg.announce("Signed out " + n + (n === 1 ? " session" : " sessions") + " of " + name + ".", "ok");
      }
      const same = tbody.querySelector('tr[data-session-id="' + CSS.escape(s.id) + '"]');
      if (same) focusAfter(same);
      loadAudit(false).catch(function () { /* the table already says what happened */ });
    }, function () { button.disabled = false; });
  });

  // -- policy -----------------------------------------------------------------

  const policyForm = document.getElementById("policy-form");
  let policy = null;

  function fillPolicy(data) {
    policy = data;
    const el = policyForm.elements;
    for (const [platform, fields] of Object.entries(data.platforms || {})) {
      for (const [key, value] of Object.entries(fields)) {
        const input = el.namedItem("platforms." + platform + "." + key);
        if (input) input.value = value === null ? "" : String(value);
      }
    }
    el.namedItem("remember_me_period").value = data.remember_me_period || "";
    const total = data.max_sessions_total;
    el.namedItem("max_sessions_total").value = total === null || total === undefined ? "" : String(total);
    el.namedItem("on_limit").value = data.on_limit || "evict_oldest";
  }

  function limitValue(text) {
    const value = text.trim();
    if (value === "" || value.toLowerCase() === "unlimited") return null;
    return /^[0-9]+$/.test(value) ? Number(value) : value;  // anything else: the server names the field
  }

  function policyBody() {
    const el = policyForm.elements;
    const platforms = {};
    for (const platform of Object.keys(policy ? policy.platforms : {web: 1, mobile: 1, desktop: 1})) {
      const field = function (key) { return el.namedItem("platforms." + platform + "." + key).value.trim(); };
      platforms[platform] = {
        idle_timeout: field("idle_timeout"),
        absolute_timeout: field("absolute_timeout"),
        session_timeout: field("session_timeout"),
        max_sessions: limitValue(field("max_sessions")),
      };
    }
    return {
      platforms: platforms,
      remember_me_period: el.namedItem("remember_me_period").value.trim(),
      max_sessions_total: limitValue(el.namedItem("max_sessions_total").value),
      on_limit: el.namedItem("on_limit").value,
    };
  }

  async function loadPolicy() {
    fillPolicy(await sg.api("GET", "/policy"));
  }

  policyForm.addEventListener("submit", function (event) {
    event.preventDefault();
    sg.clearErrors(policyForm);
    guarded(async function () {
      try {
        fillPolicy(await sg.api("PUT", "/policy", policyBody()));
      } catch (exc) {
        if (exc instanceof sg.ApiError && exc.status !== 401) { sg.showError(policyForm, exc, "policy-error"); return; }
        throw exc;
      }
      sg.announce("Policy saved. It applies at once to every session.", "ok");
      loadAudit(false).catch(function () {});
    });
  });
  policyForm.addEventListener("reset", function (event) {
    event.preventDefault();
    sg.clearErrors(policyForm);
    if (policy) fillPolicy(policy);
    sg.announce("Policy form reset to the saved values.");
  });

  // -- audit log ----------------------------------------------------------------

  const auditFilters = document.getElementById("audit-filters");
  const auditBody = document.getElementById("audit-table").tBodies[0];
  const auditMore = document.getElementById("audit-more");
  const audit = {cursor: null, user: ""};

  function auditRow(e) {
    const muted = function (text) { return h("span", {class: "muted"}, [text]); };
    return h("tr", {"data-type": e.type}, [
      cell("Time", [sg.time(e.at)], "nowrap"),
      cell("Event", [EVENT_NAMES[e.type] || e.type]),
      cell("User", [e.user_id || muted("—")]),
      cell("Platform", [e.platform ? sg.platformName(e.platform) : muted("—")]),
      cell("Reason", [e.reason || muted("—")]),
      cell("Actor", [e.actor || muted("—")]),
      cell("Session", [e.session_id ? h("code", {title: e.session_id}, [e.session_id.slice(0, 10)]) : muted("—")]),
    ]);
  }

  async function loadAudit(more) {
    const params = new URLSearchParams({limit: String(PAGE)});
    if (audit.user) params.set("user_id", audit.user);
    if (more && audit.cursor) params.set("cursor", audit.cursor);
    const data = await sg.api("GET", "/audit?" + params.toString());
    const rows = data.events.map(auditRow);
    if (more) auditBody.append.apply(auditBody, rows);
    else auditBody.replaceChildren.apply(auditBody, rows);
    audit.cursor = data.next_cursor || null;
    auditMore.hidden = audit.cursor === null;
    document.getElementById("audit-empty").hidden = auditBody.rows.length > 0;
    return data.events.length;
  }

  auditFilters.addEventListener("submit", function (event) {
    event.preventDefault();
    audit.user = auditFilters.elements.user_id.value.trim();
    guarded(async function () {
      const count = await loadAudit(false);
      sg.announce(count === 0 ? "No events match." : "Audit log filtered.");
    });
  });
  document.getElementById("audit-refresh").addEventListener("click", function () {
    guarded(async function () { await loadAudit(false); sg.announce("Audit log refreshed."); });
  });
  auditMore.addEventListener("click", function () {
    guarded(async function () {
      const count = await loadAudit(true);
      sg.announce("Loaded " + count + " more " + (count === 1 ? "event." : "events."));
    });
  });

  // -- sign out everyone --------------------------------------------------------

  const allForm = document.getElementById("signout-all-form");
  if (allForm) {
    const phraseInput = allForm.elements.confirm;
    allForm.addEventListener("submit", function (event) {
      event.preventDefault();
      sg.clearErrors(allForm);
      const phrase = phraseInput.dataset.phrase;
      if (phraseInput.value.trim() !== phrase) {
        // Nothing is sent: the phrase is the whole point of this form.
        const error = document.getElementById("all-phrase-error");
        error.textContent = "Type " + phrase + " exactly (capital letters) to confirm. Nobody was signed out.";
        error.hidden = false;
        phraseInput.setAttribute("aria-invalid", "true");
        phraseInput.focus();
        sg.announce("Nobody was signed out: the confirmation phrase does not match.", "error");
        return;
      }
      const keep = allForm.elements.keep_mine.checked;
      guarded(async function () {
        await sg.api("POST", "/signout-all", {confirm: phrase, keep_mine: keep});
        phraseInput.value = "";
        if (!keep) {
          sg.announce("Everyone was signed out, including you. Reload the page to sign in again.", "ok");
          document.querySelectorAll("main button, main input, main select").forEach(function (el) { el.disabled = true; });
          return;
        }
        await Promise.all([loadSessions(false), loadAudit(false)]);
        sg.announce("Everyone was signed out except this session.", "ok");
      });
    });
  }

  // -- start ------------------------------------------------------------------

  guarded(function () { return Promise.all([loadSessions(false), loadPolicy(), loadAudit(false)]); })
    .then(function () { document.body.dataset.ready = "true"; });
})();
