// ---- API tokens: list, create (the token is shown once), revoke ----
//
// Expects GET /api/v1/tokens → {tokens: [{id, label, createdAt,
// lastUsedAt}]}, POST /api/v1/tokens {label} → {id, label, token,
// createdAt}, DELETE /api/v1/tokens/{id}. A platform without these routes
// (404) gets the command-line way instead.

function tokensCLI() {
  return el("div", null,
    el("p", null, "This server has no token API; manage tokens on the server with the command line:"),
    el("pre", null, "agenthost platform token create --org NAME --label production\nagenthost platform token list --org NAME\nagenthost platform token revoke --org NAME TOKEN_ID"),
    el("p", "muted", "The token is printed once; store it in your server's environment."));
}

async function refreshTokens() {
  const body = $("tokens-body");
  let r;
  try {
    r = await api("/tokens");
  } catch (e) {
    if (e.status === 404 || e.status === 405) body.replaceChildren(tokensCLI());
    else if (e.status !== 401) showError("Tokens: " + e.message);
    return;
  }
  const labelId = nextId("tl");
  const label = el("input", { id: labelId, required: true, maxlength: "100", autocomplete: "off", placeholder: "production" });
  const form = el("form", { class: "inline-form", "aria-label": "Create a token" },
    el("label", { for: labelId }, "Label"), label, el("button", { type: "submit", class: "primary" }, "Create token"));
  const shown = el("div", { id: "new-token", "aria-live": "polite" });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const t = await run(() => api("/tokens", { method: "POST", body: { label: label.value.trim() } }), "Create token");
    if (!t) return;
    label.value = "";
    const out = el("input", { type: "text", readonly: true, value: t.token, class: "mono token-value", "aria-label": "The new token" });
    const copy = el("button", { type: "button", onclick: async () => {
      out.select();
      try { await navigator.clipboard.writeText(t.token); flash("Token copied"); } catch (err) { flash("Select the token and copy it"); }
    } }, "Copy");
    shown.replaceChildren(el("div", "panel notice",
      el("p", null, el("strong", null, "Copy this token now: "), "it is shown only once."),
      el("div", "inline-form", out, copy),
      el("button", { type: "button", onclick: () => shown.replaceChildren() }, "Done")));
    out.focus();
    out.select();
    listTokens(list);
  });
  const list = el("div");
  body.replaceChildren(form, shown, list);
  renderTokens(list, r.tokens || []);
}

async function listTokens(list) {
  const r = await run(() => api("/tokens"), "Tokens");
  if (r) renderTokens(list, r.tokens || []);
}

function renderTokens(list, tokens) {
  if (!tokens.length) {
    list.replaceChildren(el("p", "muted", "No tokens."));
    return;
  }
  list.replaceChildren(el("table", "data",
    el("caption", "sr-only", "API tokens"),
    el("thead", null, el("tr", null, el("th", { scope: "col" }, "Label"), el("th", { scope: "col" }, "Created"),
      el("th", { scope: "col" }, "Last used"), el("th", { scope: "col" }, "Actions"))),
    el("tbody", null, ...tokens.map((t) => el("tr", { "data-id": t.id },
      el("th", { scope: "row", "data-label": "Label" }, t.label || t.id),
      el("td", { "data-label": "Created" }, fmtDate(t.createdAt)),
      el("td", { "data-label": "Last used" }, fmtDate(t.lastUsedAt)),
      el("td", { class: "actions", "data-label": "Actions" }, confirmButton("Revoke", "Really revoke?", async () => {
        const d = await run(() => api(`/tokens/${encodeURIComponent(t.id)}`, { method: "DELETE" }), "Revoke");
        if (d) { flash(`Token ${t.label || t.id} revoked`); listTokens(list); }
      }, "danger")))))));
}
