package host_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient"
	"github.com/a2aproject/a2a-go/a2aclient/agentcard"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/trust"
)

// The A2A signing extension: what is signed is what runs. Each test says
// which hole it closes.

// signedA2A signs body for the agent at `to` and returns the header pair.
func signedA2A(t testing.TB, id *trust.Identity, to string, at time.Time, body []byte) []string {
	t.Helper()
	env, err := host.SignA2A(id, to, at, body)
	if err != nil {
		t.Fatal(err)
	}
	return []string{host.A2AEnvelopeHeader, env}
}

func rpcError(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	if e == nil {
		return ""
	}
	s, _ := e["message"].(string)
	if d, ok := e["data"].(map[string]any); ok {
		if x, ok := d["error"].(string); ok {
			s += ": " + x
		}
	}
	return s
}

// TestA2AStrictRefusesAnonymous: under strict an unsigned call is 401 and
// runs nothing; a whitelisted signer is admitted and owns its context;
// under open and careful anonymous callers are admitted.
func TestA2AStrictRefusesAnonymous(t *testing.T) {
	good, stranger := newIdentity(t), newIdentity(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".co", "host.yaml"), "trust: strict\nwhitelist:\n  - "+good.Address()+"\n")
	h := startTrustHost(t, dir)
	body := a2aBody(t, "message/send", map[string]any{"message": userMsg("hello")})
	code, m := a2aPost(t, h.URL, body)
	if code != 401 || !strings.Contains(rpcError(m), "signature required") {
		t.Fatalf("anonymous under strict: %d %v", code, m)
	}
	for _, method := range []string{"tasks/get", "tasks/cancel"} {
		if code, m := a2aPost(t, h.URL, a2aBody(t, method, map[string]any{"id": "x~y"})); code != 401 {
			t.Fatalf("anonymous %s under strict: %d %v", method, code, m)
		}
	}
	code, m = a2aPost(t, h.URL, body, signedA2A(t, stranger, h.Address(), time.Now(), body)...)
	if code != 403 {
		t.Fatalf("stranger under strict: %d %v", code, m)
	}
	code, m = a2aPost(t, h.URL, body, signedA2A(t, good, h.Address(), time.Now(), body)...)
	if code != 200 || m["error"] != nil {
		t.Fatalf("whitelisted under strict: %d %v", code, m)
	}
	task := m["result"].(map[string]any)
	if taskState(task) != "completed" {
		t.Fatalf("task: %v", task)
	}
	// The context is the signer's session.
	code, sess := signedGet(t, good, h.URL, "/sessions/"+task["contextId"].(string))
	wantStatus(t, code, 200, sess)

	for _, level := range []string{"open", "careful"} {
		h := startTrustHost(t, t.TempDir(), host.WithTrust(level))
		if task := send(t, h.URL, userMsg("hello")); taskState(task) != "completed" {
			t.Fatalf("anonymous under %s: %v", level, task)
		}
	}
}

