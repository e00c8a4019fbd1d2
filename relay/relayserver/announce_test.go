package relayserver

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/relay"
	"github.com/agenthost/agenthost/trust"
)

func TestAnnounceLookupSearch(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, nil)
	translator := identity(t, 1)
	runAnnouncer(t, s.URL()+"/ws/announce", translator, relay.AnnounceInfo{
		Summary:   "I translate text between 100+ languages with cultural context",
		Endpoints: []string{"http://192.168.1.5:8000", "ws://192.168.1.5:8000/ws"},
		Profile: &relay.Profile{Alias: "translator", Tools: []string{"translate", "detect_language"}, Model: "offline/demo",
			Examples: []string{"Translate 'hello' to Spanish", "What language is '你好' in?"}},
	}, echoHandler)
	weather := identity(t, 2)
	runAnnouncer(t, s.URL(), weather, relay.AnnounceInfo{
		Summary: "Weather forecasts for any city. I can also translate city names.",
		Profile: &relay.Profile{Alias: "weather", Tools: []string{"forecast"}},
	}, echoHandler)
	for i := byte(10); i < 15; i++ { // unrelated agents to give idf some weight
		runAnnouncer(t, s.URL(), identity(t, i), relay.AnnounceInfo{Summary: "I write poems about the sea"}, echoHandler)
	}

	// Lookup, both paths; the reference client's shape.
	for _, path := range []string{"/api/relay/agents/", "/api/agents/"} {
		// Upper-case hex names the same agent.
		code, body := httpGet(t, httpURL(s)+path+"0x"+strings.ToUpper(translator.Address()[2:]))
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		var raw map[string]any
		json.Unmarshal(body, &raw)
		for _, k := range []string{"address", "endpoints", "relay", "last_seen", "online", "profile", "summary"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("%s: no %q in %s", path, k, body)
			}
		}
		var info relay.AgentInfo
		json.Unmarshal(body, &info)
		if !info.Online || info.Address != translator.Address() || len(info.Endpoints) != 2 || info.Relay != s.URL() {
			t.Errorf("%s: %+v", path, info)
		}
	}
	if code, body := httpGet(t, httpURL(s)+"/api/relay/agents/"+identity(t, 99).Address()); code != http.StatusNotFound || !strings.Contains(string(body), "not found") {
		t.Errorf("unknown agent: %d %s", code, body)
	}
	if code, _ := httpGet(t, httpURL(s)+"/api/agents/0x1234"); code != http.StatusBadRequest {
		t.Errorf("bad address: %d", code)
	}
	info, err := relay.LookupAgent(context.Background(), nil, s.URL()+"/ws/announce", translator.Address())
	if err != nil || info.Address != translator.Address() {
		t.Errorf("LookupAgent = %+v, %v", info, err)
	}
	if _, err := relay.LookupAgent(context.Background(), nil, s.URL(), identity(t, 99).Address()); err != relay.ErrAgentNotFound {
		t.Errorf("LookupAgent(unknown) err = %v", err)
	}

	// Search: words in summary, examples and tools; exact tool names first.
	search := func(q string, limit, offset int) *relay.SearchResult {
		t.Helper()
		res, err := relay.SearchAgents(context.Background(), nil, s.URL(), q, limit, offset)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := search("translate", 0, 0)
	if res.Total != 2 || res.Agents[0].Address != translator.Address() || res.Agents[1].Address != weather.Address() {
		t.Errorf("search translate: %+v", res)
	}
	if res := search("detect_language", 0, 0); res.Total != 1 || res.Agents[0].Address != translator.Address() {
		t.Errorf("search by tool name: %+v", res)
	}
	if res := search("detect language", 0, 0); res.Total < 1 || res.Agents[0].Address != translator.Address() {
		t.Errorf("search by spaced tool name: %+v", res)
	}
	if res := search("forecast", 0, 0); res.Total != 1 || res.Agents[0].Address != weather.Address() {
		t.Errorf("search forecast: %+v", res)
	}
	if res := search("Spanish", 0, 0); res.Total != 1 || res.Agents[0].Address != translator.Address() {
		t.Errorf("search example words: %+v", res)
	}
	if res := search("你好", 0, 0); res.Total != 1 {
		t.Errorf("search CJK example: %+v", res)
	}
	if res := search("quantum chromodynamics", 0, 0); res.Total != 0 || len(res.Agents) != 0 || res.NextOffset != nil {
		t.Errorf("no match: %+v", res)
	}
	// Paging over the five poets and the rest.
	all := search("", 3, 0)
	if all.Total != 7 || len(all.Agents) != 3 || all.NextOffset == nil || *all.NextOffset != 3 {
		t.Fatalf("page 1: %+v", all)
	}
	seen := map[string]bool{}
	for off := 0; ; {
		page := search("", 3, off)
		for _, a := range page.Agents {
			if seen[a.Address] {
				t.Errorf("%s on two pages", a.Address)
			}
			seen[a.Address] = true
		}
		if page.NextOffset == nil {
			break
		}
		off = *page.NextOffset
	}
	if len(seen) != 7 {
		t.Errorf("paged through %d agents, want 7", len(seen))
	}
	for _, q := range []string{"limit=0", "limit=x", "offset=-1"} {
		if code, _ := httpGet(t, httpURL(s)+"/api/agents?"+q); code != http.StatusBadRequest {
			t.Errorf("%s: %d", q, code)
		}
	}
	code, body := httpGet(t, httpURL(s)+"/health")
	if code != http.StatusOK || !strings.Contains(string(body), `"agents_online":7`) {
		t.Errorf("health: %d %s", code, body)
	}
}

