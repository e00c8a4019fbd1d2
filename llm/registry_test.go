package llm_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/agenthost/agenthost/llm"
	_ "github.com/agenthost/agenthost/llm/offline"
)

func TestSplitName(t *testing.T) {
	tests := []struct{ in, provider, model string }{
		{"openai/gpt-4o-mini", "openai", "gpt-4o-mini"},
		{"openrouter/meta-llama/llama-3", "openrouter", "meta-llama/llama-3"},
	}
	for _, tc := range tests {
		p, m, err := llm.SplitName(tc.in)
		if err != nil || p != tc.provider || m != tc.model {
			t.Errorf("SplitName(%q) = %q, %q, %v", tc.in, p, m, err)
		}
	}
	for _, bad := range []string{"", "gpt-4o", "/x", "x/"} {
		if _, _, err := llm.SplitName(bad); !errors.Is(err, llm.ErrUnknownModel) {
			t.Errorf("SplitName(%q): err = %v", bad, err)
		}
	}
}

func TestRegistryOpen(t *testing.T) {
	r := llm.NewRegistry()
	r.Getenv = func(string) string { return "" }
	if m, err := r.Open("offline/demo"); err != nil || m.Name() != "offline/demo" {
		t.Fatalf("offline/demo: %v", err)
	}
	if _, err := r.Open("nosuch/x"); !errors.Is(err, llm.ErrUnknownModel) {
		t.Errorf("unknown provider: %v", err)
	}
	r.SetProvider("weird", llm.ProviderConfig{Kind: "carrier-pigeon"})
	if _, err := r.Open("weird/x"); !errors.Is(err, llm.ErrUnknownModel) || errors.Is(err, llm.ErrProviderNotLinked) {
		t.Errorf("unknown kind: %v", err)
	}
}

// TestProviderNotLinked: this test binary links only llm/offline, so the
// SDK-backed providers fail with ErrProviderNotLinked and an error that
// names the import to add — before any key is asked for.
func TestProviderNotLinked(t *testing.T) {
	r := llm.NewRegistry()
	r.Getenv = func(string) string { return "" }
	tests := []struct{ model, want string }{
		{"openai/gpt-4o-mini", `model "openai/gpt-4o-mini": provider "openai" is not linked into this program; import _ "github.com/agenthost/agenthost/llm/openai"`},
		{"anthropic/claude-sonnet-4-6", `model "anthropic/claude-sonnet-4-6": provider "anthropic" is not linked into this program; import _ "github.com/agenthost/agenthost/llm/anthropic"`},
		{"ollama/llama3.2", `model "ollama/llama3.2": provider "ollama" (kind "openai") is not linked into this program; import _ "github.com/agenthost/agenthost/llm/openai"`},
	}
	for _, tc := range tests {
		_, err := r.Open(tc.model)
		if !errors.Is(err, llm.ErrProviderNotLinked) || errors.Is(err, llm.ErrNoAPIKey) {
			t.Errorf("%s: err = %v, want ErrProviderNotLinked", tc.model, err)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.model, err, tc.want)
		}
	}
}

func TestPrices(t *testing.T) {
	r := llm.NewRegistry()
	u := llm.Usage{Input: 1_000_000, Output: 1_000_000, CacheRead: 1_000_000, CacheWrite: 1_000_000}
	if got := r.Cost("anthropic/claude-sonnet-4-6", u); got != 3+15+0.30+3.75 {
		t.Errorf("sonnet cost = %v", got)
	}
	if got := r.Cost("unknown/model", u); got != 0 {
		t.Errorf("unknown model cost = %v", got)
	}
	r.SetPrice("my/model", llm.Price{Input: 1})
	if got := r.Cost("my/model", u); got != 1 {
		t.Errorf("configured price = %v", got)
	}
	if u.Total() != 4_000_000 {
		t.Errorf("total = %d", u.Total())
	}
}

func TestProviderEnv(t *testing.T) {
	env := llm.ProviderEnv()
	for _, want := range []string{"OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY"} {
		if !slices.Contains(env, want) {
			t.Errorf("ProviderEnv() = %v lacks %s", env, want)
		}
	}
}
