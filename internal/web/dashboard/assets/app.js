// ---- sign-in and the views (hash routes: #agents, #scopes, #secrets,
// #tokens, #usage) ----

const VIEWS = {
  agents: { show: () => { loadScopesForAgents(); startAgentPolling(); }, hide: stopAgentPolling },
  scopes: { show: refreshScopes },
  secrets: { show: refreshSecrets },
  tokens: { show: refreshTokens },
  usage: { show: refreshUsageAgents },
};

let current = "";

function showView(name, focus) {
  const signedIn = !!auth.token;
  if (!signedIn) name = "signin";
  else if (!VIEWS[name]) name = "agents";
  if (current && VIEWS[current] && VIEWS[current].hide) VIEWS[current].hide();
  current = name;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== "view-" + name; });
  $("nav").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  document.querySelectorAll("#nav a").forEach((a) => {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  const h = document.querySelector(`#view-${name} h1`);
  document.title = (h ? h.textContent + " · " : "") + "agenthost";
  if (name === "signin") {
    $("signin-token").focus();
    return;
  }
  if (focus) $("main").focus({ preventScroll: true });
  VIEWS[name].show();
}

window.addEventListener("hashchange", () => showView(location.hash.slice(1), true));

onSignIn(() => {
  if (!location.hash || location.hash === "#signin") location.hash = "#agents";
  else showView(location.hash.slice(1), true);
});

$("sign-out").addEventListener("click", () => {
  auth.token = "";
  flash("Signed out");
  showView("signin");
});

auth.onSignedOut = (why) => {
  showError("Signed out: " + why);
  showView("signin");
};

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && current === "agents") refreshAgents();
});

showView(location.hash.slice(1));
