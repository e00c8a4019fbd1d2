package llm

// Price is what a model charges, in USD per million tokens.
type Price struct {
	Input      float64 `yaml:"input" json:"input"`
	Output     float64 `yaml:"output" json:"output"`
	CacheRead  float64 `yaml:"cache_read" json:"cache_read"`
	CacheWrite float64 `yaml:"cache_write" json:"cache_write"`
}

// Cost prices u.
func (p Price) Cost(u Usage) float64 {
	return (float64(u.Input)*p.Input + float64(u.Output)*p.Output +
		float64(u.CacheRead)*p.CacheRead + float64(u.CacheWrite)*p.CacheWrite) / 1e6
}

// BuiltinPrices returns list prices of common models, keyed by
// "provider/model". Unknown models cost 0; configuration adds more with
// Registry.SetPrice.
func BuiltinPrices() map[string]Price {
	return map[string]Price{
		"openai/gpt-4o":                  {Input: 2.50, Output: 10, CacheRead: 1.25},
		"openai/gpt-4o-mini":             {Input: 0.15, Output: 0.60, CacheRead: 0.075},
		"openai/gpt-4.1":                 {Input: 2, Output: 8, CacheRead: 0.50},
		"openai/gpt-4.1-mini":            {Input: 0.40, Output: 1.60, CacheRead: 0.10},
		"openai/gpt-4.1-nano":            {Input: 0.10, Output: 0.40, CacheRead: 0.025},
		"openai/gpt-5":                   {Input: 1.25, Output: 10, CacheRead: 0.125},
		"openai/gpt-5-mini":              {Input: 0.25, Output: 2, CacheRead: 0.025},
		"openai/o3":                      {Input: 2, Output: 8, CacheRead: 0.50},
		"openai/o4-mini":                 {Input: 1.10, Output: 4.40, CacheRead: 0.275},
		"anthropic/claude-opus-4-6":      {Input: 5, Output: 25, CacheRead: 0.50, CacheWrite: 6.25},
		"anthropic/claude-sonnet-4-6":    {Input: 3, Output: 15, CacheRead: 0.30, CacheWrite: 3.75},
		"anthropic/claude-sonnet-4-5":    {Input: 3, Output: 15, CacheRead: 0.30, CacheWrite: 3.75},
		"anthropic/claude-haiku-4-5":     {Input: 1, Output: 5, CacheRead: 0.10, CacheWrite: 1.25},
		"anthropic/claude-3-5-haiku":     {Input: 0.80, Output: 4, CacheRead: 0.08, CacheWrite: 1},
		"opencode/big-pickle":            {},
		"opencode/nemotron-3-super-free": {},
		"offline/demo":                   {},
	}
}

// SetPrice adds or replaces the price of a model ("provider/model").
func (r *Registry) SetPrice(model string, p Price) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prices[model] = p
}

// Price returns the price of a model and whether it is known.
func (r *Registry) Price(model string) (Price, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.prices[model]
	return p, ok
}

// Cost prices usage of model; unknown models cost 0.
func (r *Registry) Cost(model string, u Usage) float64 {
	p, _ := r.Price(model)
	return p.Cost(u)
}
