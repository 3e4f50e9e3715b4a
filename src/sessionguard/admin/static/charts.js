/* sessionguard admin page: the activity charts (active sessions per platform,
 * endings per reason over the last 24 hours), drawn here as SVG from
 * GET {api}/stats. No library, no inline style (the page's CSP forbids it):
 * shapes get presentation attributes, colours come from style.css classes. */
(function () {
  "use strict";

  const sg = window.sessionguard;
  const h = sg.h;
  const NS = "http://www.w3.org/2000/svg";
  const root = document.getElementById("charts");
  if (!root) return;

  const REASON_NAMES = {
    idle_timeout: "Idle timeout", absolute_timeout: "Lifetime reached", evicted: "Evicted (limit)",
    revoked: "Revoked", signed_out: "Signed out", signout_all: "Sign-out of everyone",
  };
  const hourFormat = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit"});
  const number = new Intl.NumberFormat();
  const RETRIES = 10;  // while the store has no count of active sessions yet

  /** An SVG element: attributes via setAttribute, children as nodes or text. */
  function svg(tag, attrs, children) {
    const el = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) el.setAttribute(name, String(value));
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function plural(n, one, many) { return number.format(n) + " " + (n === 1 ? one : many); }

  /** The largest of ``values``, rounded up to a tidy axis maximum (1, 2, 4, 6, 8 × 10^k),
   *  whose half is a whole number from 2 on. */
  function niceMax(values) {
    const top = Math.max(1, ...values);
    const power = Math.pow(10, Math.floor(Math.log10(top)));
    for (const step of [1, 2, 4, 6, 8, 10]) if (top <= step * power) return step * power;
    return 10 * power;
  }

  // -- active sessions per platform: horizontal bars -------------------------------

  function drawActive(active) {
    const box = document.getElementById("chart-active");
    const note = document.getElementById("chart-active-note");
    if (!active) {
      box.replaceChildren();
      note.textContent = "Counting the active sessions…";
      return false;
    }
    const entries = Object.entries(active.platforms);
    const total = entries.reduce(function (sum, e) { return sum + e[1]; }, 0);
    const max = niceMax(entries.map(function (e) { return e[1]; }));
    // drawn at the width it is shown at, so that its text stays the page's size
    const row = 34, left = 74, right = 56;
    const width = Math.max(120, (box.clientWidth || 360) - left - right);
    const height = entries.length * row + 8;
    const title = "Active sessions per platform: " + entries.map(function (e) {
      return sg.platformName(e[0]) + " " + number.format(e[1]);
    }).join(", ") + ".";
    const chart = svg("svg", {viewBox: "0 0 " + (left + width + right) + " " + height, role: "img",
                              "aria-label": title, class: "chart-svg"});
    entries.forEach(function (entry, i) {
      const [platform, count] = entry;
      const y = i * row + 4;
      const length = count === 0 ? 0 : Math.max(2, Math.round(width * count / max));
      chart.append(
        svg("text", {x: left - 10, y: y + row / 2, class: "chart-label", "text-anchor": "end",
                     "dominant-baseline": "middle"}, [sg.platformName(platform)]),
        svg("rect", {x: left, y: y + 5, width: width, height: row - 10, rx: 3, class: "chart-track"}),
        svg("rect", {x: left, y: y + 5, width: length, height: row - 10, rx: 3,
                     class: "chart-bar platform-" + platform, "data-platform": platform,
                     "data-count": count},
            [svg("title", {}, [sg.platformName(platform) + ": " + plural(count, "session", "sessions")])]),
        svg("text", {x: left + length + 8, y: y + row / 2, class: "chart-value", "dominant-baseline": "middle"},
            [number.format(count)]),
      );
    });
    box.replaceChildren(chart);
    note.replaceChildren(plural(total, "active session", "active sessions") + ", counted ",
                         sg.time(active.counted_at, {relative: true}), ".");
    return true;
  }

  // -- endings per reason and hour: stacked columns -----------------------------------

  function drawEndings(endings) {
    const box = document.getElementById("chart-endings");
    const reasons = Object.keys(endings.reasons).filter(function (r) { return REASON_NAMES[r]; });
    const hours = endings.hours;
    const totals = hours.map(function (_, i) {
      return reasons.reduce(function (sum, r) { return sum + endings.reasons[r][i]; }, 0);
    });
    const all = totals.reduce(function (a, b) { return a + b; }, 0);
    const max = niceMax(totals);
    const left = 44, top = 10, plotH = 180, bottom = 28;
    const plotW = Math.max(240, (box.clientWidth || 680) - left - 8);  // the width it is shown at
    const column = plotW / hours.length, barW = Math.max(4, column - 6);
    const byReason = reasons.map(function (r) {
      const n = endings.reasons[r].reduce(function (a, b) { return a + b; }, 0);
      return [r, n];
    }).filter(function (e) { return e[1] > 0; });
    const label = all === 0 ? "No session ended in the last 24 hours." :
      plural(all, "ending", "endings") + " in the last 24 hours: " + byReason.map(function (e) {
        return REASON_NAMES[e[0]].toLowerCase() + " " + number.format(e[1]);
      }).join(", ") + ".";
    const chart = svg("svg", {viewBox: "0 0 " + (left + plotW + 8) + " " + (top + plotH + bottom),
                              role: "img", "aria-label": label, class: "chart-svg"});
    for (const fraction of max > 1 ? [0, 0.5, 1] : [0, 1]) {  // grid lines and the y axis's values
      const y = top + plotH - plotH * fraction;
      chart.append(
        svg("line", {x1: left, x2: left + plotW, y1: y, y2: y, class: fraction ? "chart-grid" : "chart-axis"}),
        svg("text", {x: left - 8, y: y, class: "chart-tick", "text-anchor": "end", "dominant-baseline": "middle"},
            [number.format(max * fraction)]),
      );
    }
    hours.forEach(function (iso, i) {
      const x = left + i * column + (column - barW) / 2;
      const start = new Date(iso);
      const end = new Date(start.getTime() + 3600 * 1000);
      const when = hourFormat.format(start) + "–" + hourFormat.format(end);
      let y = top + plotH;
      const group = svg("g", {"data-hour": iso, "data-total": totals[i]});
      reasons.forEach(function (r) {
        const n = endings.reasons[r][i];
        if (!n) return;
        const height = plotH * n / max;
        y -= height;
        group.append(svg("rect", {x: x, y: y, width: barW, height: height, class: "chart-bar reason-" + r,
                                  "data-reason": r, "data-count": n},
                         [svg("title", {}, [when + ": " + number.format(n) + " " + REASON_NAMES[r].toLowerCase()])]));
      });
      chart.append(group);
      const every = plotW < 400 ? 12 : 6;  // hour labels that fit
      if (i % every === 0 || i === hours.length - 1) {
        chart.append(svg("text", {x: x + barW / 2, y: top + plotH + 18, class: "chart-tick", "text-anchor": "middle"},
                         [i === hours.length - 1 ? "now" : hourFormat.format(start)]));
      }
    });
    box.replaceChildren(chart);
    const legend = document.getElementById("chart-endings-legend");
    legend.replaceChildren.apply(legend, reasons.map(function (r) {
      const n = endings.reasons[r].reduce(function (a, b) { return a + b; }, 0);
      return h("li", {}, [h("span", {class: "swatch reason-" + r, "aria-hidden": "true"}),
                          REASON_NAMES[r] + " (" + number.format(n) + ")"]);
    }));
    const note = document.getElementById("chart-endings-note");
    note.textContent = label + (endings.complete ? "" : " The oldest hours may be incomplete: the audit log was "
      + "read only up to its limit.") + " A sign-out of everyone counts once, however many sessions it ended.";
  }

  // -- loading ----------------------------------------------------------------------------

  async function load(attempt) {
    const data = await sg.api("GET", "/stats");
    drawEndings(data.endings);
    const counted = drawActive(data.active);
    root.dataset.ready = "true";
    if (!counted && attempt < RETRIES) {
      // the store is counting in the background (Redis): ask again shortly
      window.setTimeout(function () { sg.guarded(function () { return load(attempt + 1); }); }, 1500);
    }
  }

  document.getElementById("charts-refresh").addEventListener("click", function () {
    sg.guarded(async function () { await load(0); sg.announce("Charts refreshed."); });
  });
  sg.guarded(function () { return load(0); });
})();
