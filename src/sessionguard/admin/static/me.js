/* sessionguard self-service page: the caller's own sessions ("this device"
 * marked), sign out one or all others, and own idle timeouts when allowed.
 * See common.js for the rules every string obeys (textContent only). */
(function () {
  "use strict";

  const sg = window.sessionguard;
  const h = sg.h;
  const guarded = sg.guarded;
  const list = document.getElementById("my-sessions");
  const othersButton = document.getElementById("signout-others");
  let sessions = [];

  function item(s) {
    const device = s.device || "Unknown device";
    const where = [s.city, s.ip].filter(Boolean).join(" · ");
    const detail = function (term, value) { return [h("dt", {}, [term]), h("dd", {}, [value])]; };
    const heading = h("h3", {}, [device]);
    const li = h("li", {"data-session-id": s.id, class: s.current ? "current" : null}, [
      h("div", {class: "badges"}, [
        s.current ? h("span", {class: "badge ok"}, ["This device"]) : null,
        h("span", {class: "badge"}, [sg.platformName(s.platform)]),
        s.remember_me ? h("span", {class: "badge"}, ["Remembered"]) : null,
        s.device_bound ? h("span", {class: "badge", title: "Its cookie works only in the browser that holds its key"}, ["Device-bound"]) : null,
      ]),
      heading,
      h("dl", {}, [].concat(
        detail("Where", where || "unknown"),
        detail("Signed in", sg.time(s.created_at)),
        detail("Last seen", sg.time(s.last_seen_at, {relative: true})),
        detail("Expires", sg.time(s.expires_at)),
      )),
    ]);
    if (!s.current) {
      li.append(h("div", {class: "card-actions"}, [
        h("button", {type: "button", class: "small link-danger", "aria-label": "Sign out " + device + (where ? " (" + where + ")" : "")}, ["Sign out"]),
      ]));
    }
    li.session = s;
    return li;
  }

  function render() {
    // This device first, then newest login first.
    const ordered = sessions.slice().sort(function (a, b) {
      if (a.current !== b.current) return a.current ? -1 : 1;
      return a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0;
    });
    list.replaceChildren.apply(list, ordered.map(item));
    const others = sessions.filter(function (s) { return !s.current; }).length;
    document.getElementById("my-empty").hidden = others > 0;
    othersButton.disabled = others === 0;
  }

  // A session that ended in the last day: why, in words, and when.
  function endedItem(s) {
    const where = [s.city, s.ip].filter(Boolean).join(" · ");
    const detail = function (term, value) { return [h("dt", {}, [term]), h("dd", {}, [value])]; };
    return h("li", {"data-session-id": s.id, "data-reason": s.ended_reason, class: "ended"}, [
      h("div", {class: "badges"}, [
        h("span", {class: "badge ended"}, ["Ended"]),
        h("span", {class: "badge"}, [sg.platformName(s.platform)]),
      ]),
      h("h3", {}, [s.device || "Unknown device"]),
      h("p", {class: "ended-reason"}, [sg.endedWords(s.ended_reason, "me")]),
      h("dl", {}, [].concat(
        detail("Where", where || "unknown"),
        detail("Signed in", sg.time(s.created_at)),
        detail("Ended", sg.time(s.ended_at)),
      )),
    ]);
  }

  async function load() {
    const data = await sg.api("GET", "/me/sessions");
    sessions = data.sessions;
    render();
    await loadEnded();
  }

  async function loadEnded() {
    const ended = await sg.api("GET", "/me/sessions?status=ended");
    const endedList = document.getElementById("my-ended");
    endedList.replaceChildren.apply(endedList, ended.sessions.map(endedItem));
    document.getElementById("my-ended-empty").hidden = ended.sessions.length > 0;
  }

  list.addEventListener("click", function (event) {
    const button = event.target.closest("button");
    if (!button || button.disabled) return;
    const li = button.closest("li");
    const s = li.session;
    button.disabled = true;
    guarded(async function () {
      let message = "Signed out " + (s.device || "the device") + ".";
      try {
        await sg.api("DELETE", "/me/sessions/" + encodeURIComponent(s.id));
      } catch (exc) {
        if (!(exc instanceof sg.ApiError) || exc.status !== 404) throw exc;
        message = "That session had already ended.";
      }
      const next = li.nextElementSibling || li.previousElementSibling;
      sessions = sessions.filter(function (x) { return x.id !== s.id; });
      const nextId = next ? next.dataset.sessionId : null;
      render();
      await loadEnded();
      // Keep keyboard focus near where it was: the neighbouring card's button, else the page actions.
      const target = nextId ? list.querySelector('li[data-session-id="' + CSS.escape(nextId) + '"] button') : null;
      (target || document.getElementById("my-refresh")).focus();
      sg.announce(message, "ok");
    }, function () { button.disabled = false; });
  });

  othersButton.addEventListener("click", function () {
    othersButton.disabled = true;
    guarded(async function () {
      const data = await sg.api("POST", "/me/signout-others", {});
      await load();
      const n = data && typeof data.ended === "number" ? data.ended : 0;
      document.getElementById("my-refresh").focus();
      sg.announce("Signed out " + n + " other " + (n === 1 ? "session." : "sessions."), "ok");
    }, function () { othersButton.disabled = false; });
  });

  const allButton = document.getElementById("signout-all");
  allButton.addEventListener("click", function () {
    allButton.disabled = true;
    guarded(async function () {
      const data = await sg.api("POST", "/me/signout-all", {});
      const n = data && typeof data.ended === "number" ? data.ended : 0;
      sg.sessionEnded("Signed out of " + n + (n === 1 ? " session" : " sessions") + ", this one included.");
    }, function () { allButton.disabled = false; });
  });

  document.getElementById("my-refresh").addEventListener("click", function () {
    guarded(async function () { await load(); sg.announce("Sessions refreshed."); });
  });

  // -- own idle timeouts --------------------------------------------------------

  const timeouts = document.getElementById("timeouts");
  const form = document.getElementById("timeouts-form");

  const UNITS = {s: "second", m: "minute", h: "hour", d: "day"};

  /** "90m" -> "90 minutes", "never" -> "Never". */
  function label(value) {
    if (value === "never") return "Never";
    const m = /^(\d+)([smhd])$/.exec(value);
    if (!m) return value;
    return m[1] + " " + UNITS[m[2]] + (m[1] === "1" ? "" : "s");
  }

  function fillSettings(data) {
    timeouts.hidden = !data.allowed;
    const choices = Array.isArray(data.choices) ? data.choices : [];
    for (const [platform, value] of Object.entries(data.idle_timeout || {})) {
      const select = form.elements.namedItem("idle_timeout." + platform);
      if (!select) continue;
      const offered = value === null || choices.indexOf(value) >= 0 ? choices : choices.concat([value]);
      const options = [h("option", {value: ""}, ["Administrator's setting"])].concat(
        offered.map(function (c) { return h("option", {value: c}, [label(c)]); }));
      select.replaceChildren.apply(select, options);
      select.value = value === null ? "" : String(value);
    }
  }

  async function loadSettings() {
    fillSettings(await sg.api("GET", "/me/settings"));
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sg.clearErrors(form);
    const idle = {};
    Array.from(form.elements).forEach(function (el) {
      if (el.name && el.name.indexOf("idle_timeout.") === 0) {
        idle[el.name.slice("idle_timeout.".length)] = el.value === "" ? null : el.value;
      }
    });
    guarded(async function () {
      try {
        fillSettings(await sg.api("PUT", "/me/settings", {idle_timeout: idle}));
      } catch (exc) {
        if (exc instanceof sg.ApiError && exc.status !== 401) { sg.showError(form, exc, "timeouts-error"); return; }
        throw exc;
      }
      sg.announce("Your idle timeouts were saved.", "ok");
    });
  });

  guarded(function () { return Promise.all([load(), loadSettings()]); })
    .then(function () { document.body.dataset.ready = "true"; });
})();