func TestAnnounceRefused(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, func(c *Config) { c.AnnounceTimeout = 300 * time.Millisecond })
	owner, thief := identity(t, 1), identity(t, 2)
	now := time.Now()

	refused := func(name string, frame []byte, wantReason, wantText string) {
		t.Helper()
		a := newRawAgent(t, s, thief)
		a.send(frame)
		m := a.read()
		if m["type"] != relay.TypeError || !strings.Contains(m["error"].(string), wantText) || m["original_type"] != relay.TypeAnnounce {
			t.Errorf("%s: answered %v", name, m)
		}
		if code := expectClosed(t, a.c); code != websocket.StatusPolicyViolation {
			t.Errorf("%s: close %v", name, code)
		}
		if n := metric(t, s, `relay_announce_failures_total{reason="`+wantReason+`"}`); n < 1 {
			t.Errorf("%s: failure not counted", name)
		}
	}

	// Impersonation: the thief signs an ANNOUNCE naming the owner's address.
	forged := map[string]any{}
	json.Unmarshal(newRawAgentFrame(t, owner, now), &forged)
	forged["address"] = owner.Address()
	delete(forged, "signature")
	fb, err := signAs(thief, forged)
	if err != nil {
		t.Fatal(err)
	}
	refused("impersonation", fb, "bad_signature", "Invalid signature")

	refused("stale", newRawAgentFrame(t, owner, now.Add(-10*time.Minute)), "stale_timestamp", "stale")
	refused("future", newRawAgentFrame(t, owner, now.Add(10*time.Minute)), "stale_timestamp", "stale")
	refused("not announce", []byte(`{"type":"INPUT","prompt":"hi"}`), "malformed", "expected an ANNOUNCE")
	long, _ := signAs(owner, map[string]any{"type": "ANNOUNCE", "address": owner.Address(), "timestamp": now.Unix(), "summary": strings.Repeat("x", 1001)})
	refused("summary", long, "summary_too_long", "Summary too long (max 1000 chars)")

	// Replay: the owner's ANNOUNCE, captured and re-sent on a new
	// connection, does not displace the owner.
	holder := newRawAgent(t, s, owner)
	frame := holder.announceFrame(now, relay.AnnounceInfo{Summary: "the real one"})
	holder.send(frame)
	if m := holder.read(); m["type"] != relay.TypeAnnounceOK {
		t.Fatalf("owner: %v", m)
	}
	replayer := newRawAgent(t, s, thief)
	replayer.send(frame)
	if m := replayer.read(); m["type"] != relay.TypeError || !strings.Contains(m["error"].(string), "replayed") {
		t.Errorf("replay answered %v", m)
	}
	expectClosed(t, replayer.c)
	if metric(t, s, `relay_announce_failures_total{reason="replayed"}`) < 1 {
		t.Error("replay not counted")
	}
	// The holder still serves clients.
	cl := newClient(t, s)
	cl.send(map[string]any{"type": "INPUT", "to": owner.Address(), "prompt": "still you?"})
	if m := holder.read(); m["prompt"] != "still you?" || m["session_id"] == nil {
		t.Errorf("holder got %v", m)
	}
	// The holder may repeat its timestamp (a heartbeat within the second).
	holder.send(frame)
	if m := holder.read(); m["type"] != relay.TypeAnnounceOK {
		t.Errorf("repeat on the holding connection: %v", m)
	}
	// After the owner leaves, its captured ANNOUNCE still cannot be replayed.
	holder.c.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, 5*time.Second, "owner offline", func() bool { info, _ := s.reg.lookup(owner.Address()); return !info.Online })
	replayer2 := newRawAgent(t, s, thief)
	replayer2.send(frame)
	if m := replayer2.read(); m["type"] != relay.TypeError {
		t.Errorf("replay after leave answered %v", m)
	}

	// No ANNOUNCE at all.
	silent := newRawAgent(t, s, thief)
	if m := silent.read(); m["type"] != relay.TypeError || !strings.Contains(m["error"].(string), "no ANNOUNCE") {
		t.Errorf("timeout answered %v", m)
	}
	expectClosed(t, silent.c)
}

