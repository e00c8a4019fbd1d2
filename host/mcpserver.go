package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/internal/version"
	"github.com/agenthost/agenthost/trust"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The MCP server at /mcp (docs/mcp.md) is one more front end over the
// session engine: its ask tool starts a run as POST /input does, its
// resources are the caller's sessions as GET /sessions lists them, and
// every HTTP request is admitted by the same gate as every other caller's.
//
// It runs the official Go SDK's Streamable HTTP transport in stateless
// mode: each HTTP request stands alone, so the caller the gate admits is
// the caller of exactly the JSON-RPC messages in that request's body, and
// no MCP session id is a credential anyone could borrow.

// MCPPath is where `agenthost serve` answers MCP (Streamable HTTP).
const MCPPath = "/mcp"

// mcpCallerKey holds the admitted caller of an MCP HTTP request.
type mcpCallerKey struct{}

// mcpCaller is who sent an MCP request: the caller the gate admitted and,
// for an anonymous one, the client's address (its uploads directory).
type mcpCaller struct {
	caller Caller
	remote string
}

// mcpAskInput is the ask tool's arguments.
type mcpAskInput struct {
	Prompt    string `json:"prompt" jsonschema:"what to ask or tell the agent"`
	SessionID string `json:"session_id,omitempty" jsonschema:"continue this conversation: the session_id of an earlier answer; leave out to start a new one"`
}

// mcpAskOutput is the ask tool's structured result.
type mcpAskOutput struct {
	Answer    string `json:"answer" jsonschema:"the agent's answer"`
	SessionID string `json:"session_id" jsonschema:"pass it back as session_id to continue this conversation"`
	Status    string `json:"status" jsonschema:"how the run ended: completed, interrupted, failed"`
}

// mcpSessionURI is a session's resource URI; mcpSessionTemplate matches it.
const (
	mcpSessionScheme   = "agenthost"
	mcpSessionTemplate = "agenthost://sessions/{session_id}"
)

func mcpSessionURI(id string) string { return "agenthost://sessions/" + url.PathEscape(id) }

// mcpHandler is /mcp: the gate, then the SDK's Streamable HTTP handler.
func (s *Server) mcpHandler() http.Handler {
	srv := s.newMCPServer()
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true, Logger: s.log})
	return s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		c, err := s.admitMCP(w, r)
		if err != nil {
			return err
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), mcpCallerKey{}, c)))
		return nil
	})
}

// admitMCP passes an MCP HTTP request through the gate. A signed request
// carries trust's signed headers (X-Co-*) over its method and
// MCPSignedPath of its body, so the signature covers every byte of the
// JSON-RPC messages that run; the body is read (within the host's body
// limit) to check that, and put back for the SDK.
func (s *Server) admitMCP(w http.ResponseWriter, r *http.Request) (mcpCaller, error) {
	req := &Request{Transport: "mcp", Method: r.Method, Path: MCPPath, Header: r.Header, RemoteAddr: r.RemoteAddr}
	if r.Header.Get(trust.HeaderSignature) != "" || r.Header.Get(trust.HeaderFrom) != "" || r.Header.Get(trust.HeaderTimestamp) != "" {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return mcpCaller{}, errorf(http.StatusRequestEntityTooLarge, "request body is larger than the limit of %s", sizeString(tooBig.Limit))
			}
			return mcpCaller{}, errorf(http.StatusBadRequest, "reading the request: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		req.Path = MCPSignedPath(body)
	}
	caller, err := s.current().gate.Admit(r.Context(), req)
	if err != nil {
		return mcpCaller{}, err
	}
	return mcpCaller{caller: caller, remote: r.RemoteAddr}, nil
}

// mcpCallerOf is the caller of the HTTP request a handler answers. Its
// absence is a bug (a handler reached without the gate): refused.
func mcpCallerOf(ctx context.Context) (mcpCaller, error) {
	c, ok := ctx.Value(mcpCallerKey{}).(mcpCaller)
	if !ok {
		return mcpCaller{}, unauthorized("no admitted caller for this MCP request")
	}
	return c, nil
}

// newMCPServer builds the SDK server: the ask tool, the session resources,
// and the middleware that answers resources/list for the caller.
func (s *Server) newMCPServer() *mcp.Server {
	name := s.current().name
	srv := mcp.NewServer(&mcp.Implementation{Name: "agenthost", Title: "agenthost: " + name, Version: version.String()},
		&mcp.ServerOptions{Instructions: fmt.Sprintf("The AI agent %q, hosted with agenthost. Ask it with the ask tool; your conversations with it are resources.", name)})
	desc := fmt.Sprintf("Send a prompt to the AI agent %q and return its answer.", name)
	if sum := strings.TrimSpace(s.current().cfg.Summary); sum != "" {
		desc += " It says of itself: " + sum
	}
	desc += " The answer comes with a session_id: pass it back to continue the same conversation."
	mcp.AddTool(srv, &mcp.Tool{Name: "ask", Description: desc, Annotations: &mcp.ToolAnnotations{OpenWorldHint: ptr(true)}}, s.mcpAsk)
	srv.AddResourceTemplate(&mcp.ResourceTemplate{Name: "session", URITemplate: mcpSessionTemplate, MIMEType: "application/json",
		Description: "One of your conversations with this agent: status, prompt, result and messages, as GET /sessions/{id} answers."}, s.mcpReadSession)
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "resources/list" {
				return s.mcpListSessions(ctx, req)
			}
			return next(ctx, method, req)
		}
	})
	return srv
}

