// ---- sign-in, the agent's id from the path, and polling ----

page.id = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");

let pollTimer = null;
let polling = false;

function show(view) {
  for (const v of ["signin", "missing", "agent"]) $("view-" + v).hidden = v !== view;
  const signedIn = !!auth.token;
  $("sign-out").hidden = !signedIn;
  $("nav").hidden = view !== "agent";
  if (view === "signin") {
    document.title = "Sign in · agenthost";
    stopPolling();
    $("signin-token").focus();
  }
  if (view === "missing") {
    document.title = "Agent not found · agenthost";
    stopPolling();
  }
}

// refreshAgent reads the agent; it answers false when the page has no
// agent to show (not found, signed out).
async function refreshAgent() {
  let a;
  try {
    a = await api(agentPath());
  } catch (e) {
    if (e.status === 404) { page.agent = null; show("missing"); return false; }
    if (e.status !== 401) showError("Agent: " + e.message);
    return e.status !== 401 && !!page.agent;
  }
  const wasBusy = page.agent && page.agent.busy;
  const wasStatus = page.agent && page.agent.status;
  page.agent = a;
  drawAgent(a);
  show("agent");
  if ((wasBusy && !a.busy) || (wasStatus && wasStatus !== a.status)) {
    // A turn ended or the agent changed state: files and usage moved.
    showFolder(page.cwd);
    refreshUsage();
  }
  return true;
}

async function refreshAll() {
  if (!(await refreshAgent())) return;
  await Promise.all([refreshPending(), showFolder(page.cwd), refreshUsage()]);
}

// startPolling reads the status and what is waiting every 3 s while the
// tab is visible.
function startPolling() {
  stopPolling();
  const tick = async () => {
    if (!document.hidden && !polling) {
      polling = true;
      try {
        if (await refreshAgent()) await refreshPending();
      } finally { polling = false; }
    }
    if (page.agent) pollTimer = setTimeout(tick, 3000);
  };
  pollTimer = setTimeout(tick, 3000);
}

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = null;
}

async function openPage() {
  if (!auth.token) { show("signin"); return; }
  if (!page.id) { show("missing"); return; }
  await refreshAll();
  if (page.agent) startPolling();
}

onSignIn(async () => {
  await openPage();
  $("main").focus({ preventScroll: true });
});

$("sign-out").addEventListener("click", () => {
  auth.token = "";
  page.agent = null;
  flash("Signed out");
  show("signin");
});

auth.onSignedOut = (why) => {
  page.agent = null;
  showError("Signed out: " + why);
  show("signin");
};

lifecycle("act-start", "start", "started");
lifecycle("act-stop", "stop", "stopped");
lifecycle("act-restart", "restart", "restarted");
$("files-refresh").addEventListener("click", () => showFolder(page.cwd));
$("usage-refresh").addEventListener("click", refreshUsage);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && page.agent) refreshAgent().then((ok) => ok && refreshPending());
});

openPage();
