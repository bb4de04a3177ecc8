/* shopfloor dashboard: live values over Server-Sent Events, plots with Apache ECharts.
   No build step: plain ES2017 served as is. */
(function () {
  "use strict";
  const boot = JSON.parse(document.getElementById("sf-boot").textContent);
  const L = boot.labels;
  const page = document.body.dataset.page;
  const devices = boot.devices;
  const latest = new Map(); // "device/point" -> sample
  const health = new Map(); // device -> health
  let kpi = null; // last KPI result of today

  const $ = (sel, root) => (root || document).querySelector(sel);
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "style") e.setAttribute("style", v);
      else e.dataset[k] = v;
    }
    for (const kid of kids) e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    return e;
  };
  const fmt = (v, d) => (v === null || v === undefined || Number.isNaN(v) ? "—"
    : Number(v).toLocaleString(boot.lang === "zh" ? "zh-CN" : "en", { maximumFractionDigits: d === undefined ? 2 : d }));
  const pct = (v) => (v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%");
  /* times in the site's time zone (boot.site.tz), whatever the browser's zone */
  const LOCALE = boot.lang === "zh" ? "zh-CN" : "en-GB";
  const timeOf = (ns) => (ns ? new Date(ns / 1e6).toLocaleString(LOCALE, { timeZone: boot.site.tz, hour12: false }) : "—");
  /* names from the site file (the raw ids stay in data-id) */
  const devOf = (id) => boot.devices.find((d) => d.id === id);
  const devName = (id) => (devOf(id) ? devOf(id).name || id : id);
  const pointName = (dev, pt) => {
    const d = devOf(dev);
    const p = d && d.points.find((x) => x.id === pt);
    return p && p.name ? p.name : pt;
  };
  const clockOf = (d) => d.toLocaleTimeString(LOCALE, { timeZone: boot.site.tz, hour12: false });
  /* the site zone's offset from UTC at an instant (ms), and that zone's midnight before it */
  const siteOffsetMs = (ms) => {
    const at = (zone) => Date.parse(new Date(ms).toLocaleString("en-US", { timeZone: zone }));
    return at(boot.site.tz) - at("UTC");
  };
  const siteMidnightMs = (ms) => {
    const off = siteOffsetMs(ms);
    const local = ms + off;
    const m = local - (((local % 86400e3) + 86400e3) % 86400e3);  /* midnight, in local ms */
    return m - siteOffsetMs(m - off);  /* that midnight's own offset (a DST change that day) */
  };
  /* a time axis labelled in the site's zone (ECharts itself formats in the browser's zone) */
  const hm = (ms) => new Date(ms).toLocaleTimeString(LOCALE, { timeZone: boot.site.tz, hour12: false, hour: "2-digit", minute: "2-digit" });
  const timeAxis = () => ({ type: "time", axisLabel: { formatter: (v) => hm(v) },
    axisPointer: { label: { formatter: (p) => clockOf(new Date(p.value)) } } });
  const axisTip = (params) => {
    const list = Array.isArray(params) ? params : [params];
    if (!list.length) return "";
    const head = clockOf(new Date(list[0].value[0]));
    return [head, ...list.map((p) => `${p.marker}${p.seriesName}: ${fmt(p.value[1])}`)].join("<br>");
  };
  const pointsOf = (d, role) => d.points.filter((p) => p.role === role);
  const sample = (dev, point) => latest.get(dev + "/" + point);

  async function api(path) {
    const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!r.ok) {
      let detail = r.statusText;
      try { detail = (await r.json()).detail; } catch (e) { /* not JSON */ }
      throw new Error(r.status + " " + detail);
    }
    return r.json();
  }

  /* ---------- KPI result helpers (metrics.engine PeriodResult as JSON) ---------- */
  function machineKpi(id) {
    if (!kpi) return null;
    const m = kpi.machines || kpi.per_machine || kpi.devices || {};
    if (Array.isArray(m)) return m.find((x) => x.name === id || x.device === id || x.id === id) || null;
    return m[id] || null;
  }
  function oeeParts(m) {
    if (!m) return null;
    const o = m.oee && typeof m.oee === "object" ? m.oee : m;
    const num = (x) => (typeof x === "number" ? x : x && typeof x.value === "number" ? x.value : null);
    return { oee: num(o.oee), a: num(o.availability), e: num(o.effectiveness), q: num(o.quality_ratio !== undefined ? o.quality_ratio : o.quality) };
  }

  /* per-machine figures with coverage and the no-value reason (metrics.machine_table) */
  function figuresOf(id) {
    const mf = kpi && kpi.machine_figures;
    if (!mf) return null;
    if (id === "fleet") return mf.fleet || null;
    return (mf.machines || []).find((m) => m.device === id) || null;
  }
  const reasonOf = (f) => (f && f.reason ? (boot.lang === "en" ? f.reason_en : f.reason_zh) : "");
  const labelOf = (f) => (boot.lang === "en" ? f.label_en : f.label_zh);
  function figureCell(f) {
    const dd = el("dd", { figure: f.id }, f.text);
    const why = reasonOf(f);
    if (why) {
      const small = el("small", { class: "reason" }, why);
      if (boot.lang !== "en") small.title = f.reason_en;
      dd.append(small);
    }
    return dd;
  }
  const SHOWN = ["oee", "availability", "effectiveness", "quality_ratio", "coverage"];
  function addFigures(dl, m) {
    if (m.reason) { dl.append(el("dt", {}, "—"), el("dd", { class: "reason", figure: "all" }, reasonOf(m))); }
    for (const f of m.figures.filter((x) => SHOWN.includes(x.id))) {
      if (m.reason && f.id !== "coverage") continue;
      dl.append(el("dt", {}, labelOf(f)), figureCell(f));
    }
  }

  /* ---------- overview ---------- */
  function stateOf(d) {
    const sp = pointsOf(d, "state")[0];
    if (!sp) return null;
    const s = sample(d.id, sp.id);
    const h = health.get(d.id);
    if (h && !h.connected) return "offline";
    return s ? s.state || "offline" : null;
  }
  function renderMachines() {
    const box = $("#machines");
    if (!box) return;
    box.textContent = "";
    for (const d of devices.filter((x) => x.production || pointsOf(x, "state").length)) {
      const st = stateOf(d);
      const parts = oeeParts(machineKpi(d.id));
      const card = el("a", { class: "card machine" }, el("h3", {}, d.name));
      card.href = "/machine/" + encodeURIComponent(d.id);
      card.dataset.device = d.id;
      if (st) {
        const badge = el("span", { class: "state", state: st }, L[st] || st);
        badge.style.background = boot.colors[st] || "#555";
        card.append(badge);
      }
      const rows = el("dl", {});
      const add = (k, v) => rows.append(el("dt", {}, k), el("dd", {}, v));
      const figs = figuresOf(d.id);
      if (figs) addFigures(rows, figs);
      else if (parts) {
        add(L.oee, pct(parts.oee));
        add(L.availability, pct(parts.a));
        add(L.effectiveness, pct(parts.e));
        add(L.quality, pct(parts.q));
      }
      for (const p of pointsOf(d, "count_good")) add(L.good, fmt(sample(d.id, p.id) && sample(d.id, p.id).value, 0));
      for (const p of pointsOf(d, "count_scrap")) add(L.scrap, fmt(sample(d.id, p.id) && sample(d.id, p.id).value, 0));
      for (const p of pointsOf(d, "power_kw")) add(L.power, fmt(sample(d.id, p.id) && sample(d.id, p.id).value, 1) + " kW");
      for (const p of d.points.filter((x) => x.role === "measurement" || x.role === "apc_mode")) {
        const s = sample(d.id, p.id);
        add(p.name || p.id, s ? (s.text != null ? s.text : fmt(s.value, 2) + (p.unit ? " " + p.unit : "")) : "—");
      }
      card.append(rows);
      box.append(card);
    }
    const fleet = $("#fleet");
    if (fleet) {
      fleet.textContent = "";
      const f = kpi && (kpi.fleet || kpi.total);
      const parts = oeeParts(f);
      const figs = figuresOf("fleet");
      fleet.append(el("h2", {}, L.fleet + " · " + L.oee));
      fleet.append(el("div", { class: "big", id: "fleet-oee" }, parts ? pct(parts.oee) : (kpi === false ? L.unavailable : "—")));
      if (figs) {
        const dl = el("dl", { class: "fleet-figures" });
        addFigures(dl, figs);
        fleet.append(dl);
      } else if (parts) fleet.append(el("div", {}, `${L.availability} ${pct(parts.a)} · ${L.effectiveness} ${pct(parts.e)} · ${L.quality} ${pct(parts.q)}`));
    }
  }
  function renderLatestTable() {
    const body = $("#latest-table tbody");
    if (!body) return;
    body.textContent = "";
    const keys = [...latest.keys()].sort();
    for (const k of keys) {
      const s = latest.get(k);
      const tr = el("tr", { key: k },
        el("td", { id: s.device }, devName(s.device)), el("td", { id: s.point }, pointName(s.device, s.point)),
        el("td", { class: "num" }, s.state ? (L[s.state] || s.state) : s.text != null ? s.text : fmt(s.value, 3)),
        el("td", {}, timeOf(s.ts)), el("td", { class: "q-" + s.quality }, L["q_" + s.quality] || s.quality));
      body.append(tr);
    }
  }

  /* ---------- health ---------- */
  function renderHealth() {
    const body = $("#health-table tbody");
    if (!body) return;
    body.textContent = "";
    for (const d of devices) {
      const h = health.get(d.id);
      const errs = h ? Object.entries(h.errors).map(([k, v]) => k + "×" + v).join(", ") : "";
      const conn = h ? (h.connected ? L.connected : L.disconnected) : L.no_data;
      body.append(el("tr", { device: d.id, class: h && h.connected ? "ok" : "bad" },
        el("td", {}, d.name), el("td", {}, conn), el("td", {}, timeOf(h && h.last_sample_ts)),
        el("td", { class: "num" }, fmt(h && h.samples, 0)), el("td", {}, errs || "—"),
        el("td", { class: "num" }, fmt(h && h.restarts, 0)), el("td", { class: "num" }, fmt(h && h.drops, 0)),
        el("td", { class: "num" }, h && h.outbox_backlog !== null ? fmt(h.outbox_backlog, 0) : "—")));
    }
  }

  /* ---------- charts ---------- */
  const charts = {};
  function chart(id) {
    const node = document.getElementById(id);
    if (!node || typeof echarts === "undefined") return null;
    if (!charts[id]) charts[id] = echarts.init(node, null, { renderer: "canvas" });
    return charts[id];
  }
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  // the end of a plot: now, or the newest sample when the device clock runs ahead (simulators)
  const endOf = (d) => {
    let end = 0;
    for (const [k, s] of latest) if (k.startsWith(d + "/") && s.ts >= end) end = s.ts + 1;
    return end || Date.now() * 1e6;
  };
  const hist = (d, p, hours, buckets) => {
    const end = endOf(d);
    const start = end - hours * 3600e9;
    return api(`/api/v1/history?device=${encodeURIComponent(d)}&point=${encodeURIComponent(p)}&start=${start}&end=${end}&buckets=${buckets}`);
  };

  async function renderMachine() {
    const box = $("#machine-now");
    const d = devices.find((x) => x.id === box.dataset.device);
    box.textContent = "";
    const st = stateOf(d);
    if (st) {
      const b = el("span", { class: "state big", state: st }, L[st] || st);
      b.style.background = boot.colors[st];
      box.append(b);
    }
    const dl = el("dl", {});
    for (const p of d.points) {
      const s = sample(d.id, p.id);
      dl.append(el("dt", {}, p.name || p.id), el("dd", {}, s ? (s.state ? (L[s.state] || s.state) : s.text != null ? s.text : fmt(s.value, 3) + (p.unit ? " " + p.unit : "")) : "—"));
    }
    box.append(dl);
  }
  async function machineCharts() {
    const d = devices.find((x) => x.id === $("#machine-now").dataset.device);
    const sp = pointsOf(d, "state")[0];
    const tl = chart("timeline");
    if (sp && tl) {
      const h = await hist(d.id, sp.id, 8, 480);
      const names = Object.keys(boot.colors);
      const data = [];
      let last = h.prior;
      for (let i = 0; i < h.t.length; i++) {
        const v = h.last[i] !== null ? h.last[i] : last;
        last = v;
        const s = latestStateName(d, v);
        data.push({ value: [h.t[i] / 1e6, (h.t[i] + h.bucket_ns) / 1e6, s], itemStyle: { color: boot.colors[s] || "#ddd" } });
      }
      tl.setOption({
        animation: false, grid: { left: 10, right: 10, top: 10, bottom: 30 },
        xAxis: timeAxis(), yAxis: { show: false, min: 0, max: 1 },
        tooltip: { formatter: (p) => (L[p.value[2]] || p.value[2]) + " · " + clockOf(new Date(p.value[0])) },
        series: [{ type: "custom", renderItem: (params, api2) => {
          const a = api2.coord([api2.value(0), 1]); const b = api2.coord([api2.value(1), 0]);
          return { type: "rect", shape: { x: a[0], y: a[1], width: Math.max(1, b[0] - a[0] + 0.5), height: b[1] - a[1] }, style: api2.style() };
        }, encode: { x: [0, 1] }, data }],
        legend: { show: false }, names,
      });
    }
    const tr = chart("trends");
    if (tr) {
      const series = [];
      for (const p of d.points.filter((x) => x.role !== "state")) {
        const h = await hist(d.id, p.id, 8, 240);
        series.push({ name: p.name || p.id, type: "line", showSymbol: false, step: p.role.startsWith("count") ? "end" : false,
          yAxisIndex: p.role.startsWith("count") ? 1 : 0,
          data: h.t.map((t, i) => [t / 1e6, h.last[i]]).filter((x) => x[1] !== null) });
      }
      tr.setOption({ animation: false, tooltip: { trigger: "axis", formatter: axisTip }, legend: {}, grid: { left: 50, right: 50, top: 40, bottom: 30 },
        xAxis: timeAxis(), yAxis: [{ type: "value", scale: true }, { type: "value", scale: true }], series });
    }
  }
  function latestStateName(d, v) {
    if (v === null || v === undefined) return "offline";
    const sp = pointsOf(d, "state")[0];
    const s = sp && sample(d.id, sp.id);
    if (s && s.value === v && s.state) return s.state;
    const map = (sp && sp.states) || stateMaps[d.id] || {};
    return map[String(v)] || "offline";
  }
  const stateMaps = {}; // filled from the live samples: raw value -> state name
  function learnState(s) {
    if (s.state && s.value !== null) (stateMaps[s.device] = stateMaps[s.device] || {})[String(s.value)] = s.state;
  }

  /* ---------- energy ---------- */
  async function renderEnergy() {
    const box = $("#energy-cards");
    box.textContent = "";
    let totalKwh = 0;
    for (const d of devices) {
      const endMs = endOf(d.id) / 1e6;
      const hours = Math.max(0.1, (endMs - siteMidnightMs(endMs)) / 3600e3);  /* since the site's midnight */
      for (const p of pointsOf(d, "energy_kwh")) {
        let used = null;
        try {
          const h = await hist(d.id, p.id, hours, 50);
          const vals = h.min.filter((x) => x !== null);
          const lasts = h.last.filter((x) => x !== null);
          if (vals.length && lasts.length) used = lasts[lasts.length - 1] - Math.min(...vals);
        } catch (e) { used = null; }
        if (used !== null) totalKwh += used;
        box.append(el("div", { class: "card", device: d.id }, el("h3", {}, d.name), el("div", { class: "big" }, fmt(used, 1) + " kWh"), el("div", {}, L.energy_today)));
      }
    }
    const co2 = totalKwh * boot.factors.grid_co2_kg_per_kwh;
    box.append(el("div", { class: "card" }, el("h3", {}, L.carbon_today), el("div", { class: "big", id: "co2-today" }, fmt(co2, 1) + " kgCO₂"),
      el("div", {}, fmt(totalKwh * boot.factors.elec_kgce_per_kwh, 1) + " kgce")));
    const note = $("#factor-note");
    note.textContent = `CO₂: ${boot.factors.grid_co2_kg_per_kwh} kgCO₂/kWh (${boot.factors.grid_co2_id}); ${boot.factors.elec_kgce_per_kwh} kgce/kWh`;
    const c = chart("power-chart");
    if (c) {
      const series = [];
      for (const d of devices) for (const p of pointsOf(d, "power_kw")) {
        const h = await hist(d.id, p.id, 2, 240);
        series.push({ name: d.name, type: "line", showSymbol: false, data: h.t.map((t, i) => [t / 1e6, h.mean[i]]).filter((x) => x[1] !== null) });
      }
      c.setOption({ animation: false, tooltip: { trigger: "axis", formatter: axisTip }, legend: { type: "scroll" }, grid: { left: 50, right: 20, top: 40, bottom: 30 },
        xAxis: timeAxis(), yAxis: { type: "value", name: "kW" }, series }, true);
    }
  }

  /* ---------- live stream ---------- */
  function setLive(on, text) {
    const dot = $("#live-status");
    if (dot) dot.className = "live " + (on ? "on" : "off");
    const t = $("#live-text");
    if (t) t.textContent = text || "";
  }
  function redraw() {
    if (page === "overview") { renderMachines(); renderLatestTable(); }
    if (page === "health") renderHealth();
    if (page === "machine") renderMachine();
  }
  let redrawPending = false;
  function scheduleRedraw() {
    if (redrawPending) return;
    redrawPending = true;
    requestAnimationFrame(() => { redrawPending = false; redraw(); });
  }
  function connect() {
    const es = new EventSource("/api/v1/live");
    es.addEventListener("snapshot", (ev) => {
      const d = JSON.parse(ev.data);
      latest.clear();
      for (const s of d.samples) { latest.set(s.device + "/" + s.point, s); learnState(s); }
      for (const h of d.health) health.set(h.device, h);
      setLive(!d.error, d.error || L.updated + " " + clockOf(new Date()));
      scheduleRedraw();
    });
    es.addEventListener("latest", (ev) => {
      for (const s of JSON.parse(ev.data).samples) { latest.set(s.device + "/" + s.point, s); learnState(s); }
      document.body.dataset.lastUpdate = String(Date.now());
      setLive(true, L.updated + " " + clockOf(new Date()));
      scheduleRedraw();
    });
    es.addEventListener("health", (ev) => {
      for (const h of JSON.parse(ev.data).devices) health.set(h.device, h);
      scheduleRedraw();
    });
    es.addEventListener("kpi", (ev) => {
      const d = JSON.parse(ev.data);
      kpi = d.result;
      const p = $("#kpi-period");
      if (p) p.textContent = L.oee + " · " + d.period;
      scheduleRedraw();
    });
    es.onerror = () => setLive(false, "…");
  }

  async function start() {
    if (page === "login" || page === "table" || page === "export" || page === "verify") return;
    connect();
    // the overview's KPI figures arrive as "kpi" events (first one right after connecting)
    if (page === "machine") { setTimeout(() => machineCharts().catch(() => {}), 500); setInterval(() => machineCharts().catch(() => {}), 10000); }
    if (page === "energy") { setTimeout(() => renderEnergy().catch(() => {}), 500); setInterval(() => renderEnergy().catch(() => {}), 10000); }
  }
  start();
})();
