// Package fakellm runs fake LLM provider servers for tests.
//
// A Server is a real HTTP server on loopback (httptest) that speaks either
// the OpenAI Chat Completions wire protocol (NewOpenAI) or the Anthropic
// Messages wire protocol (NewAnthropic), streaming (SSE) and non-streaming.
// Production client code is pointed at Server.URL and exercised as is.
//
// Replies are scripted: Push queues them in order, Handle installs a
// function that answers when the queue is empty (a judge model answering
// from the request, say). Every request is recorded, decoded, for
// assertions:
//
//	srv := fakellm.NewOpenAI(t)
//	srv.Push(fakellm.Reply{Chunks: []string{"Hel", "lo"}, Usage: fakellm.Usage{Input: 10, Output: 2}})
//	srv.Push(fakellm.Reply{Status: 429, RetryAfter: "1"})
//	// ... point the client at srv.URL() ...
//	reqs := srv.Requests()
//
// To point a model at the server, use Registry (provider "fake"),
// Provider with llm.Registry.SetProvider, or URL as OPENAI_BASE_URL /
// ANTHROPIC_BASE_URL. A request that finds neither a queued reply nor a
// handler is answered with HTTP 400 and fails the test.
package fakellm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/llm"
	// The fake server speaks both protocols; its users open models through
	// these providers.
	_ "github.com/agenthost/agenthost/llm/anthropic"
	_ "github.com/agenthost/agenthost/llm/openai"
)

// Protocol is the wire protocol a Server speaks.
type Protocol string

// The protocols a Server can speak.
const (
	OpenAI    Protocol = "openai"
	Anthropic Protocol = "anthropic"
)

// Reply is one scripted answer. With Status >= 400 it is an error reply;
// otherwise it is a completion made of reasoning, text and tool calls, sent
// in that order, streamed or as one JSON body depending on the request.
type Reply struct {
	// Text is the answer's text, sent as one chunk. Chunks, when set,
	// replaces it and is streamed chunk by chunk.
	Text   string
	Chunks []string
	// Reasoning chunks are sent before the text: an Anthropic "thinking"
	// block, or OpenAI-compatible "reasoning_content" deltas.
	Reasoning []string
	// ToolCalls are the tool calls the model makes, in order.
	ToolCalls []ToolCall
	// Interleave sends the OpenAI tool-call argument chunks round-robin
	// across calls instead of one call after the other, so clients must
	// assemble them by index.
	Interleave bool
	// Usage is reported at the end of the reply (for OpenAI only when the
	// request asks for it with stream_options.include_usage, or when not
	// streaming).
	Usage Usage
	// StopReason overrides the wire stop reason (default "stop"/"end_turn",
	// or "tool_calls"/"tool_use" when there are tool calls).
	StopReason string

	// Status, when >= 400, makes this an error reply with a
	// provider-shaped error body.
	Status int
	// Error is the error message; ErrorType the provider's error type
	// (derived from Status when empty).
	Error     string
	ErrorType string
	// RetryAfter is sent as the Retry-After header when set ("1", or an
	// HTTP date).
	RetryAfter string
	// Header holds extra response headers (e.g. Retry-After-Ms).
	Header http.Header

	// Delay is slept before every streamed chunk.
	Delay time.Duration
	// StreamError, when set, ends a streamed reply after its content with
	// a provider-shaped error event (type ErrorType, default
	// "overloaded_error" for Anthropic, "server_error" for OpenAI) instead
	// of finishing normally: the failure of a stream already under way.
	StreamError string
	// Hang keeps a streamed reply open after its content, without
	// finishing, until the client goes away: for cancellation tests.
	Hang bool
}

// ToolCall is a scripted tool call.
type ToolCall struct {
	// ID defaults to "call_<n>" (OpenAI) or "toolu_<n>" (Anthropic).
	ID   string
	Name string
	// Args is the JSON argument object, sent as one piece; ArgChunks, when
	// set, replaces it and is sent piece by piece.
	Args      string
	ArgChunks []string
	// NameChunks splits the name across OpenAI chunks (Name is then
	// ignored). Anthropic always sends the name whole.
	NameChunks []string
}

func (c ToolCall) args() []string {
	if len(c.ArgChunks) > 0 {
		return c.ArgChunks
	}
	if c.Args == "" {
		return []string{"{}"}
	}
	return []string{c.Args}
}

func (c ToolCall) names() []string {
	if len(c.NameChunks) > 0 {
		return c.NameChunks
	}
	return []string{c.Name}
}