func newRawAgentFrame(t testing.TB, id *trust.Identity, at time.Time) []byte {
	t.Helper()
	f, err := relay.BuildAnnounce(id, relay.AnnounceInfo{Summary: "x"}, "", at)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// signAs signs msg (without "signature") with id whatever address it names,
// as a forger would.
func signAs(id *trust.Identity, msg map[string]any) ([]byte, error) {
	canon, err := trust.CanonicalForm(msg, trust.FormRelay)
	if err != nil {
		return nil, err
	}
	msg["signature"] = hex.EncodeToString(id.Sign(canon))
	return json.Marshal(msg)
}

// TestReplaceOnlyWhenFresh: a second connection takes the address only
// with a newer signature, and the first is told and closed.
func TestReplaceOnlyWhenFresh(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, nil)
	id := identity(t, 3)
	now := time.Now()
	first := newRawAgent(t, s, id)
	first.announce(now, relay.AnnounceInfo{Summary: "first"})

	// Same timestamp, freshly signed but not newer: refused.
	same := newRawAgent(t, s, id)
	same.send(same.announceFrame(now, relay.AnnounceInfo{Summary: "same second"}))
	if m := same.read(); m["type"] != relay.TypeError {
		t.Fatalf("same-second announce on a new connection: %v", m)
	}
	expectClosed(t, same.c)

	second := newRawAgent(t, s, id)
	second.announce(now.Add(time.Second), relay.AnnounceInfo{Summary: "second"})
	if m := first.read(); m["type"] != relay.TypeError || !strings.Contains(m["error"].(string), "replaced") {
		t.Errorf("first told %v", m)
	}
	expectClosed(t, first.c)
	info, ok := s.reg.lookup(id.Address())
	if !ok || !info.Online || info.Summary != "second" {
		t.Errorf("lookup after replace: %+v", info)
	}
	if metric(t, s, `relay_disconnects_total{reason="replaced"}`) != 1 {
		t.Error("replacement not counted")
	}
	// The first connection's departure does not take the agent offline:
	// wait until both refused connections (same, first) have ended at the
	// relay.
	testutil.Eventually(t, 5*time.Second, "the replaced connections to end", func() bool {
		return metric(t, s, `relay_connection_duration_seconds_count{kind="agent"}`) >= 2
	})
	if info, _ := s.reg.lookup(id.Address()); !info.Online {
		t.Error("agent offline after the replaced connection closed")
	}
	// A connection cannot switch addresses.
	second.send(second.announceFrame(now.Add(2*time.Second), relay.AnnounceInfo{}))
	second.read()
	other := identity(t, 4)
	f, _ := relay.BuildAnnounce(other, relay.AnnounceInfo{}, "", now.Add(3*time.Second))
	second.send(f)
	if m := second.read(); m["type"] != relay.TypeError || !strings.Contains(m["error"].(string), "one address") {
		t.Errorf("address switch answered %v", m)
	}
}

func TestSilentAgentDropped(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, func(c *Config) { c.SilenceTimeout = 300 * time.Millisecond })
	quiet := newRawAgent(t, s, identity(t, 5))
	quiet.announce(time.Now(), relay.AnnounceInfo{})
	// An agent that keeps re-announcing stays.
	busy := identity(t, 6)
	runAnnouncer(t, s.URL(), busy, relay.AnnounceInfo{}, echoHandler, relay.WithHeartbeat(50*time.Millisecond))

	if m := quiet.read(); m["type"] != relay.TypeError || !strings.Contains(m["error"].(string), "no ANNOUNCE") {
		t.Errorf("silent agent told %v", m)
	}
	if code := expectClosed(t, quiet.c); code != closeSilent {
		t.Errorf("close status %v", code)
	}
	if code, _ := httpGet(t, httpURL(s)+"/api/agents/"+quiet.id.Address()); code != http.StatusNotFound {
		t.Errorf("silent agent still listed: %d", code)
	}
	// Let the heartbeating agent outlive the silence timeout: seven more of
	// its announces (every 50 ms) span more than the 300 ms timeout.
	n0 := metric(t, s, "relay_announces_total")
	testutil.Eventually(t, 10*time.Second, "seven more announces from the heartbeating agent", func() bool {
		return metric(t, s, "relay_announces_total") >= n0+7
	})
	if info, ok := s.reg.lookup(busy.Address()); !ok || !info.Online {
		t.Errorf("heartbeating agent dropped: %+v", info)
	}
	if metric(t, s, `relay_disconnects_total{reason="agent_silent"}`) != 1 {
		t.Error("silence not counted")
	}
}

// TestOfflineAgentRemembered: a disconnected agent is listed offline (its
// direct endpoints may still work) until the silence timeout forgets it.
func TestOfflineAgentRemembered(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, func(c *Config) { c.SilenceTimeout = 400 * time.Millisecond })
	a := newRawAgent(t, s, identity(t, 7))
	a.announce(time.Now(), relay.AnnounceInfo{Endpoints: []string{"http://10.1.2.3:8000"}})
	a.c.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, 5*time.Second, "offline", func() bool { info, ok := s.reg.lookup(a.id.Address()); return ok && !info.Online })
	info, _ := s.reg.lookup(a.id.Address())
	if len(info.Endpoints) != 1 {
		t.Errorf("offline record %+v", info)
	}
	if res := s.reg.search("", 10, 0); res.Total != 0 {
		t.Errorf("offline agent in search: %+v", res)
	}
	testutil.Eventually(t, 5*time.Second, "forgotten", func() bool { _, ok := s.reg.lookup(a.id.Address()); return !ok })
}
