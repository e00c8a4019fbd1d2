package llm

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
)

// ProviderConfig configures one named provider. Kind says which wire
// protocol it speaks; several providers may share a kind (ollama, vllm and
// openrouter all speak "openai").
type ProviderConfig struct {
	Kind    string `yaml:"kind" json:"kind"`
	BaseURL string `yaml:"base_url" json:"base_url,omitempty"`
	// BaseURLEnv names an environment variable that overrides BaseURL.
	BaseURLEnv string `yaml:"base_url_env" json:"base_url_env,omitempty"`
	// APIKey is used as is; APIKeyEnv names an environment variable to read
	// it from. Keys belong in the environment, not in config files.
	APIKey    string `yaml:"-" json:"-"`
	APIKeyEnv string `yaml:"api_key_env" json:"api_key_env,omitempty"`
	// KeyOptional providers (local servers) work without a key.
	KeyOptional bool `yaml:"key_optional" json:"key_optional,omitempty"`
	// MaxRetries bounds retries on 429, 5xx and connection errors; 0 means
	// the default (3), a negative value disables retries.
	MaxRetries int `yaml:"max_retries" json:"max_retries,omitempty"`
}

// Factory builds a Model of one kind. name is the full "provider/model";
// model is the part after the slash. Factories must not do network I/O.
type Factory func(name, model string, cfg ResolvedProvider) (Model, error)

// ResolvedProvider is a ProviderConfig with the environment applied.
type ResolvedProvider struct {
	Provider   string
	BaseURL    string
	APIKey     string
	MaxRetries int
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]Factory{}
)

// RegisterKind makes a wire protocol available to registries. Provider
// packages call it from init, so a protocol is available exactly when its
// package is linked into the program: importing agent links only the
// offline model, and a program that wants OpenAI-compatible or Anthropic
// models imports llm/openai or llm/anthropic (a blank import is enough).
func RegisterKind(kind string, f Factory) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	kinds[kind] = f
}

// kindPackages names the package that registers each built-in kind, for
// the error that tells a program which import it is missing.
var kindPackages = map[string]string{
	"offline":   "github.com/agenthost/agenthost/llm/offline",
	"openai":    "github.com/agenthost/agenthost/llm/openai",
	"anthropic": "github.com/agenthost/agenthost/llm/anthropic",
}

// notLinkedError is ErrProviderNotLinked with the import that fixes it.
type notLinkedError struct {
	name, provider, kind, pkg string
}

func (e *notLinkedError) Error() string {
	p := fmt.Sprintf("%q", e.provider)
	if e.kind != e.provider {
		p = fmt.Sprintf("%q (kind %q)", e.provider, e.kind)
	}
	return fmt.Sprintf("model %q: provider %s is not linked into this program; import _ %q", e.name, p, e.pkg)
}

// Is makes the error match ErrProviderNotLinked.
func (e *notLinkedError) Is(target error) bool { return target == ErrProviderNotLinked }

func kindFactory(kind string) (Factory, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	f, ok := kinds[kind]
	return f, ok
}