// Usage is reported token usage, in llm.Usage terms: Input excludes cached
// input. On the OpenAI wire prompt_tokens is Input+CacheRead with CacheRead
// as prompt_tokens_details.cached_tokens, and Reasoning goes to
// completion_tokens_details.reasoning_tokens; on the Anthropic wire the
// fields map one to one (CacheWrite is cache_creation_input_tokens).
type Usage struct {
	Input, Output, Reasoning, CacheRead, CacheWrite int64
}

// Request is a request the server received.
type Request struct {
	Protocol Protocol
	Method   string
	Path     string
	Header   http.Header
	// Body is the decoded JSON body (nil if it was not a JSON object);
	// Raw is the body as received.
	Body map[string]any
	Raw  []byte
}

// Stream reports whether the request asked for a streamed reply.
func (r Request) Stream() bool { b, _ := r.Body["stream"].(bool); return b }

// Model returns the requested model.
func (r Request) Model() string { s, _ := r.Body["model"].(string); return s }

// Messages returns the request's messages as decoded JSON objects.
func (r Request) Messages() []map[string]any {
	raw, _ := r.Body["messages"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, m := range raw {
		if mm, ok := m.(map[string]any); ok {
			out = append(out, mm)
		}
	}
	return out
}

// System returns the system prompt: the Anthropic "system" field, or the
// text of OpenAI system/developer messages.
func (r Request) System() string {
	if r.Protocol == Anthropic {
		return contentText(r.Body["system"])
	}
	var parts []string
	for _, m := range r.Messages() {
		if m["role"] == "system" || m["role"] == "developer" {
			parts = append(parts, contentText(m["content"]))
		}
	}
	return strings.Join(parts, "\n")
}

// LastUserText returns the text of the last user message (tool results
// excluded), or "".
func (r Request) LastUserText() string {
	msgs := r.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i]["role"] == "user" {
			if s := contentText(msgs[i]["content"]); s != "" {
				return s
			}
		}
	}
	return ""
}

// contentText joins the text of a string or an array of content blocks.
func contentText(v any) string {
	switch c := v.(type) {
	case string:
		return c
	case []any:
		var parts []string
		for _, b := range c {
			if bm, ok := b.(map[string]any); ok && bm["type"] == "text" {
				if s, ok := bm["text"].(string); ok {
					parts = append(parts, s)
				}
			}
		}
		return strings.Join(parts, "\n")
	}
	return ""
}

// Server is a fake provider. Its methods are safe for concurrent use.
type Server struct {
	t        testing.TB
	protocol Protocol
	srv      *httptest.Server
	closing  chan struct{}
	once     sync.Once

	mu       sync.Mutex
	queue    []Reply
	handler  func(Request) Reply
	requests []Request
	calls    int
}

// NewOpenAI starts a server speaking the OpenAI Chat Completions protocol
// (POST .../chat/completions). It is closed when the test ends.
func NewOpenAI(t testing.TB) *Server { return newServer(t, OpenAI) }

// NewAnthropic starts a server speaking the Anthropic Messages protocol
// (POST /v1/messages). It is closed when the test ends.
func NewAnthropic(t testing.TB) *Server { return newServer(t, Anthropic) }

func newServer(t testing.TB, p Protocol) *Server {
	t.Helper()
	s := &Server{t: t, protocol: p, closing: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.Close)
	return s
}

// URL is the base URL to configure a client with: it ends in "/v1" for
// OpenAI (as OPENAI_BASE_URL does) and is the bare origin for Anthropic
// (as ANTHROPIC_BASE_URL is).
func (s *Server) URL() string {
	if s.protocol == OpenAI {
		return s.srv.URL + "/v1"
	}
	return s.srv.URL
}

// Provider returns a provider configuration pointing at the server, with a
// key, for llm.Registry.SetProvider.
func (s *Server) Provider() llm.ProviderConfig {
	return llm.ProviderConfig{Kind: string(s.protocol), BaseURL: s.URL(), APIKey: "fakellm-key"}
}

// Registry returns a fresh registry, blind to the environment, where the
// provider "fake" is this server: agent.WithRegistry(srv.Registry()) with
// agent.WithModel("fake/any-name"). This package links both provider
// kinds (llm/openai and llm/anthropic), so its users need not.
func (s *Server) Registry() *llm.Registry {
	r := llm.NewRegistry()
	r.Getenv = func(string) string { return "" }
	r.SetProvider("fake", s.Provider())
	return r
}

// Protocol returns the protocol the server speaks.
func (s *Server) Protocol() Protocol { return s.protocol }

// Push queues replies; each request takes the next one.
func (s *Server) Push(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, replies...)
}

