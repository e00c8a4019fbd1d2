package openai_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/llm"
)

// A missing key's error says where the key should come from: by default
// the variable to set, or the advice a runtime installs.
func TestMissingKeyAdvice(t *testing.T) {
	r := llm.NewRegistry()
	r.Getenv = func(string) string { return "" }
	_, err := r.Open("openai/gpt-4o-mini")
	if !errors.Is(err, llm.ErrNoAPIKey) || !strings.Contains(err.Error(), "set OPENAI_API_KEY") {
		t.Fatalf("default: %v", err)
	}
	r.KeyAdvice = func(env string) string { return "ask the operator for " + env }
	_, err = r.Open("openai/gpt-4o-mini")
	if !errors.Is(err, llm.ErrNoAPIKey) || !strings.Contains(err.Error(), "ask the operator for OPENAI_API_KEY") {
		t.Fatalf("with advice: %v", err)
	}
}
