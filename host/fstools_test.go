package host_test

import (
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/agent/fstools"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/trust"
)

// TestFileToolsReadOwnUploads: a file a caller uploads with POST /input is
// readable by the agent's read_file in that caller's runs, and in no other
// caller's — not a second signed caller, not an anonymous one — even when
// the other caller names the exact path.
func TestFileToolsReadOwnUploads(t *testing.T) {
	h := startHostWith(t, func() (*agent.Agent, error) {
		return agent.New("reader", agent.WithModel("offline/demo"), agent.WithTools(fstools.Tools(host.UploadsDir)...))
	}, host.WithTrust("open"))
	ts, dir := h.ts, h.dir
	to := hostAddress(t, ts.URL)
	alice, bob := newIdentity(t), newIdentity(t)
	secret := "alice's quarterly numbers: 42"
	files := []map[string]any{{"name": "report.txt", "data": "data:text/plain;base64," + base64.StdEncoding.EncodeToString([]byte(secret))}}
	fj, _ := json.Marshal(files)
	digest, err := trust.BodyDigest(nil, nil, fj)
	if err != nil {
		t.Fatal(err)
	}

	ask := func(id *trust.Identity, fields, outer map[string]any) string {
		t.Helper()
		var code int
		var m map[string]any
		if id == nil {
			code, m = post(t, &testHost{URL: ts.URL}, fields)
		} else {
			code, m = postRaw(t, ts.URL, signedInput(t, id, to, time.Now(), fields, outer))
		}
		wantStatus(t, code, 200, m)
		return mustJSON(m)
	}

	listed := ask(alice, map[string]any{"prompt": "use list_files", "digest": digest}, map[string]any{"files": files})
	path := regexp.MustCompile(`/[^"\\ ]*report\.txt`).FindString(listed)
	if path == "" || !strings.HasPrefix(path, filepath.Join(dir, ".co", "uploads")) {
		t.Fatalf("list_files did not show the upload: %s", listed)
	}
	read := func(id *trust.Identity) string {
		return ask(id, map[string]any{"prompt": `use read_file {"path": "` + path + `"}`}, nil)
	}
	if got := read(alice); !strings.Contains(got, secret) {
		t.Fatalf("alice's read_file of her own upload: %s", got)
	}
	for name, id := range map[string]*trust.Identity{"bob": bob, "anonymous": nil} {
		got := read(id)
		if strings.Contains(got, "quarterly") {
			t.Fatalf("%s read alice's upload: %s", name, got)
		}
		if !strings.Contains(got, "outside") {
			t.Fatalf("%s: want read_file refused as outside its directory: %s", name, got)
		}
	}
}
