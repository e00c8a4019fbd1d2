package coderuntime

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/coding"
	"github.com/agenthost/agenthost/internal/sqlitedb"
)

// v1Schema is the runtime database of the first format, as the coding
// runtime made it before it stood on the session engine.
const v1Schema = `
CREATE TABLE sessions (id TEXT PRIMARY KEY, title TEXT, created INTEGER NOT NULL);
CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL REFERENCES sessions(id), id TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX messages_session ON messages(session_id, seq);
CREATE TABLE prompts (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL REFERENCES sessions(id),
	text TEXT NOT NULL, state TEXT NOT NULL, created INTEGER NOT NULL);
CREATE INDEX prompts_state ON prompts(state, seq);
CREATE TABLE requests (id TEXT PRIMARY KEY, kind TEXT NOT NULL, session_id TEXT NOT NULL, call_id TEXT NOT NULL DEFAULT '',
	data TEXT NOT NULL, state TEXT NOT NULL, reply TEXT, created INTEGER NOT NULL);
CREATE INDEX requests_state ON requests(state);
CREATE TABLE rules (permission TEXT NOT NULL, pattern TEXT NOT NULL, action TEXT NOT NULL, PRIMARY KEY (permission, pattern));
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL);
`

// TestUpgradeV1 starts a runtime on a database of the first format, left
// by a runtime that died with a turn waiting for a permission and a
// message queued: the history, the titles, the remembered rule and the
// event ids carry over, the permission expires and the queued message
// runs.
func TestUpgradeV1(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	path := filepath.Join(ws, ".agenthost", DatabaseName)
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := sqlitedb.Migrate(ctx, db, []string{v1Schema}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO sessions VALUES ('ses_old', 'Old work', 1705312200000)`,
		`INSERT INTO messages (session_id, id, data) VALUES
			('ses_old', 'msg_1', '{"id":"msg_1","role":"user","parts":[{"type":"text","text":"run it"}],"created":1705312200000}'),
			('ses_old', 'msg_2', '{"id":"msg_2","role":"assistant","parts":[{"type":"tool_call","tool_call":{"id":"call_1","name":"bash","args":{"command":"echo hi"}}}],"created":1705312201000}')`,
		`INSERT INTO prompts (id, session_id, text, state, created) VALUES
			('msg_1', 'ses_old', 'run it', 'running', 1705312200000),
			('msg_3', 'ses_old', 'after the upgrade', 'queued', 1705312202000)`,
		`INSERT INTO requests VALUES ('perm_1', 'permission', 'ses_old', 'call_1',
			'{"id":"perm_1","sessionID":"ses_old","permission":"bash","patterns":["echo hi"],"metadata":{},"always":false,"tool":{"messageID":"msg_2","callID":"call_1"}}',
			'pending', NULL, 1705312201000)`,
		`INSERT INTO rules VALUES ('bash', 'git status', 'allow')`,
		`INSERT INTO events (id, session_id, type, data) VALUES (41, 'ses_old', 'session', '{"sessionId":"ses_old","title":null}'), (42, 'ses_old', 'status', '{"sessionId":"ses_old","busy":true,"agentBusy":true}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	rg := newRig(t, func(c *Config) { c.Workspace = ws })
	rg.waitIdle(t)
	h := rg.history(t, "ses_old")
	var texts []string
	for _, m := range h.Messages {
		for _, p := range m.Info.Parts {
			switch p.Type {
			case "text":
				texts = append(texts, m.Info.Role+":"+p.Text)
			case "tool":
				texts = append(texts, "tool:"+p.State.Status+":"+p.State.Error)
			}
		}
	}
	if len(texts) != 4 || texts[0] != "user:run it" || !strings.Contains(texts[1], "tool:error:interrupted: the permission request perm_1 expired") ||
		texts[2] != "user:after the upgrade" || !strings.HasPrefix(texts[3], "assistant:") {
		t.Fatalf("history after the upgrade:\n%s", strings.Join(texts, "\n"))
	}
	st, _ := rg.c.RuntimeStatus(ctx)
	if len(st.Sessions) != 1 || st.Sessions[0].Title == nil || *st.Sessions[0].Title != "Old work" {
		t.Fatalf("status: %+v", st)
	}
	if err := rg.c.ReplyPermission(ctx, "perm_1", coding.Reply{Reply: "once"}); apiStatus(err) != 409 {
		t.Fatalf("the old permission: %v", err)
	}
	if act, _ := rg.rt.rules.Evaluate("bash", "git status"); act != coding.Allow {
		t.Fatalf("the remembered rule: %s", act)
	}
	var first int64
	for ev, err := range rg.c.Events(ctxT(t), 0, "") {
		if err != nil {
			t.Fatal(err)
		}
		first = ev.ID
		break
	}
	last, _ := rg.rt.st.LastEventID(ctx)
	if first != 41 || last <= 42 {
		t.Fatalf("event ids: first %d, last %d; want 41 and beyond 42", first, last)
	}
}
