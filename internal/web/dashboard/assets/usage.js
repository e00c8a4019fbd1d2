// ---- Usage: cost and tokens per agent and session, and a chart of the
// cost over time (inline SVG, with the same data as a table) ----

const SVGNS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(typeof c === "string" ? document.createTextNode(c) : c);
  return e;
}

async function refreshUsageAgents() {
  const r = await run(() => api("/agents"), "Agents");
  if (!r) return;
  const sel = $("usage-agent");
  const v = sel.value;
  const list = r.agents || [];
  sel.replaceChildren(...list.map((a) => el("option", { value: a.agentId, "data-status": a.status }, `${a.name} (${a.status})`)));
  if (list.some((a) => a.agentId === v)) sel.value = v;
  if (!list.length) {
    $("usage-body").replaceChildren(el("p", "muted", "No agents yet."));
    return;
  }
  refreshUsage();
}

// costPoints turns every assistant message with a cost into a point of the
// cumulative cost, in time order.
function costPoints(all) {
  const pts = [];
  for (const s of all.sessions || []) {
    for (const m of s.messages || []) {
      const i = m.info || {};
      if (i.role !== "assistant" || i.cost === undefined || i.cost === null || !i.time) continue;
      pts.push({ t: (i.time.completed || i.time.created) * 1000, cost: i.cost, session: s.title || s.sessionId });
    }
  }
  pts.sort((a, b) => a.t - b.t);
  let sum = 0;
  for (const p of pts) { sum += p.cost; p.total = sum; }
  return pts;
}

// costChart draws the cumulative cost as a step line.
function costChart(pts) {
  const W = 640, H = 220, L = 56, R = 12, T = 12, B = 32;
  const id = nextId("chart");
  const title = svg("title", { id: id + "-t" }, "Cumulative cost over time");
  const total = pts.length ? pts[pts.length - 1].total : 0;
  const desc = svg("desc", { id: id + "-d" }, pts.length
    ? `From ${new Date(pts[0].t).toLocaleString()} to ${new Date(pts[pts.length - 1].t).toLocaleString()}, the cost grew to ${fmtCost(total)} over ${pts.length} model calls.`
    : "No cost recorded yet.");
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-t ${id}-d`, class: "chart", preserveAspectRatio: "xMidYMid meet" }, title, desc);
  const axis = svg("g", { class: "axis" },
    svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B }),
    svg("line", { x1: L, y1: T, x2: L, y2: H - B }));
  root.append(axis);
  if (!pts.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "label" }, "No cost recorded yet"));
    return root;
  }
  const t0 = pts[0].t, t1 = Math.max(pts[pts.length - 1].t, t0 + 1000);
  const ymax = total > 0 ? total * 1.1 : 0.01;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (c) => H - B - (c / ymax) * (H - T - B);
  let d = `M ${x(t0)} ${y(0)}`;
  for (const p of pts) d += ` H ${x(p.t).toFixed(1)} V ${y(p.total).toFixed(1)}`;
  root.append(svg("path", { d, class: "line" }));
  for (const p of pts) {
    root.append(svg("circle", { cx: x(p.t).toFixed(1), cy: y(p.total).toFixed(1), r: 3, class: "dot" },
      svg("title", {}, `${new Date(p.t).toLocaleString()}: +${fmtCost(p.cost)} (${p.session}), total ${fmtCost(p.total)}`)));
  }
  for (const f of [0, 0.5, 1]) {
    root.append(svg("text", { x: L - 6, y: y(ymax * f) + 4, "text-anchor": "end", class: "label" }, fmtCost(ymax * f)));
  }
  root.append(svg("text", { x: L, y: H - 10, class: "label" }, new Date(t0).toLocaleTimeString()));
  root.append(svg("text", { x: W - R, y: H - 10, "text-anchor": "end", class: "label" }, new Date(t1).toLocaleTimeString()));
  return root;
}

function tokensText(t) {
  t = t || {};
  const c = t.cache || {};
  return `${fmtInt(t.total)} (in ${fmtInt(t.input)}, out ${fmtInt(t.output)}, reasoning ${fmtInt(t.reasoning)}, cache ${fmtInt(c.read)}/${fmtInt(c.write)})`;
}

async function refreshUsage() {
  const id = $("usage-agent").value;
  const body = $("usage-body");
  if (!id) return;
  const notRunning = el("p", "muted", "Usage is read from the running agent: start it to see its usage.");
  // Only a running agent can answer (the platform says 400 otherwise).
  if ($("usage-agent").selectedOptions[0]?.dataset.status !== "RUNNING") {
    body.replaceChildren(notRunning);
    return;
  }
  body.setAttribute("aria-busy", "true");
  let u, all;
  try {
    [u, all] = await Promise.all([api(`/agents/${encodeURIComponent(id)}/usage`), api(`/agents/${encodeURIComponent(id)}/messages`)]);
  } catch (e) {
    body.setAttribute("aria-busy", "false");
    body.replaceChildren(e.status === 400 ? notRunning : el("p", "muted", "Usage: " + e.message));
    return;
  }
  body.setAttribute("aria-busy", "false");
  const pts = costPoints(all);
  const sessions = u.sessions || [];
  body.replaceChildren(
    el("dl", "totals",
      el("dt", null, "Total cost"), el("dd", { id: "usage-total" }, fmtCost(u.totalCost)),
      el("dt", null, "Tokens"), el("dd", null, tokensText(u.totalTokens))),
    el("h2", null, "Cost over time"),
    el("figure", "chart-box", costChart(pts),
      el("figcaption", "muted small", "Cumulative cost of the agent's model calls, all sessions.")),
    el("details", null, el("summary", null, "Cost over time as a table"),
      el("table", "data",
        el("thead", null, el("tr", null, el("th", { scope: "col" }, "Time"), el("th", { scope: "col" }, "Session"),
          el("th", { scope: "col" }, "Cost"), el("th", { scope: "col" }, "Total"))),
        el("tbody", null, ...pts.map((p) => el("tr", null, el("td", { "data-label": "Time" }, new Date(p.t).toLocaleString()),
          el("td", { "data-label": "Session" }, p.session), el("td", { "data-label": "Cost" }, fmtCost(p.cost)),
          el("td", { "data-label": "Total" }, fmtCost(p.total))))))),
    el("h2", null, "Per session"),
    sessions.length ? el("table", { class: "data", id: "usage-sessions" },
      el("thead", null, el("tr", null, el("th", { scope: "col" }, "Session"), el("th", { scope: "col" }, "Cost"), el("th", { scope: "col" }, "Tokens"))),
      el("tbody", null, ...sessions.map((s) => el("tr", null,
        el("th", { scope: "row", "data-label": "Session" }, s.title || s.sessionId),
        el("td", { "data-label": "Cost" }, fmtCost(s.cost)),
        el("td", { "data-label": "Tokens" }, tokensText(s.tokens)))))) : el("p", "muted", "No sessions yet."));
}

$("usage-agent").addEventListener("change", refreshUsage);
$("usage-refresh").addEventListener("click", refreshUsageAgents); // re-reads the statuses too
