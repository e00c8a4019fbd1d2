// ---- Scopes (create, rename, describe, delete) and secrets (keys only:
// set, update, delete; values are never read back) ----

async function refreshScopes() {
  const r = await run(() => api("/scopes"), "Scopes");
  if (!r) return;
  const scopes = r.scopes || [];
  agents.scopes = scopes;
  const list = $("scopes-list");
  if (!scopes.length) {
    list.replaceChildren(el("p", "muted", "No scopes yet. Agents and secrets without a scope are organization-level."));
  } else {
    list.replaceChildren(el("table", "data",
      el("caption", "sr-only", "Scopes"),
      el("thead", null, el("tr", null, el("th", { scope: "col" }, "Name"), el("th", { scope: "col" }, "Description"),
        el("th", { scope: "col" }, "Agents"), el("th", { scope: "col" }, "Secrets"), el("th", { scope: "col" }, "Actions"))),
      el("tbody", null, ...scopes.map(scopeRow))));
  }
  fillScopeSelect($("sec-where"), "Organization level");
}

function fillScopeSelect(sel, orgLabel) {
  const v = sel.value;
  sel.replaceChildren(el("option", { value: "" }, orgLabel), ...agents.scopes.map((s) => el("option", { value: s.id }, s.name)));
  if ([...sel.options].some((o) => o.value === v)) sel.value = v;
}

function scopeRow(s) {
  const row = el("tr", { "data-id": s.id });
  const show = () => {
    row.replaceChildren(
      el("th", { scope: "row", "data-label": "Name" }, s.name),
      el("td", { "data-label": "Description" }, s.description || el("span", "muted", "—")),
      el("td", { "data-label": "Agents" }, fmtInt(s.agentCount)),
      el("td", { "data-label": "Secrets" }, fmtInt(s.secretCount)),
      el("td", { class: "actions", "data-label": "Actions" },
        el("button", { type: "button", onclick: edit, "aria-label": `Edit scope ${s.name}` }, "Edit"),
        el("button", { type: "button", onclick: () => { $("sec-where").value = s.id; location.hash = "#secrets"; }, "aria-label": `Secrets of scope ${s.name}` }, "Secrets"),
        confirmButton("Delete", "Really delete?", async () => {
          const r = await run(() => api(`/scopes/${encodeURIComponent(s.id)}`, { method: "DELETE" }), "Delete scope");
          if (r) { flash(`Scope ${s.name} deleted; its agents and secrets are organization-level now`); refreshScopes(); }
        }, "danger")));
  };
  const edit = () => {
    const nameId = nextId("sn"), descId = nextId("sd");
    const name = el("input", { id: nameId, value: s.name, required: true, maxlength: "100" });
    const desc = el("input", { id: descId, value: s.description || "" });
    const form = el("form", "inline-form",
      el("label", { for: nameId }, "Name"), name, el("label", { for: descId }, "Description"), desc,
      el("button", { type: "submit", class: "primary" }, "Save"),
      el("button", { type: "button", onclick: show }, "Cancel"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = {};
      if (name.value.trim() !== s.name) body.name = name.value.trim();
      if (desc.value.trim() !== (s.description || "")) body.description = desc.value.trim() || null;
      if (!Object.keys(body).length) { show(); return; }
      const r = await run(() => api(`/scopes/${encodeURIComponent(s.id)}`, { method: "PATCH", body }), "Save scope");
      if (r) { flash(`Scope ${r.name} saved`); refreshScopes(); }
    });
    row.replaceChildren(el("td", { colspan: "5" }, form));
    name.focus();
  };
  show();
  return row;
}

$("scope-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = { name: $("sc-name").value.trim() };
  const d = $("sc-desc").value.trim();
  if (d) body.description = d;
  const r = await run(() => api("/scopes", { method: "POST", body }), "Create scope");
  if (r) {
    e.target.reset();
    flash(`Scope ${r.name} created`);
    refreshScopes();
  }
});

// ---- secrets ----
function secretsPath() {
  const scope = $("sec-where").value;
  return scope ? `/scopes/${encodeURIComponent(scope)}/secrets` : "/secrets";
}

async function refreshSecrets() {
  if (!agents.scopes.length) {
    const r = await run(() => api("/scopes"), "Scopes");
    agents.scopes = (r && r.scopes) || [];
    fillScopeSelect($("sec-where"), "Organization level");
  }
  const path = secretsPath();
  const r = await run(() => api(path), "Secrets");
  if (!r || path !== secretsPath()) return;
  const list = $("secrets-list");
  const secrets = r.secrets || [];
  if (!secrets.length) {
    list.replaceChildren(el("p", "muted", "No secrets here yet."));
    return;
  }
  list.replaceChildren(el("table", "data",
    el("caption", "sr-only", "Secret keys"),
    el("thead", null, el("tr", null, el("th", { scope: "col" }, "Key"), el("th", { scope: "col" }, "Updated"), el("th", { scope: "col" }, "Actions"))),
    el("tbody", null, ...secrets.map((s) => el("tr", { "data-key": s.key },
      el("th", { scope: "row", class: "mono", "data-label": "Key" }, s.key),
      el("td", { "data-label": "Updated" }, fmtDate(s.updatedAt || s.createdAt)),
      el("td", { class: "actions", "data-label": "Actions" },
        el("button", { type: "button", "aria-label": `Update value of ${s.key}`, onclick: () => {
          $("sec-key").value = s.key;
          $("sec-value").focus();
        } }, "Update value"),
        confirmButton("Delete", "Really delete?", async () => {
          const d = await run(() => api(`${secretsPath()}/${encodeURIComponent(s.key)}`, { method: "DELETE" }), "Delete secret");
          if (d) { flash(`Secret ${s.key} deleted`); refreshSecrets(); }
        }, "danger")))))));
}

$("sec-where").addEventListener("change", refreshSecrets);

$("secret-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("sec-key").value.trim();
  const value = $("sec-value").value;
  const r = await run(() => api(secretsPath(), { method: "PUT", body: { key, value } }), "Save secret");
  // The value leaves the page either way.
  $("sec-value").value = "";
  if (r) {
    $("sec-key").value = "";
    flash(`Secret ${key} ${r.created ? "created" : "updated"}`);
    refreshSecrets();
  }
});
