package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/web/browsertest"
	"github.com/agenthost/agenthost/internal/web/dashboard"
)

// The platform has no token API yet; the dashboard's token view is checked
// against a small server with the routes it expects (tokens.js).
func TestDashboardTokens(t *testing.T) {
	const signIn = "ah_live_first"
	var mu sync.Mutex
	type token struct {
		ID, Label, Secret, CreatedAt string
	}
	tokens := []token{{ID: "tok_1", Label: "first", Secret: signIn, CreatedAt: "2026-01-01T00:00:00Z"}}
	authed := func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, tk := range tokens {
			if r.Header.Get("Authorization") == "Bearer "+tk.Secret {
				return true
			}
		}
		w.WriteHeader(401)
		fmt.Fprint(w, `{"error":"invalid token"}`)
		return false
	}
	list := func() []map[string]any {
		out := []map[string]any{}
		for _, tk := range tokens {
			out = append(out, map[string]any{"id": tk.ID, "label": tk.Label, "createdAt": tk.CreatedAt, "lastUsedAt": nil})
		}
		return out
	}
	mux := http.NewServeMux()
	h := dashboard.Handler()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET /ui/", h)
	mux.HandleFunc("GET /api/v1/agents", func(w http.ResponseWriter, r *http.Request) {
		if authed(w, r) {
			fmt.Fprint(w, `{"agents":[]}`)
		}
	})
	mux.HandleFunc("GET /api/v1/scopes", func(w http.ResponseWriter, r *http.Request) {
		if authed(w, r) {
			fmt.Fprint(w, `{"scopes":[]}`)
		}
	})
	mux.HandleFunc("GET /api/v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		if authed(w, r) {
			mu.Lock()
			defer mu.Unlock()
			json.NewEncoder(w).Encode(map[string]any{"tokens": list()})
		}
	})
	mux.HandleFunc("POST /api/v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		if !authed(w, r) {
			return
		}
		var body struct{ Label string }
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		defer mu.Unlock()
		tk := token{ID: fmt.Sprintf("tok_%d", len(tokens)+1), Label: body.Label, Secret: "ah_live_" + strings.Repeat("z", 20), CreatedAt: time.Now().UTC().Format(time.RFC3339)}
		tokens = append(tokens, tk)
		json.NewEncoder(w).Encode(map[string]any{"id": tk.ID, "label": tk.Label, "token": tk.Secret, "createdAt": tk.CreatedAt})
	})
	mux.HandleFunc("DELETE /api/v1/tokens/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !authed(w, r) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for i, tk := range tokens {
			if tk.ID == r.PathValue("id") {
				tokens = append(tokens[:i], tokens[i+1:]...)
				fmt.Fprint(w, `{"revoked":true}`)
				return
			}
		}
		w.WriteHeader(404)
		fmt.Fprint(w, `{"error":"not found"}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	p := browsertest.New(t)
	p.Navigate(srv.URL + "/#tokens")
	p.Type("#signin-token", signIn+"\n")
	p.WaitText("#tokens-body", "first")

	// Create: the token is shown once, selected for copying.
	p.Type("#tokens-body input[maxlength]", "production\n")
	p.WaitFor(`document.querySelector(".token-value")?.value.startsWith("ah_live_zzz")`)
	if !browsertest.Eval[bool](p, `document.activeElement.classList.contains("token-value")`) {
		t.Error("the new token is not focused")
	}
	p.WaitText("#tokens-body tbody", "production")
	p.Screenshot("token-created")
	p.ClickButton("#new-token", "Done")
	p.WaitFor(`!document.querySelector(".token-value")`)

	// Revoke asks once more.
	p.ClickButton(`#tokens-body tr[data-id="tok_2"]`, "Revoke")
	p.ClickButton(`#tokens-body tr[data-id="tok_2"]`, "Really revoke?")
	p.WaitText("#flash", "Token production revoked")
	p.WaitFor(`!document.querySelector('#tokens-body tr[data-id="tok_2"]')`)
	mu.Lock()
	n := len(tokens)
	mu.Unlock()
	if n != 1 {
		t.Fatalf("%d tokens left", n)
	}
	// After a reload the page shows no token value again.
	p.Reload()
	p.WaitText("#tokens-body", "first")
	if browsertest.Eval[bool](p, `document.body.innerHTML.includes("ah_live_zzz")`) {
		t.Fatal("the token is shown again")
	}
}