// ProviderEnv lists the environment variables the built-in providers read
// (API keys and base URLs), sorted: what a platform operator may want every
// agent loop to get.
func ProviderEnv() []string {
	var out []string
	for _, p := range BuiltinProviders() {
		for _, v := range []string{p.APIKeyEnv, p.BaseURLEnv} {
			if v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}

// BuiltinProviders returns the providers every registry starts with.
func BuiltinProviders() map[string]ProviderConfig {
	return map[string]ProviderConfig{
		"offline":    {Kind: "offline"},
		"openai":     {Kind: "openai", BaseURL: "https://api.openai.com/v1", BaseURLEnv: "OPENAI_BASE_URL", APIKeyEnv: "OPENAI_API_KEY"},
		"anthropic":  {Kind: "anthropic", BaseURL: "https://api.anthropic.com", BaseURLEnv: "ANTHROPIC_BASE_URL", APIKeyEnv: "ANTHROPIC_API_KEY"},
		"openrouter": {Kind: "openai", BaseURL: "https://openrouter.ai/api/v1", APIKeyEnv: "OPENROUTER_API_KEY"},
		"opencode":   {Kind: "openai", BaseURL: "https://opencode.ai/zen/v1", APIKeyEnv: "OPENCODE_API_KEY", KeyOptional: true},
		"ollama":     {Kind: "openai", BaseURL: "http://localhost:11434/v1", BaseURLEnv: "OLLAMA_BASE_URL", KeyOptional: true},
		"lmstudio":   {Kind: "openai", BaseURL: "http://localhost:1234/v1", BaseURLEnv: "LMSTUDIO_BASE_URL", KeyOptional: true},
		"vllm":       {Kind: "openai", BaseURL: "http://localhost:8000/v1", BaseURLEnv: "VLLM_BASE_URL", APIKeyEnv: "VLLM_API_KEY", KeyOptional: true},
		"llamacpp":   {Kind: "openai", BaseURL: "http://localhost:8080/v1", BaseURLEnv: "LLAMACPP_BASE_URL", KeyOptional: true},
	}
}

// Registry resolves "provider/model" names to Models and prices their usage.
// The zero value is not usable; call NewRegistry.
type Registry struct {
	mu        sync.RWMutex
	providers map[string]ProviderConfig
	prices    map[string]Price
	// Getenv reads the environment; tests and runtimes may replace it.
	Getenv func(string) string
	// KeyAdvice, when set, says where a missing key should come from (the
	// platform's runtimes explain the organisation secret and the operator's
	// setting); it gets the variable's name. Default: set it, or use the
	// offline model.
	KeyAdvice func(env string) string
}

// NewRegistry returns a registry with the built-in providers and prices.
func NewRegistry() *Registry {
	return &Registry{
		providers: BuiltinProviders(),
		prices:    BuiltinPrices(),
		Getenv:    os.Getenv,
	}
}

// Default is the registry used by Open and by agents that name no registry.
var Default = NewRegistry()

// Open resolves name with the Default registry.
func Open(name string) (Model, error) { return Default.Open(name) }

// SetProvider adds or replaces a named provider.
func (r *Registry) SetProvider(name string, cfg ProviderConfig) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.providers[name] = cfg
}

// Providers lists the configured provider names, sorted.
func (r *Registry) Providers() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.providers))
}

// SplitName splits "provider/model". The model part may itself contain
// slashes (openrouter/meta-llama/llama-3).
func SplitName(name string) (provider, model string, err error) {
	provider, model, ok := strings.Cut(name, "/")
	if !ok || provider == "" || model == "" {
		return "", "", fmt.Errorf("model %q: want provider/model, e.g. openai/gpt-4o-mini or offline/demo: %w", name, ErrUnknownModel)
	}
	return provider, model, nil
}

// Open returns the Model called name ("provider/model").
func (r *Registry) Open(name string) (Model, error) {
	provider, model, err := SplitName(name)
	if err != nil {
		return nil, err
	}
	r.mu.RLock()
	cfg, ok := r.providers[provider]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("model %q: no provider %q (known: %s): %w", name, provider, strings.Join(r.Providers(), ", "), ErrUnknownModel)
	}
	f, ok := kindFactory(cfg.Kind)
	if !ok {
		if pkg, known := kindPackages[cfg.Kind]; known {
			return nil, &notLinkedError{name: name, provider: provider, kind: cfg.Kind, pkg: pkg}
		}
		return nil, fmt.Errorf("model %q: provider %q has kind %q, which no package registers (want offline, openai or anthropic): %w",
			name, provider, cfg.Kind, ErrUnknownModel)
	}
	getenv := r.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	res := ResolvedProvider{Provider: provider, BaseURL: cfg.BaseURL, APIKey: cfg.APIKey, MaxRetries: cfg.MaxRetries}
	if cfg.BaseURLEnv != "" {
		if v := getenv(cfg.BaseURLEnv); v != "" {
			res.BaseURL = v
		}
	}
	if res.APIKey == "" && cfg.APIKeyEnv != "" {
		res.APIKey = getenv(cfg.APIKeyEnv)
	}
	if res.APIKey == "" && !cfg.KeyOptional && cfg.Kind != "offline" {
		env := cfg.APIKeyEnv
		if env == "" {
			env = "an API key"
		}
		advice := "set " + env + " (or use offline/demo, which needs no key)"
		if r.KeyAdvice != nil && cfg.APIKeyEnv != "" {
			advice = r.KeyAdvice(cfg.APIKeyEnv)
		}
		return nil, fmt.Errorf("model %q: %s: %w", name, advice, ErrNoAPIKey)
	}
	if res.MaxRetries == 0 {
		res.MaxRetries = 3
	} else if res.MaxRetries < 0 {
		res.MaxRetries = 0
	}
	return f(name, model, res)
}
