// Package anthropic is the Anthropic Messages provider.
package anthropic
