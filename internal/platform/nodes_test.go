package platform_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/agents"
	platformapi "github.com/agenthost/agenthost/internal/platform/api"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/platform/secrets"
	"github.com/agenthost/agenthost/internal/platform/store"
)

// TestReplicasForward: two platform nodes share one PostgreSQL store; an
// agent node A runs is served in full through node B, which forwards its
// requests to A (token API, session capability API, event streams, and
// the lifecycle), and says so clearly when A cannot be reached.
func TestReplicasForward(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the real runtime")
	}
	key := make([]byte, secrets.KeySize)
	rand.Read(key)
	node := func(name string) func(*platform.Config) {
		return func(c *platform.Config) {
			c.Getenv = func(k string) string {
				if k == secrets.KeyEnv {
					return hex.EncodeToString(key)
				}
				return ""
			}
			c.Agents.Node = name
		}
	}
	cmd := []string{platformtest.Agenthost(t), "serve", "--role", "coding"}
	a := newRigWith(t, true, agents.Config{Command: cmd}, node("node-a"))
	b := &rig{t: t, opts: platformtest.Options{Postgres: true, DSN: a.env.DSN, DataDir: dataDir(t), Logs: &platformtest.Buffer{}, Configure: node("node-b")}}
	b.opts.Agents = agents.Config{Command: cmd, Ports: ports(), ProvisionTimeout: 20 * time.Second}
	b.driver = b.newDriver()
	b.start()

	tok := a.env.Token(t, "acme")
	viaA := &api{t: t, Client: &platformtest.Client{Base: a.env.URL, Token: tok}}
	viaB := &api{t: t, Client: &platformtest.Client{Base: b.env.URL, Token: tok}}

	id, created := viaA.create(map[string]any{"name": "a", "initialPrompt": "Hello from A"})
	if n := a.agent(id).Node; n != "node-a" {
		t.Fatalf("agent's node = %q, want node-a", n)
	}
	sid := maps(created["sessions"])[0]["id"].(string)
	sessionURL := maps(created["sessions"])[0]["url"].(string)
	// Status with the runtime's view (busy, sessions) through B.
	if st := viaB.waitIdle(id); st["status"] != "RUNNING" || len(maps(st["sessions"])) != 1 {
		t.Fatalf("status via B = %v", st)
	}

	// History, a message, a permission and its reply, all through B.
	if msgs := viaB.history(id, sid); len(msgs) < 2 || text(msgs[0]) != "Hello from A" {
		t.Fatalf("history via B = %v", msgs)
	}
	events := openEvents(t, b.env.URL+"/api/v1/agents/"+id+"/events?sessionId="+sid, map[string]string{"Authorization": "Bearer " + tok})
	viaB.post("/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sid, "message": `run bash {"command":"echo through-b | tee b.txt"}`})
	next(t, events, "a busy status event through B", func(ev sseEvent) bool { return ev.Type == "status" && ev.Data["busy"] == true })
	perm := viaB.pendingOne("/api/v1/agents/"+id+"/permissions", "permissions")
	if got := viaB.post("/api/v1/agents/"+id+"/permissions/"+perm["id"].(string)+"/reply", map[string]any{"reply": "once"}); got["replied"] != true {
		t.Fatalf("reply via B = %v", got)
	}
	next(t, events, "the turn's end through B", func(ev sseEvent) bool { return ev.Type == "status" && ev.Data["busy"] == false })
	var out string
	for _, m := range viaB.history(id, sid) {
		out += text(m)
	}
	if !strings.Contains(out, "through-b") {
		t.Fatalf("the bash output is not in the history read via B: %s", out)
	}
	if u := viaB.get("/api/v1/agents/" + id + "/usage"); u["agentId"] != id {
		t.Fatalf("usage via B = %v", u)
	}
	// The workspace's files, listed and downloaded through B.
	if l := viaB.get("/api/v1/agents/" + id + "/files"); !strings.Contains(fmt.Sprint(l["entries"]), "b.txt") {
		t.Fatalf("files via B = %v", l)
	}
	if r := viaB.Do(t, "GET", "/api/v1/agents/"+id+"/files/content?path=b.txt", nil); r.Status != 200 || string(r.Body) != "through-b\n" || r.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("download via B: %d %q %v", r.Status, r.Body, r.Header)
	}

	// The session page's capability API through B.
	s := newSessionAPI(t, strings.Replace(sessionURL, a.env.URL, b.env.URL, 1))
	if got := s.do("GET", "/api/messages", nil); got["sessionId"] != sid || len(maps(got["messages"])) < 2 {
		t.Fatalf("capability messages via B = %v", got)
	}
	if st := s.do("GET", "/api/status", nil); st["sessionId"] != sid || st["status"] != "RUNNING" {
		t.Fatalf("capability status via B = %v", st)
	}
	capEvents := openEvents(t, s.base+"/api/events?cap="+url.QueryEscape(s.cap), nil)
	if got := s.do("POST", "/api/messages", map[string]any{"message": "and via the page"}); got["sessionId"] != sid || got["sent"] != true {
		t.Fatalf("capability send via B = %v", got)
	}
	next(t, capEvents, "the page's turn end through B", func(ev sseEvent) bool { return ev.Type == "status" && ev.Data["busy"] == false })
	(&sessionAPI{t: t, base: s.base}).raw("GET", "/api/messages", nil).WantError(t, 401, "capability")

	// A forged forwarding mark does not stop B from forwarding (nor make
	// A skip anything): it is simply not honoured.
	req, _ := http.NewRequest("GET", b.env.URL+"/api/v1/agents/"+id+"/usage", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set(platformapi.ForwardedHeader, "node-a:"+time.Now().Format("20060102")+":00")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("usage via B with a forged mark: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// Tokens still count: a bad token is 401 on B before any forwarding.
	(&platformtest.Client{Base: b.env.URL, Token: "ah_bogus"}).Do(t, "GET", "/api/v1/agents/"+id+"/messages", nil).WantError(t, 401, "")

	// A node that cannot be reached: 503, saying which and where.
	st := a.env.Server.Store()
	if err := st.PutNode(context.Background(), "node-a", "http://127.0.0.1:1", time.Now()); err != nil {
		t.Fatal(err)
	}
	viaB.Do(t, "GET", "/api/v1/agents/"+id+"/messages", nil).WantError(t, 503, `runs on another platform node ("node-a"; this is "node-b"), which did not answer at http://127.0.0.1:1`)
	if err := st.PutNode(context.Background(), "node-a", a.env.URL, time.Now()); err != nil {
		t.Fatal(err)
	}

	// The lifecycle through B: A restarts and stops its runtime.
	if got := viaB.post("/api/v1/agents/"+id+"/restart", nil); got["restarted"] != true || got["status"] != "RUNNING" {
		t.Fatalf("restart via B = %v", got)
	}
	if n := a.agent(id).Node; n != "node-a" {
		t.Fatalf("after a restart via B the node is %q, want node-a", n)
	}
	viaB.waitIdle(id)
	if got := viaB.post("/api/v1/agents/"+id+"/stop", nil); got["stopped"] != true || got["status"] != "STOPPED" {
		t.Fatalf("stop via B = %v", got)
	}
	if ag := a.agent(id); ag.Status != store.StatusStopped {
		t.Fatalf("after a stop via B: %s", ag.Status)
	}
}
