package coderuntime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agenthost/agenthost/internal/obs"
	"io"
	"iter"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/agenthost/agenthost/internal/coding"
)

// APIError is a non-2xx answer of the control API.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("runtime control API: %d %s", e.Status, e.Message)
}

// Client speaks a runtime's control API. A non-2xx answer is an
// *APIError; a runtime that cannot be reached is another error. (The
// platform adapts it to its agents.RuntimeClient; this package knows
// nothing of the platform.)
type Client struct {
	base  string
	token string
	// HTTP is the client used; nil means http.DefaultClient. Calls are
	// bounded by their context only.
	HTTP *http.Client
}

// NewClient returns the client of the runtime at base (such as
// http://127.0.0.1:20001) with its control token.
func NewClient(base, token string) *Client {
	return &Client{base: strings.TrimSuffix(base, "/"), token: token}
}

// Event is one event of the /control/events stream; SessionID is read
// from its data.
type Event struct {
	ID        int64
	SessionID string
	Type      string
	Data      json.RawMessage
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// defaultHTTP carries a Client's calls when it has no HTTP of its own:
// they continue the caller's trace (traceparent) and request id.
var defaultHTTP = &http.Client{Transport: obs.Transport(nil)}

// do sends a request and decodes a 2xx JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("runtime control API: reading the answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("runtime control API: %s %s: bad answer: %w", method, path, err)
	}
	return nil
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, "", out)
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, bytes.NewReader(b), "application/json", out)
}

// Health asks GET /health.
func (c *Client) Health(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &APIError{Status: resp.StatusCode, Message: "unhealthy"}
	}
	return nil
}

// RuntimeStatus is GET /control/status as it is.
func (c *Client) RuntimeStatus(ctx context.Context) (Status, error) {
	var st Status
	err := c.getJSON(ctx, "/control/status", &st)
	return st, err
}

// Send posts a user message to sessionID, or to a new session when it is
// empty.
func (c *Client) Send(ctx context.Context, sessionID, text string) (SendResult, error) {
	var res SendResult
	err := c.postJSON(ctx, "/control/messages", SendRequest{Message: text, SessionID: sessionID}, &res)
	return res, err
}

// Messages returns one session's history.
func (c *Client) Messages(ctx context.Context, sessionID string) (SessionHistory, error) {
	var h SessionHistory
	err := c.getJSON(ctx, "/control/messages?sessionId="+url.QueryEscape(sessionID), &h)
	return h, err
}

// AllMessages returns every session's history.
func (c *Client) AllMessages(ctx context.Context) (AllMessages, error) {
	var a AllMessages
	err := c.getJSON(ctx, "/control/messages", &a)
	return a, err
}

// Usage returns GET /control/usage.
func (c *Client) Usage(ctx context.Context) (UsageReport, error) {
	var u UsageReport
	err := c.getJSON(ctx, "/control/usage", &u)
	return u, err
}

// Abort aborts one session.
func (c *Client) Abort(ctx context.Context, sessionID string) error {
	return c.postJSON(ctx, "/control/abort", map[string]string{"sessionId": sessionID}, nil)
}

// AbortAll aborts every busy session and returns their ids.
func (c *Client) AbortAll(ctx context.Context) ([]string, error) {
	var out struct {
		Aborted []string `json:"aborted"`
	}
	err := c.postJSON(ctx, "/control/abort", struct{}{}, &out)
	return out.Aborted, err
}

// Upload sends a file as the multipart "file" part, streaming it.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader) (FileResult, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("file", name)
		if err == nil {
			_, err = io.Copy(fw, r)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	var res FileResult
	err := c.do(ctx, http.MethodPost, "/control/files", pr, mw.FormDataContentType(), &res)
	pr.Close()
	return res, err
}

// Permissions lists the pending permission requests.
func (c *Client) Permissions(ctx context.Context) ([]coding.Permission, error) {
	var l PermissionList
	err := c.getJSON(ctx, "/control/permissions", &l)
	return l.Permissions, err
}

// ReplyPermission answers a permission request.
func (c *Client) ReplyPermission(ctx context.Context, id string, reply coding.Reply) error {
	return c.postJSON(ctx, "/control/permissions/"+url.PathEscape(id), reply, nil)
}

// Questions lists the pending questions.
func (c *Client) Questions(ctx context.Context) ([]coding.PendingQuestion, error) {
	var l QuestionList
	err := c.getJSON(ctx, "/control/questions", &l)
	return l.Questions, err
}

// ReplyQuestion answers a question: one list of labels per question.
func (c *Client) ReplyQuestion(ctx context.Context, id string, answers [][]string) error {
	return c.postJSON(ctx, "/control/questions/"+url.PathEscape(id), coding.QuestionReply{Answers: answers}, nil)
}

// OpenEvents opens GET /control/events: from the event after lastEventID
// (live only when it is negative), of one session when sessionID is set.
// The caller reads the stream with ReadEvents and closes the body.
func (c *Client) OpenEvents(ctx context.Context, lastEventID int64, sessionID string) (*http.Response, error) {
	q := url.Values{}
	if sessionID != "" {
		q.Set("sessionId", sessionID)
	}
	u := c.base + "/control/events"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastEventID, 10))
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return nil, &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

// Events streams events after lastEventID (live only when negative) until
// ctx ends or the stream breaks; the error, if any, is yielded last with a
// zero Event.
func (c *Client) Events(ctx context.Context, lastEventID int64, sessionID string) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		resp, err := c.OpenEvents(ctx, lastEventID, sessionID)
		if err != nil {
			yield(Event{}, err)
			return
		}
		defer resp.Body.Close()
		for ev, err := range ReadEvents(resp.Body) {
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// ReadEvents parses a Server-Sent Events stream of the control API.
func ReadEvents(r io.Reader) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		var ev Event
		var data []string
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if len(data) > 0 || ev.Type != "" {
					ev.Data = json.RawMessage(strings.Join(data, "\n"))
					var sid struct {
						SessionID string `json:"sessionId"`
					}
					if json.Unmarshal(ev.Data, &sid) == nil {
						ev.SessionID = sid.SessionID
					}
					if !yield(ev, nil) {
						return
					}
				}
				ev, data = Event{}, nil
				continue
			}
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.ID, _ = strconv.ParseInt(value, 10, 64)
			case "event":
				ev.Type = value
			case "data":
				data = append(data, value)
			}
		}
		err := sc.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		if !errors.Is(err, context.Canceled) {
			yield(Event{}, err)
		}
	}
}