// TestA2AUnsignedFieldInjection: a signed request whose body was changed
// after signing — a member added, the contextId or the prompt changed,
// even whitespace — is refused, and the refusal does not use up the
// signature (the genuine request still goes through once). Without the
// body digest the signature would cover only who sent it, and anybody on
// the path could make it run other words in another context.
func TestA2AUnsignedFieldInjection(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	alice := newIdentity(t)
	victim := send(t, h.URL, userMsg("my name is Victim"))
	body := a2aBody(t, "message/send", map[string]any{"message": userMsg("hello")})
	hdr := signedA2A(t, alice, h.Address(), time.Now(), body)
	tampered := map[string][]byte{
		"extra member":    mergeJSON(t, body, `{"metadata": {"x": 1}}`),
		"prompt changed":  bytes.Replace(body, []byte(`"hello"`), []byte(`"rm -rf"`), 1),
		"context added":   bytes.Replace(body, []byte(`"kind":"message"`), []byte(`"contextId":"`+victim["contextId"].(string)+`","kind":"message"`), 1),
		"whitespace":      append(append([]byte{}, body...), ' '),
		"another request": a2aBody(t, "tasks/get", map[string]any{"id": victim["id"]}),
	}
	for name, b := range tampered {
		if bytes.Equal(b, body) {
			t.Fatalf("%s: nothing changed", name)
		}
		code, m := a2aPost(t, h.URL, b, hdr...)
		if code != 401 || !strings.Contains(rpcError(m), "differs from what the signature covers") {
			t.Fatalf("%s: %d %v", name, code, m)
		}
	}
	// A payload without the body digest is no A2A signature.
	env, err := trust.Sign(alice, trust.NewPayload(h.Address(), time.Now(), map[string]any{"prompt": "hello"}))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(env)
	if code, m := a2aPost(t, h.URL, body, host.A2AEnvelopeHeader, string(raw)); code != 401 || !strings.Contains(rpcError(m), "a2a_body required") {
		t.Fatalf("payload without a2a_body: %d %v", code, m)
	}
	// Signed X-Co-* headers cover no body: refused rather than read as a
	// signature of it.
	sh := trust.SignHeaders(alice, "POST", "/a2a", h.Address(), time.Now())
	var kv []string
	for k := range sh {
		kv = append(kv, k, sh.Get(k))
	}
	if code, m := a2aPost(t, h.URL, body, kv...); code != 401 {
		t.Fatalf("signed headers on a body: %d %v", code, m)
	}
	code, m := a2aPost(t, h.URL, body, hdr...)
	if code != 200 || taskState(m["result"].(map[string]any)) != "completed" {
		t.Fatalf("the genuine request: %d %v", code, m)
	}
}

// TestA2ACaseVariantKeys: a body in which one object holds two member
// names that encoding/json takes for one ("message" and "Message", or a
// name twice) is refused, signed or not, before anything runs: a2a-go
// decodes with encoding/json, which lets the last of them win, while a
// log, a proxy or the signer's own tools may read the first.
func TestA2ACaseVariantKeys(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	alice := newIdentity(t)
	base := a2aBody(t, "message/send", map[string]any{"message": userMsg("hello")})
	inner := `{"kind":"message","role":"user","messageId":"x","parts":[{"kind":"text","text":"unsigned words"}]}`
	cases := map[string][]byte{
		"Params":           mergeJSON(t, base, `{"Params": {"message": `+inner+`}}`),
		"params twice":     mergeJSON(t, base, `{"params": {"message": `+inner+`}}`),
		"METHOD":           mergeJSON(t, base, `{"METHOD": "tasks/cancel"}`),
		"nested Message":   bytes.Replace(base, []byte(`{"message":`), []byte(`{"Message":`+inner+`,"message":`), 1),
		"nested text":      bytes.Replace(base, []byte(`"text":"hello"`), []byte(`"text":"hello","TEXT":"unsigned words"`), 1),
		"unicode fold (ſ)": bytes.Replace(base, []byte(`{"message":`), []byte(`{"meſſage":`+inner+`,"message":`), 1),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if bytes.Equal(b, base) {
				t.Fatal("nothing changed")
			}
			for _, hdr := range [][]string{nil, signedA2A(t, alice, h.Address(), time.Now(), b)} {
				code, m := a2aPost(t, h.URL, b, hdr...)
				if code != 400 || !strings.Contains(rpcError(m), "differ only in case") && !strings.Contains(rpcError(m), "appears twice") {
					t.Fatalf("signed=%v: %d %v", hdr != nil, code, m)
				}
			}
		})
	}
}

