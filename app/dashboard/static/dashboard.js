// The interest-clusters dashboard: plain DOM and hand-drawn SVG, no libraries, no build step.
// Text from the data (keywords, item texts, user ids) only ever goes in as textContent.
"use strict";

(() => {
  const KEY_STORE = "interest-clusters.api-key"; // sessionStorage: gone when the tab closes
  const POLL_MS = 3000; // the pipeline panel
  const SLOW_EVERY = 5; // map, clusters and quality: every 5th poll, or when the model changes
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = [
    "#2f6fdf", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8",
    "#0b7285", "#a61e4d", "#5c940d", "#d9480f", "#364fc7",
  ];
  const needsKey = document.documentElement.dataset.auth === "key";
  const $ = (id) => document.getElementById(id);

  let polls = 0;
  let shownVersion;
  let timer;

  // ---- small helpers -----------------------------------------------------------------------

  function color(cluster) {
    if (cluster < PALETTE.length) return PALETTE[cluster];
    return `hsl(${(cluster * 137.508) % 360}, 62%, 45%)`; // golden angle: far from neighbours
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    for (const child of children) node.append(child);
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function swatch(cluster) {
    const dot = el("span", { class: "swatch" });
    dot.style.background = color(cluster); // CSSOM, allowed by the page's CSP
    return dot;
  }

  const integer = new Intl.NumberFormat("en-US");
  const fmt = (value, digits = 3) =>
    value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  const pct = (value) => (value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)}%`);

  function age(seconds) {
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} d`;
  }

  // ---- the API -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(path, { headers, cache: "no-store" });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail || detail;
      } catch (_) { /* not problem+json: keep the status text */ }
      throw new ApiError(response.status, detail);
    }
    return response.json();
  }

  function showProblem(error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      sessionStorage.removeItem(KEY_STORE);
      askForKey(error.status === 403 ? "This key lacks the read scope." : "That key is not valid.");
      return;
    }
    const banner = $("problem");
    banner.textContent = `Cannot reach the service: ${error.message}`;
    banner.hidden = false;
    $("connection").textContent = "disconnected, retrying…";
  }

  // ---- key handling ------------------------------------------------------------------------

  function askForKey(message) {
    clearTimeout(timer);
    $("board").hidden = true;
    $("forget-key").hidden = true;
    $("problem").hidden = true;
    $("key-form").hidden = false;
    $("key-problem").hidden = !message;
    $("key-problem").textContent = message || "";
    $("connection").textContent = "waiting for an API key";
    $("key-input").focus();
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("key-input").value.trim());
    $("key-input").value = "";
    start();
  });

  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    askForKey();
  });

  // ---- pipeline now ------------------------------------------------------------------------

  function tile(label, value, tone) {
    const dd = el("dd", tone ? { class: tone } : {}, value);
    return el("div", {}, el("dt", {}, label), dd);
  }

  function renderPipeline(p) {
    const s = p.stats;
    const now = Date.parse(p.read_at);
    const modelAge = s.model.trained_at ? age((now - Date.parse(s.model.trained_at)) / 1000) : "–";
    $("pipeline-tiles").replaceChildren(
      tile("events received", integer.format(s.events.received)),
      tile("applied", integer.format(s.events.applied)),
      tile("pending", integer.format(s.events.pending), s.events.pending ? "" : "ok"),
      tile("waiting for item text", integer.format(s.events.waiting_for_item)),
      tile("lag", age(s.lag_seconds), s.lag_seconds > 60 ? "bad" : ""),
      tile("users", integer.format(s.users)),
      tile("model version", s.model.version === null ? "none yet" : String(s.model.version)),
      tile("model age", modelAge),
      tile("clusters", s.model.n_clusters === null ? "–" : String(s.model.n_clusters)),
      tile("trainer", p.trainer_running ? "running" : "not running", p.trainer_running ? "ok" : "bad"),
    );
    const waiting = $("waiting");
    waiting.hidden = s.model.version !== null;
    if (p.first_fit.waiting_for_users > 0) {
      waiting.textContent =
        `Waiting for ${integer.format(p.first_fit.waiting_for_users)} more users: the first ` +
        `model is trained once ${integer.format(p.first_fit.min_users)} users have a profile ` +
        `(${integer.format(s.users)} so far).`;
    } else {
      waiting.textContent = "Enough users: the first model is being trained.";
    }
    $("pipeline-updated").textContent = `as of ${new Date(now).toLocaleTimeString("en-GB")}`;
  }

  // ---- cluster map -------------------------------------------------------------------------

  function renderMap(m) {
    const box = $("map-svg");
    const tip = $("map-tip");
    // A narrower drawing on a phone, so that marks and labels keep a readable size.
    const [W, H, PAD] = box.clientWidth < 480 ? [400, 340, 24] : [600, 420, 28];
    box.setAttribute("viewBox", `0 0 ${W} ${H}`);
    box.replaceChildren();
    $("map-legend").replaceChildren();
    tip.hidden = true;
    if (m.model_version === null) {
      box.append(svg("text", { x: W / 2, y: H / 2 - 10, "text-anchor": "middle", class: "empty" },
        "No map yet."));
      box.append(svg("text", { x: W / 2, y: H / 2 + 12, "text-anchor": "middle", class: "empty" },
        "It is drawn when the first model is evaluated."));
      $("map-caption").textContent = "";
      return;
    }
    $("map-caption").textContent =
      `Model version ${m.model_version} (generation ${m.generation}), ${m.points.length} users ` +
      `sampled; the plane shows ${pct(m.explained)} of the spread between the centres.`;
    const xs = m.points.map((p) => p[0]).concat(m.centers.map((c) => c.x));
    const ys = m.points.map((p) => p[1]).concat(m.centers.map((c) => c.y));
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const scale = Math.min((W - 2 * PAD) / (x1 - x0 || 1), (H - 2 * PAD) / (y1 - y0 || 1));
    const X = (x) => W / 2 + (x - (x0 + x1) / 2) * scale;
    const Y = (y) => H / 2 - (y - (y0 + y1) / 2) * scale;
    const points = svg("g");
    for (const [x, y, cluster] of m.points) {
      points.append(svg("circle", { class: "point", cx: X(x).toFixed(1), cy: Y(y).toFixed(1),
        r: 2.6, fill: color(cluster) }));
    }
    box.append(points);
    const biggest = Math.max(1, ...m.centers.map((c) => c.size));
    for (const c of m.centers) {
      const radius = 8 + 14 * Math.sqrt(c.size / biggest);
      const describe = () =>
        `Cluster ${c.cluster_id} · ${integer.format(c.size)} users` +
        (c.keywords.length ? ` · ${c.keywords.join(", ")}` : "");
      const mark = svg("circle", { class: "center", cx: X(c.x).toFixed(1), cy: Y(c.y).toFixed(1),
        r: radius.toFixed(1), fill: color(c.cluster_id), stroke: color(c.cluster_id), tabindex: 0,
        "data-cluster": c.cluster_id, "aria-label": describe() });
      mark.append(svg("title", {}, describe()));
      const show = () => {
        tip.textContent = describe();
        tip.hidden = false;
        const frame = box.getBoundingClientRect();
        const k = frame.width / W;
        tip.style.left = `${Math.min(X(c.x) * k + 12, frame.width - 180)}px`;
        tip.style.top = `${Math.max(0, Y(c.y) * k - 12)}px`;
      };
      mark.addEventListener("mouseenter", show);
      mark.addEventListener("focus", show);
      mark.addEventListener("click", show);
      mark.addEventListener("mouseleave", () => { tip.hidden = true; });
      mark.addEventListener("blur", () => { tip.hidden = true; });
      box.append(mark);
      box.append(svg("text", { class: "center-label", x: X(c.x).toFixed(1),
        y: (Y(c.y) + 4.5).toFixed(1), "text-anchor": "middle" }, String(c.cluster_id)));
      $("map-legend").append(el("li", {}, swatch(c.cluster_id),
        `${c.cluster_id}: ${c.keywords.slice(0, 3).join(", ") || "no keywords yet"}`));
    }
  }

  // ---- clusters ----------------------------------------------------------------------------

  function sparkline(values, cluster) {
    const [W, H] = [240, 36];
    const box = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "spark", role: "img",
      "aria-label": `size over the last ${values.length} evaluated versions` });
    if (values.length < 2) return box;
    const top = Math.max(1, ...values);
    const path = values.map((v, i) =>
      `${((i / (values.length - 1)) * (W - 4) + 2).toFixed(1)},${(H - 3 - (v / top) * (H - 6)).toFixed(1)}`);
    box.append(svg("polyline", { points: path.join(" "), fill: "none", stroke: color(cluster),
      "stroke-width": 2 }));
    return box;
  }

  function renderClusters(clusters, versions) {
    const list = $("cluster-list");
    list.replaceChildren();
    if (!clusters.clusters.length) {
      $("clusters-caption").textContent = "No clusters yet.";
      return;
    }
    $("clusters-caption").textContent =
      `Keywords and representative items from the evaluation of model version ` +
      `${clusters.model_version}; sizes over the last ${versions.versions.length} evaluated versions.`;
    for (const c of clusters.clusters) {
      const sizes = versions.versions.map((v) => v.sizes[c.cluster_id] ?? 0);
      const items = el("ol");
      for (const item of c.representative_items) {
        items.append(el("li", { title: item.text }, item.text));
      }
      list.append(el("article", { class: "cluster", "data-cluster": c.cluster_id },
        el("h3", {}, swatch(c.cluster_id), `Cluster ${c.cluster_id} · ${integer.format(c.size)} users`),
        sparkline(sizes, c.cluster_id),
        el("p", { class: "keywords" }, c.keywords.join(", ") || "no keywords yet"),
        items));
    }
  }

  // ---- quality over time -------------------------------------------------------------------

  function lineChart(title, versions, series, note) {
    const [W, H, L, R, T, B] = [320, 150, 38, 8, 8, 22];
    const box = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
    const values = series.flatMap((s) => versions.map(s.value)).filter((v) => v !== null && v !== undefined);
    const n = versions.length;
    const X = (i) => L + (n > 1 ? (i / (n - 1)) * (W - L - R) : (W - L - R) / 2);
    let [lo, hi] = values.length ? [Math.min(...values), Math.max(...values)] : [0, 1];
    if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
    const Y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
    box.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#dde1e7" }));
    box.append(svg("text", { class: "axis", x: L - 4, y: Y(hi) + 4, "text-anchor": "end" }, fmt(hi, 2)));
    box.append(svg("text", { class: "axis", x: L - 4, y: Y(lo), "text-anchor": "end" }, fmt(lo, 2)));
    versions.forEach((v, i) => {
      if (v.new_generation) {
        box.append(svg("line", { x1: X(i), x2: X(i), y1: T, y2: H - B, stroke: "#c2410c",
          "stroke-dasharray": "5 3", "stroke-width": 1.5, "data-mark": "generation" }));
      } else if (v.consolidation) {
        box.append(svg("line", { x1: X(i), x2: X(i), y1: T, y2: H - B, stroke: "#7c3aed",
          "stroke-dasharray": "1 3", "stroke-width": 1.5, "data-mark": "consolidation" }));
      }
    });
    if (n) {
      box.append(svg("text", { class: "axis", x: L, y: H - 6 }, `v${versions[0].model_version}`));
      box.append(svg("text", { class: "axis", x: W - R, y: H - 6, "text-anchor": "end" },
        `v${versions[n - 1].model_version}`));
    }
    for (const s of series) {
      let d = "";
      versions.forEach((v, i) => {
        const value = s.value(v);
        if (value === null || value === undefined) return;
        d += `${d ? "L" : "M"}${X(i).toFixed(1)},${Y(value).toFixed(1)}`;
        box.append(svg("circle", { cx: X(i).toFixed(1), cy: Y(value).toFixed(1), r: 2, fill: s.color }));
      });
      if (d) box.prepend(svg("path", { d, fill: "none", stroke: s.color, "stroke-width": 2 }));
    }
    const latest = versions[n - 1];
    const legend = series.map((s) => `${s.name} ${latest ? fmt(s.value(latest)) : "–"}`).join(" · ");
    return el("figure", { class: "chart" }, el("h3", {}, title),
      el("p", { class: "muted" }, `${legend}${note ? ` (${note})` : ""}`), box);
  }

  function renderQuality(versions) {
    const v = versions.versions;
    const charts = $("quality-charts");
    if (!v.length) {
      charts.replaceChildren(el("p", { class: "muted" }, "No evaluated model version yet."));
      return;
    }
    charts.replaceChildren(
      lineChart("Silhouette", v, [
        { name: "silhouette", color: "#2f6fdf", value: (x) => x.silhouette },
        { name: "simplified", color: "#2b8a3e", value: (x) => x.simplified_silhouette },
      ], "higher is better"),
      lineChart("Davies–Bouldin", v, [
        { name: "index", color: "#c2255c", value: (x) => x.davies_bouldin },
      ], "lower is better"),
      lineChart("Users who changed cluster", v, [
        { name: "share", color: "#7048e8", value: (x) => x.changed_share },
      ], "since the previous evaluation"),
    );
  }

  // ---- user lookup -------------------------------------------------------------------------

  $("lookup-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const userId = $("lookup-input").value.trim();
    const out = $("lookup-result");
    if (!userId) return;
    out.replaceChildren(el("p", { class: "muted" }, "looking up…"));
    const path = `/v1/users/${encodeURIComponent(userId)}/cluster`;
    let answer;
    let history;
    try {
      [answer, history] = await Promise.all([api(path), api(`${path}/history`)]);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        out.replaceChildren(el("p", { class: "problem", id: "user-missing" }, `No events for user “${userId}”.`));
      } else if (error instanceof ApiError && error.status === 422) {
        out.replaceChildren(el("p", { class: "problem" }, error.message));
      } else {
        showProblem(error);
      }
      return;
    }
    renderUser(answer, history);
  });

  function renderUser(a, history) {
    const out = $("lookup-result");
    const head = el("div", { class: "user-head" }, el("strong", {}, a.user_id));
    if (a.status === "assigned") {
      const cluster = el("span", { class: "user-cluster", id: "user-cluster",
        "data-cluster": a.cluster_id }, swatch(a.cluster_id), `cluster ${a.cluster_id}`);
      head.append(cluster);
    } else {
      head.append(el("span", { class: "user-cluster", id: "user-pending" }, "pending"));
    }
    const facts = el("dl", { class: "facts" });
    const fact = (name, value) => facts.append(el("dt", {}, name), el("dd", {}, value));
    fact("confidence", pct(a.confidence));
    fact("distance", fmt(a.distance));
    fact("runner-ups", a.alternatives.map((r) => `${r.cluster_id} (${fmt(r.distance)})`).join(", ") || "–");
    fact("model version", a.model_version === null ? "none yet" : String(a.model_version));
    fact("events", `${integer.format(a.profile.events)} applied, ${integer.format(a.profile.pending_events)} pending`);
    fact("last event", a.profile.last_event_at ? new Date(a.profile.last_event_at).toLocaleString("en-GB") : "–");
    const rows = history.assignments.slice().reverse().map((h) =>
      el("tr", {}, el("td", {}, String(h.model_version)),
        el("td", {}, swatch(h.cluster_id), String(h.cluster_id)),
        el("td", {}, fmt(h.distance)),
        el("td", {}, new Date(h.assigned_at).toLocaleString("en-GB"))));
    const table = el("table", { id: "user-history" },
      el("thead", {}, el("tr", {}, el("th", {}, "version"), el("th", {}, "cluster"),
        el("th", {}, "distance"), el("th", {}, "assigned"))),
      el("tbody", {}, ...rows));
    out.replaceChildren(head, facts,
      el("p", { class: "muted" }, `History: ${history.assignments.length} changes of cluster, newest first`),
      el("div", { class: "scroll" }, table));
  }

  // ---- the loop ----------------------------------------------------------------------------

  async function refreshSlow() {
    const [map, clusters, versions] = await Promise.all([
      api("/v1/dashboard/map"), api("/v1/clusters"), api("/v1/dashboard/versions"),
    ]);
    renderMap(map);
    renderClusters(clusters, versions);
    renderQuality(versions);
  }

  async function tick() {
    try {
      const pipeline = await api("/v1/dashboard/pipeline");
      renderPipeline(pipeline);
      const version = pipeline.stats.model.version;
      if (polls % SLOW_EVERY === 0 || version !== shownVersion) {
        await refreshSlow();
        shownVersion = version;
      }
      polls += 1;
      $("problem").hidden = true;
      $("board").hidden = false;
      $("board").dataset.ready = "true";
      $("connection").textContent = "live: refreshed every 3 s";
    } catch (error) {
      showProblem(error);
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return;
    }
    timer = setTimeout(tick, POLL_MS);
  }

  function start() {
    $("key-form").hidden = true;
    $("forget-key").hidden = !needsKey;
    polls = 0;
    shownVersion = undefined;
    clearTimeout(timer);
    tick();
  }

  if (needsKey && !sessionStorage.getItem(KEY_STORE)) askForKey();
  else start();
})();
