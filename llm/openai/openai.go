// Package openai is the OpenAI-compatible Chat Completions provider.
package openai
