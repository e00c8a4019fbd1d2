package cli

import "testing"

// TestModelEnvPassesOTEL: the platform hands its OTEL_* variables to the
// runtimes' agent loops, beside the model keys it is told to, so runtimes
// export spans where the platform does; unset ones are not passed.
func TestModelEnvPassesOTEL(t *testing.T) {
	vars := map[string]string{"OPENAI_API_KEY": "sk-1", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "HOME": "/root"}
	env := &Env{Getenv: func(k string) string { return vars[k] }}
	got := modelEnv(env, "OPENAI_API_KEY")
	if got["OPENAI_API_KEY"] != "sk-1" || got["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://c:4318" {
		t.Fatalf("model env %v", got)
	}
	if _, ok := got["OTEL_SERVICE_NAME"]; ok || got["HOME"] != "" {
		t.Fatalf("model env %v: unset or unlisted variables passed", got)
	}
}