// Handle sets a function that answers requests once the queue is empty.
// It runs on the server's goroutines and may be called concurrently.
func (s *Server) Handle(f func(Request) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = f
}

// Requests returns the requests received so far, in order of arrival.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Pending returns how many pushed replies have not been used yet.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Close stops the server, releasing hanging replies. Tests need not call
// it; it runs at cleanup.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	req := Request{Protocol: s.protocol, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Raw: raw}
	_ = json.Unmarshal(raw, &req.Body)

	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.calls++
	n := s.calls
	var reply Reply
	var ok bool
	if len(s.queue) > 0 {
		reply, s.queue, ok = s.queue[0], s.queue[1:], true
	}
	h := s.handler
	s.mu.Unlock()

	want := "/v1/messages"
	if s.protocol == OpenAI {
		want = "/chat/completions"
	}
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, want) {
		s.writeError(w, Reply{Status: http.StatusNotFound, Error: fmt.Sprintf("fakellm: no route for %s %s", r.Method, r.URL.Path)})
		return
	}
	if !ok && h != nil {
		reply, ok = h(req), true
	}
	if !ok {
		s.t.Errorf("fakellm: request %d to %s has no scripted reply (Push or Handle one)", n, r.URL.Path)
		s.writeError(w, Reply{Status: http.StatusBadRequest, Error: "fakellm: no scripted reply"})
		return
	}
	for k, vs := range reply.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if reply.RetryAfter != "" {
		w.Header().Set("Retry-After", reply.RetryAfter)
	}
	if reply.Status >= 400 {
		s.writeError(w, reply)
		return
	}
	w.Header().Set("Request-Id", fmt.Sprintf("req_%d", n))
	if req.Stream() {
		sw := &sseWriter{w: w, rc: http.NewResponseController(w), ctx: r.Context().Done(), closing: s.closing, delay: reply.Delay}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		if s.protocol == OpenAI {
			streamOpenAI(sw, req, reply, n)
		} else {
			streamAnthropic(sw, req, reply, n)
		}
		if reply.Hang && sw.err == nil {
			select {
			case <-r.Context().Done():
			case <-s.closing:
			}
		}
		return
	}
	var body any
	if s.protocol == OpenAI {
		body = openAICompletion(req, reply, n)
	} else {
		body = anthropicMessage(req, reply, n)
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) writeError(w http.ResponseWriter, reply Reply) {
	typ := reply.ErrorType
	if typ == "" {
		typ = errorType(reply.Status)
	}
	msg := reply.Error
	if msg == "" {
		msg = http.StatusText(reply.Status)
	}
	if s.protocol == OpenAI {
		writeJSON(w, reply.Status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
		return
	}
	writeJSON(w, reply.Status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}

// errorType is the Anthropic-style error type for a status, which OpenAI
// compatible servers use in similar form.
func errorType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	return "api_error"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// sseWriter writes server-sent events, flushing each, pacing them by delay
// and stopping once the client is gone.
type sseWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	ctx     <-chan struct{}
	closing <-chan struct{}
	delay   time.Duration
	err     error
}

// event writes one event; name may be "" (OpenAI sends data lines only).
// data is JSON-encoded unless it is a string.
func (sw *sseWriter) event(name string, data any, paced bool) {
	if sw.err != nil {
		return
	}
	if paced && sw.delay > 0 {
		t := time.NewTimer(sw.delay)
		select {
		case <-t.C:
		case <-sw.ctx:
			t.Stop()
			sw.err = io.ErrClosedPipe
			return
		case <-sw.closing:
			t.Stop()
			sw.err = io.ErrClosedPipe
			return
		}
	}
	var payload []byte
	if s, ok := data.(string); ok {
		payload = []byte(s)
	} else {
		payload, _ = json.Marshal(data)
	}
	var buf bytes.Buffer
	if name != "" {
		fmt.Fprintf(&buf, "event: %s\n", name)
	}
	fmt.Fprintf(&buf, "data: %s\n\n", payload)
	if _, err := sw.w.Write(buf.Bytes()); err != nil {
		sw.err = err
		return
	}
	sw.err = sw.rc.Flush()
}

func (r Reply) textChunks() []string {
	if len(r.Chunks) > 0 {
		return r.Chunks
	}
	if r.Text != "" {
		return []string{r.Text}
	}
	return nil
}

// TextReply is a reply streaming the given text chunks.
func TextReply(chunks ...string) Reply { return Reply{Chunks: chunks} }

// ErrorReply is an error reply with the given status and message.
func ErrorReply(status int, message string) Reply { return Reply{Status: status, Error: message} }