// TestA2AReplay: a signed request runs once, at the agent it names only.
// The same request again is refused (the replay ledger), and so is the
// request sent to another agent; and a signature that names no agent is
// refused even by an agent that accepts such legacy signatures on its own
// protocol.
func TestA2AReplay(t *testing.T) {
	a := startTrustHost(t, t.TempDir())
	bdir := t.TempDir()
	writeFile(t, filepath.Join(bdir, ".co", "host.yaml"), "legacy_signatures: true\n")
	b := startTrustHost(t, bdir)
	alice := newIdentity(t)
	body := a2aBody(t, "message/send", map[string]any{"message": userMsg("hello")})
	hdr := signedA2A(t, alice, a.Address(), time.Now(), body)
	code, m := a2aPost(t, b.URL, body, hdr...)
	if code != 401 {
		t.Fatalf("replayed at another agent: %d %v", code, m)
	}
	// A payload that names no agent would be valid at every agent that
	// accepts legacy signatures: an A2A signature must name its agent.
	sum := sha256.Sum256(body)
	env, err := trust.Sign(alice, trust.NewPayload("", time.Now(), map[string]any{"a2a_body": hex.EncodeToString(sum[:])}))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(env)
	code, m = a2aPost(t, b.URL, body, host.A2AEnvelopeHeader, string(raw))
	if code != 401 || !strings.Contains(rpcError(m), "another agent") {
		t.Fatalf("unaddressed signature at a legacy agent: %d %v", code, m)
	}
	code, m = a2aPost(t, a.URL, body, hdr...)
	if code != 200 || m["error"] != nil {
		t.Fatalf("first use: %d %v", code, m)
	}
	code, m = a2aPost(t, a.URL, body, hdr...)
	if code != 401 || !strings.Contains(rpcError(m), "already used") {
		t.Fatalf("replayed: %d %v", code, m)
	}
	// An old signature is refused too.
	old := a2aBody(t, "message/send", map[string]any{"message": userMsg("hello")})
	code, m = a2aPost(t, a.URL, old, signedA2A(t, alice, a.Address(), time.Now().Add(-time.Hour), old)...)
	if code != 401 || !strings.Contains(rpcError(m), "expired") {
		t.Fatalf("old signature: %d %v", code, m)
	}
}

// FuzzA2AKeys: the member-name check never panics and accepts only
// single valid JSON values.
func FuzzA2AKeys(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","method":"message/send","params":{"message":{}}}`))
	f.Add([]byte(`{"a":1,"A":2}`))
	f.Add([]byte(`[{"x":{"y":[1,{"Y":2,"y":3}]}}]`))
	f.Add([]byte(`{"k":1,"\u212a":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := host.CheckA2AKeys(b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
	})
}

// TestA2AGoClientSigned: a2a-go's own client, its HTTP client signing
// through host.A2ASigner, is admitted by a strict agent as the signer; the
// task it made is read back after the host restarts on the same data.
func TestA2AGoClientSigned(t *testing.T) {
	id := newIdentity(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".co", "host.yaml"), "trust: strict\nwhitelist:\n  - "+id.Address()+"\n")
	h := startTrustHost(t, dir)
	ctx := context.Background()
	card, err := agentcard.DefaultResolver.Resolve(ctx, h.URL)
	if err != nil {
		t.Fatal(err)
	}
	signer := &host.A2ASigner{ID: id, To: h.Address()}
	client, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithJSONRPCTransport(&http.Client{Transport: signer}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.SendMessage(ctx, &a2a.MessageSendParams{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: "my name is Ada"})})
	if err != nil {
		t.Fatal(err)
	}
	task, ok := res.(*a2a.Task)
	if !ok || task.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("result: %#v", res)
	}
	// Unsigned, the same client is refused.
	plain, err := a2aclient.NewFromCard(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.GetTask(ctx, &a2a.TaskQueryParams{ID: task.ID}); err == nil {
		t.Fatal("an unsigned tasks/get was admitted under strict")
	}
	// A body over the pre-admission limit is refused before it is read.
	big := a2aBody(t, "message/send", map[string]any{"message": userMsg(strings.Repeat("x", host.PreAdmitLimit+1))})
	if code, m := a2aPost(t, h.URL, big, signedA2A(t, id, h.Address(), time.Now(), big)...); code != 413 {
		t.Fatalf("a large body before admission: %d %v", code, m)
	}

	h.stop()
	h2 := startTrustHost(t, dir)
	// The card names the old URL; talk to the new one.
	client2, err := a2aclient.NewFromEndpoints(ctx, []a2a.AgentInterface{{Transport: a2a.TransportProtocolJSONRPC, URL: h2.URL + host.A2APath}},
		a2aclient.WithJSONRPCTransport(&http.Client{Transport: &host.A2ASigner{ID: id, To: h2.Address()}}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := client2.GetTask(ctx, &a2a.TaskQueryParams{ID: task.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.State != a2a.TaskStateCompleted || got.ContextID != task.ContextID || len(got.Artifacts) != 1 {
		t.Fatalf("after restart: %#v", got)
	}
}