// mcpAsk is the ask tool: one run of the agent in the caller's session,
// as POST /input without attachments, with the run's events as progress
// notifications when the client gave a progress token. A client that goes
// away leaves the run going, as over HTTP; its result is stored in the
// session.
func (s *Server) mcpAsk(ctx context.Context, req *mcp.CallToolRequest, in mcpAskInput) (*mcp.CallToolResult, mcpAskOutput, error) {
	c, err := mcpCallerOf(ctx)
	if err != nil {
		return nil, mcpAskOutput{}, err
	}
	if strings.TrimSpace(in.Prompt) == "" {
		return nil, mcpAskOutput{}, errors.New("prompt is required and must not be empty")
	}
	rt := s.current()
	owner := uploadOwner{caller: c.caller, remote: c.remote}
	// A named session must be the caller's, as over POST /input.
	ri := runInput{caller: c.caller, sessionID: in.SessionID, mustExist: true, prompt: in.Prompt, uploads: uploadsDirOf(rt.cfg, owner)}
	sub := newSubscriber()
	h, err := s.eng.start(ctx, ri, sub)
	if err != nil {
		status, msg, _ := classify(err)
		if status == http.StatusNotFound && in.SessionID != "" {
			// The same answer for ids that never existed, expired, or are
			// another caller's.
			msg = fmt.Sprintf("session %q is not one of your sessions: leave session_id out to start a new conversation", clipString(in.SessionID, 80))
		}
		return nil, mcpAskOutput{}, errors.New(msg)
	}
	defer s.eng.unsubscribe(sub)
	p := mcpProgress{ctx: ctx, ss: req.Session, token: req.Params.GetProgressToken()}
	events := sub.Events()
	for events != nil {
		select {
		case ev := <-events:
			p.event(ev)
		case <-sub.Overflow():
			events = nil // fell behind: no more progress, only the answer
		case <-h.done():
			// The run's events were published before it ended: report
			// those still buffered, in order, before the answer.
			for drained := false; !drained; {
				select {
				case ev := <-events:
					p.event(ev)
				default:
					drained = true
				}
			}
			events = nil
		case <-ctx.Done():
			return nil, mcpAskOutput{}, fmt.Errorf("the request ended; the run goes on: read %s for its result", mcpSessionURI(h.sessionID))
		}
	}
	select {
	case <-h.done():
	case <-ctx.Done():
		return nil, mcpAskOutput{}, fmt.Errorf("the request ended; the run goes on: read %s for its result", mcpSessionURI(h.sessionID))
	}
	out := h.out()
	res := mcpAskOutput{Answer: out.Result, SessionID: h.sessionID, Status: string(out.Status)}
	if out.Status == store.StatusFailed {
		msg := "run failed"
		if out.Err != nil {
			msg += ": " + out.Err.Error()
		}
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}, res, nil
	}
	return &mcp.CallToolResult{Content: []mcp.Content{
		&mcp.TextContent{Text: out.Result},
		&mcp.TextContent{Text: "session_id: " + h.sessionID + " (pass it as session_id to continue this conversation)"},
	}}, res, nil
}

// mcpProgress turns a run's events into MCP progress notifications, when
// the client asked for them (a progress token).
type mcpProgress struct {
	ctx   context.Context
	ss    *mcp.ServerSession
	token any
	n     float64
	text  strings.Builder
}

func (p *mcpProgress) event(ev event) {
	if p.token == nil {
		return
	}
	var f struct {
		Chunk  string `json:"chunk"`
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	_ = json.Unmarshal(ev.Data, &f)
	var msg string
	switch ev.Type {
	case "llm_call":
		msg = "thinking"
	case "STREAM":
		p.text.WriteString(f.Chunk)
		msg = lastRunes(p.text.String(), 200)
	case "tool_call":
		msg = "running the tool " + f.Name
	case "tool_result":
		msg = fmt.Sprintf("the tool %s %s", f.Name, f.Status)
	default:
		return
	}
	p.n++
	_ = p.ss.NotifyProgress(p.ctx, &mcp.ProgressNotificationParams{ProgressToken: p.token, Progress: p.n, Message: msg})
}

// lastRunes is the last n runes of s, marked as clipped when they are.
func lastRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n:])
}

// mcpListSessions is resources/list: the caller's sessions, under the
// rule GET /sessions applies (ownSessions).
func (s *Server) mcpListSessions(ctx context.Context, _ mcp.Request) (mcp.Result, error) {
	c, err := mcpCallerOf(ctx)
	if err != nil {
		return nil, err
	}
	items, err := s.ownSessions(ctx, c.caller)
	if err != nil {
		_, msg, _ := classify(err)
		return nil, errors.New(msg)
	}
	res := &mcp.ListResourcesResult{Resources: make([]*mcp.Resource, 0, len(items))}
	for _, it := range items {
		res.Resources = append(res.Resources, &mcp.Resource{URI: mcpSessionURI(it.SessionID), Name: it.SessionID,
			Title: clipString(it.Prompt, 80), Description: "a conversation (" + it.Status + ")", MIMEType: "application/json"})
	}
	return res, nil
}

// mcpReadSession is resources/read of a session: GET /sessions/{id}'s
// answer, under its rule (hostEngine.getSession); a session the caller
// may not see is not found, as one that does not exist.
func (s *Server) mcpReadSession(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	c, err := mcpCallerOf(ctx)
	if err != nil {
		return nil, err
	}
	uri := req.Params.URI
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != mcpSessionScheme || u.Host != "sessions" {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	id, err := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), "/"))
	if err != nil || id == "" || strings.Contains(id, "/") {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	ss, err := s.eng.getSession(ctx, c.caller, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired) {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	if err != nil {
		return nil, err
	}
	v, err := s.eng.view(ctx, ss)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(b)}}}, nil
}
