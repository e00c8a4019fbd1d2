package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/trust"
)

// Event types (docs/protocol.md §3). Other types the agent may add arrive with
// their Type and Raw only.
const (
	EventStream      = "STREAM"          // Chunk: model text as it is generated
	EventLLMCall     = "llm_call"        // the model is called
	EventLLMResult   = "llm_result"      // the model answered
	EventToolCall    = "tool_call"       // Name, ToolID, Args
	EventToolResult  = "tool_result"     // Name, ToolID, Status, Result
	EventAskUser     = "ask_user"        // a question (answered by OnQuestion)
	EventApproval    = "approval_needed" // an approval (decided by OnApproval)
	EventSessionSync = "session_sync"    // the session's state
	EventOutput      = "OUTPUT"          // the final answer (Stream only)
)

// Event is one frame of a run as the agent sent it, with the common fields
// decoded.
type Event struct {
	Type      string
	ID        int64
	SessionID string
	// Chunk is a STREAM frame's text.
	Chunk string
	// Name, ToolID and Args describe a tool call; Status ("completed",
	// "failed") and Result its result.
	Name   string
	ToolID string
	Args   json.RawMessage
	Status string
	Result string
	// Raw is the whole frame.
	Raw json.RawMessage
}

// Result is a run's final answer.
type Result struct {
	SessionID  string
	Result     string
	DurationMS int64
	// Session is the session state to pass back (docs/protocol.md §2).
	Session json.RawMessage
	// ChatItems is the conversation as display items.
	ChatItems json.RawMessage
}

// Question is an agent's question to the user (ask_user).
type Question struct {
	Text        string
	Options     []string
	MultiSelect bool
}

// QuestionFunc answers a question: one option (or free text), or several
// when MultiSelect.
type QuestionFunc func(ctx context.Context, q Question) ([]string, error)

// Approval asks whether a tool may run.
type Approval struct {
	Tool        string
	ToolID      string
	Arguments   json.RawMessage
	Description string
}

// Decision answers an Approval. Scope "session" approves the tool for the
// rest of the session; "" or "once" for this call.
type Decision struct {
	Approved bool
	Scope    string
	Feedback string
}

// ApprovalFunc decides an Approval.
type ApprovalFunc func(ctx context.Context, a Approval) (Decision, error)

// File is an attachment: a name and a data URL.
type File struct {
	Name string `json:"name"`
	Data string `json:"data"`
}

type inputOptions struct {
	onEvent    func(Event)
	onQuestion QuestionFunc
	onApproval ApprovalFunc
	images     []string
	files      []File
}

// InputOption configures one Input.
type InputOption func(*inputOptions)

// OnEvent calls f with every event of the run, in order, as it arrives.
func OnEvent(f func(Event)) InputOption { return func(o *inputOptions) { o.onEvent = f } }

// OnQuestion answers the agent's questions during this run. Without one
// (here or WithQuestionHandler), questions get an empty answer.
func OnQuestion(f QuestionFunc) InputOption { return func(o *inputOptions) { o.onQuestion = f } }

// OnApproval decides tool approvals during this run. Without one (here or
// WithApprovalHandler), every approval is refused.
func OnApproval(f ApprovalFunc) InputOption { return func(o *inputOptions) { o.onApproval = f } }

// WithImages attaches images given as data URLs.
func WithImages(dataURLs ...string) InputOption {
	return func(o *inputOptions) { o.images = append(o.images, dataURLs...) }
}

// WithFiles attaches files.
func WithFiles(files ...File) InputOption {
	return func(o *inputOptions) { o.files = append(o.files, files...) }
}

// Input sends prompt to the agent in the client's session, streams the
// run's events to OnEvent, answers questions and approvals through the
// callbacks, and returns the answer. The answer's session becomes the
// client's, so the next Input continues the conversation.
func (c *Client) Input(ctx context.Context, prompt string, opts ...InputOption) (*Result, error) {
	var o inputOptions
	for _, opt := range opts {
		opt(&o)
	}
	return c.run(ctx, prompt, o, func(e Event) bool {
		if o.onEvent != nil {
			o.onEvent(e)
		}
		return true
	})
}

// Stream is Input as an iterator: it yields the run's events and, last, an
// EventOutput event whose Raw is the OUTPUT frame (Result holds the
// answer), or an error. Stopping early closes the connection; the run
// goes on at the agent.
func (c *Client) Stream(ctx context.Context, prompt string, opts ...InputOption) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		var o inputOptions
		for _, opt := range opts {
			opt(&o)
		}
		stopped := false
		_, err := c.run(ctx, prompt, o, func(e Event) bool {
			if !yield(e, nil) {
				stopped = true
				return false
			}
			return true
		})
		if err != nil && !stopped {
			yield(Event{}, err)
		}
	}
}

// conn is one WebSocket to the agent (direct) or the relay.
type conn struct {
	c      *Client
	ws     *websocket.Conn
	sid    string // the session, once known
	status string // CONNECTED's status: new, connected, running
	// Frame binding (docs/trust.md): the nonce of the agent's signed
	// CONNECTED, the seq of the last frame sent, and the signature of this
	// connection's CONNECT.
	nonce       string
	seq         int64
	connectSigs map[string]bool // sha256 of the CONNECTs this connection sent
	// pending holds frames already read that read returns first (a
	// resumed turn's events, held back until the replay's end was known).
	pending <-chan *frame
}

// dial opens a WebSocket to the agent or, through the relay, to /ws/input.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	u := c.relay + "/ws/input"
	if c.base != "" {
		u = wsBase(c.base) + "/ws"
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.o.hc})
	if err != nil {
		if resp != nil && statusKinds[resp.StatusCode] != nil {
			return nil, &Error{Kind: statusKinds[resp.StatusCode], Status: resp.StatusCode, Message: "connecting to " + u}
		}
		return nil, fmt.Errorf("%w: connecting to %s: %w", ErrOffline, u, err)
	}
	ws.SetReadLimit(64 << 20)
	return &conn{c: c, ws: ws}, nil
}

// signed returns frame fields plus, when the client signs, the envelope
// over payload with "to", "timestamp" and a nonce (so two frames signed in
// the same second never look like a replay).
func (c *Client) signed(frame, payload map[string]any) (map[string]any, error) {
	if c.address != "" {
		frame["to"] = c.address
	}
	if c.id == nil {
		return frame, nil
	}
	if payload == nil {
		payload = map[string]any{}
	}
	payload["nonce"] = ids.Token(8)
	env, err := trust.Sign(c.id, trust.NewPayload(c.address, c.o.now(), payload))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	frame["payload"], frame["from"], frame["signature"] = env.Payload, env.From, env.Signature
	return frame, nil
}

// bound signs a frame of type typ bound to the connection: payload (what
// the frame does) plus the frame's type, the connection's nonce and the
// next seq, so the agent knows it comes from this connection's signer and
// was neither replayed nor made up on the way. The payload's fields are
// also set beside it, as the reference protocol has them.
func (k *conn) bound(typ string, payload map[string]any, outer map[string]any) (map[string]any, error) {
	frame := map[string]any{"type": typ}
	for key, v := range payload {
		frame[key] = v
	}
	for key, v := range outer {
		frame[key] = v
	}
	if k.c.id == nil {
		if k.c.address != "" {
			frame["to"] = k.c.address
		}
		return frame, nil
	}
	p := map[string]any{"type": typ}
	for key, v := range payload {
		p[key] = v
	}
	if k.nonce != "" {
		k.seq++
		p["conn"], p["seq"] = k.nonce, k.seq
	}
	return k.c.signed(frame, p)
}

// verifyAnswer checks the agent's signature on a CONNECTED or OUTPUT frame
// and returns its signed payload. A client that signs requires it; an
// unsigned client checks it when present.
func (k *conn) verifyAnswer(f *frame) (map[string]any, error) {
	c := k.c
	if c.address == "" || c.verifier == nil {
		return nil, nil // an agent that told us no address: nothing to check against
	}
	tampered := func(msg string) error {
		return &Error{Kind: ErrTampered, Message: msg, SessionID: k.sid}
	}
	var probe struct {
		Signature string `json:"signature"`
	}
	json.Unmarshal(f.raw, &probe)
	if probe.Signature == "" {
		if c.id == nil {
			return nil, nil
		}
		return nil, tampered(fmt.Sprintf("%s from %s carries no signature of the agent", f.Type, c.address))
	}
	m, err := c.verifier.Verify(context.Background(), f.raw)
	if err != nil {
		return nil, tampered(fmt.Sprintf("%s: %v", f.Type, err))
	}
	if m.From != c.address {
		return nil, tampered(fmt.Sprintf("%s is signed by %s, not by the agent %s", f.Type, m.From, c.address))
	}
	var p map[string]any
	if err := json.Unmarshal(m.Payload, &p); err != nil || p["type"] != f.Type {
		return nil, tampered(fmt.Sprintf("%s: the signed payload is for another frame", f.Type))
	}
	if c.id != nil && p["to"] != c.id.Address() {
		return nil, tampered(fmt.Sprintf("%s was signed for another caller", f.Type))
	}
	return p, nil
}

func (k *conn) send(ctx context.Context, v map[string]any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := k.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return k.lost(ctx, err)
	}
	return nil
}

// frame is a decoded server frame.
type frame struct {
	raw  json.RawMessage
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id"`
	Sess string          `json:"session_id"`
	Code string          `json:"code"`
	Msg  string          `json:"message"`
	Err  string          `json:"error"`
	// CONNECTED, OUTPUT
	Status     string          `json:"status"`
	Result     json.RawMessage `json:"result"`
	DurationMS int64           `json:"duration_ms"`
	Session    json.RawMessage `json:"session"`
	ChatItems  json.RawMessage `json:"chat_items"`
	// STREAM, tool events
	Chunk  string          `json:"chunk"`
	Name   string          `json:"name"`
	ToolID string          `json:"tool_id"`
	Args   json.RawMessage `json:"args"`
	// ask_user
	Text        string   `json:"text"`
	Options     []string `json:"options"`
	MultiSelect bool     `json:"multi_select"`
	// approval_needed
	Tool        string          `json:"tool"`
	Arguments   json.RawMessage `json:"arguments"`
	Description string          `json:"description"`
	// ONBOARD_REQUIRED
	Methods       []string `json:"methods"`
	PaymentAmount int64    `json:"payment_amount"`
	// CONNECTED
	Nonce string `json:"nonce"`
}

func (k *conn) read(ctx context.Context) (*frame, error) {
	if k.pending != nil {
		if f, ok := <-k.pending; ok {
			return f, nil
		}
		k.pending = nil
	}
	rctx, cancel := context.WithTimeout(ctx, k.c.o.idle)
	defer cancel()
	_, b, err := k.ws.Read(rctx)
	if err != nil {
		if ctx.Err() == nil && rctx.Err() != nil {
			return nil, &Error{Kind: ErrConnectionLost, Message: fmt.Sprintf("no frame from the agent for %s", k.c.o.idle), SessionID: k.sid}
		}
		return nil, k.lost(ctx, err)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("client: bad frame from the agent: %w", err)
	}
	f.raw = b
	return &f, nil
}

// lost turns a transport error into ErrConnectionLost (or ctx's error).
func (k *conn) lost(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := err.Error()
	if reason := closeReason(err); reason != "" {
		msg = reason
	}
	where := "the agent"
	if k.c.base == "" {
		where = "the relay"
	}
	return &Error{Kind: ErrConnectionLost, Message: fmt.Sprintf("connection to %s ended: %s", where, msg), SessionID: k.sid}
}

func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		if ce.Reason != "" {
			return fmt.Sprintf("%s (%d)", ce.Reason, ce.Code)
		}
		return fmt.Sprintf("closed (%d)", ce.Code)
	}
	return ""
}

// errorOf converts an ERROR frame.
func (k *conn) errorOf(f *frame) *Error {
	msg := f.Msg
	if msg == "" {
		msg = f.Err
	}
	e := errorFromCode(f.Code, msg, k.sid)
	if f.Code == "" && k.c.base == "" {
		// The relay's own errors carry no code; all but rate limiting
		// end the session.
		switch {
		case strings.Contains(msg, "offline"):
			e.Kind = ErrOffline
		case strings.HasPrefix(msg, "rate limited"):
			e.Kind = ErrUnavailable
		default:
			e.Kind = ErrConnectionLost
			e.Message = "relay: " + msg
		}
	}
	return e
}

// open dials and establishes the session: CONNECT, onboarding when asked,
// CONNECTED. lastMsgID ≥ 0 asks the agent to replay the session's events
// after that one.
func (c *Client) open(ctx context.Context, sessionID string, lastMsgID int64) (*conn, error) {
	k, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	connect := func() error {
		f := map[string]any{"type": "CONNECT"}
		// The signed payload says the same, and that every frame of this
		// connection will be signed and bound to it.
		p := map[string]any{"signed_frames": true}
		if sessionID != "" {
			f["session_id"], p["session_id"] = sessionID, sessionID
		}
		if lastMsgID >= 0 {
			f["last_msg_id"] = strconv.FormatInt(lastMsgID, 10)
			p["last_msg_id"] = f["last_msg_id"]
		}
		f, err := c.signed(f, p)
		if err != nil {
			return err
		}
		if sig, _ := f["signature"].(string); sig != "" {
			if k.connectSigs == nil {
				k.connectSigs = map[string]bool{}
			}
			k.connectSigs[sha256Hex(sig)] = true
		}
		return k.send(ctx, f)
	}
	if err := connect(); err != nil {
		k.ws.CloseNow()
		return nil, err
	}
	onboarded := false
	for {
		f, err := k.read(ctx)
		if err != nil {
			k.ws.CloseNow()
			return nil, err
		}
		switch f.Type {
		case "CONNECTED":
			p, err := k.verifyAnswer(f)
			if err == nil && p != nil {
				switch {
				case p["nonce"] != f.Nonce || f.Nonce == "":
					err = &Error{Kind: ErrTampered, Message: "CONNECTED: the nonce differs from the signed one"}
				case k.connectSigs != nil && !k.connectSigs[fmt.Sprint(p["connect"])]:
					err = &Error{Kind: ErrTampered, Message: "CONNECTED answers another CONNECT"}
				}
			}
			if err != nil {
				k.close()
				return nil, err
			}
			k.sid, k.status, k.nonce = f.Sess, f.Status, f.Nonce
			return k, nil
		case "ONBOARD_REQUIRED":
			if onboarded {
				k.close()
				return nil, &Error{Kind: ErrForbidden, Message: "still not admitted after onboarding"}
			}
			err = c.onboard(ctx, k, f)
			onboarded = true
			if err == nil {
				err = connect()
			}
		case "ERROR":
			err = k.errorOf(f)
		case "PING":
			err = k.send(ctx, map[string]any{"type": "PONG"})
		}
		if err != nil {
			k.close()
			return nil, err
		}
	}
}

// onboard answers ONBOARD_REQUIRED with the invite code, or with a
// payment the agent asks for that is within WithPayment's limit, and waits
// for ONBOARD_SUCCESS.
func (c *Client) onboard(ctx context.Context, k *conn, req *frame) error {
	offer := map[string]any{}
	switch {
	case c.o.invite != "" && (len(req.Methods) == 0 || slices.Contains(req.Methods, "invite_code")):
		offer["invite_code"] = c.o.invite
	case c.o.payment > 0 && slices.Contains(req.Methods, "payment"):
		if req.PaymentAmount > c.o.payment {
			return &Error{Kind: ErrOnboardRequired, Code: "payment_too_low",
				Message: fmt.Sprintf("the agent asks %d credits to onboard; you allowed at most %d (--pay / WithPayment)", req.PaymentAmount, c.o.payment)}
		}
		amount := req.PaymentAmount
		if amount <= 0 {
			amount = c.o.payment
		}
		offer["payment"] = amount
	default:
		how := "give an invite code (--invite / WithInviteCode)"
		if slices.Contains(req.Methods, "payment") {
			how = fmt.Sprintf("give an invite code (--invite / WithInviteCode) or pay %d credits (--pay %d / WithPayment)", req.PaymentAmount, req.PaymentAmount)
			if !slices.Contains(req.Methods, "invite_code") {
				how = fmt.Sprintf("pay %d credits (--pay %d / WithPayment); the agent's operator grants credits with agenthost credits grant", req.PaymentAmount, req.PaymentAmount)
			}
		}
		return &Error{Kind: ErrOnboardRequired, Code: "onboard_required",
			Message: fmt.Sprintf("the agent admits this caller after onboarding (%s); %s", strings.Join(req.Methods, ", "), how)}
	}
	if c.id == nil {
		return &Error{Kind: ErrOnboardRequired, Message: "onboarding needs a signing key"}
	}
	f, err := k.bound("ONBOARD_SUBMIT", offer, nil)
	if err != nil {
		return err
	}
	if err := k.send(ctx, f); err != nil {
		return err
	}
	for {
		f, err := k.read(ctx)
		if err != nil {
			return err
		}
		switch f.Type {
		case "ONBOARD_SUCCESS":
			return nil
		case "ERROR":
			e := k.errorOf(f)
			e.Message = "onboarding refused: " + e.Message
			return e
		case "PING":
			if err := k.send(ctx, map[string]any{"type": "PONG"}); err != nil {
				return err
			}
		}
	}
}

func (k *conn) close() { k.ws.Close(websocket.StatusNormalClosure, "") }

// run performs one Input; yield gets each event and may stop the run's
// streaming by returning false.
func (c *Client) run(ctx context.Context, prompt string, o inputOptions, yield func(Event) bool) (*Result, error) {
	k, err := c.open(ctx, c.SessionID(), -1)
	if err != nil {
		return nil, err
	}
	defer k.ws.CloseNow()
	c.setLast(k.sid, 0)
	outer := map[string]any{}
	var ij, fj json.RawMessage
	if len(o.images) > 0 {
		outer["images"] = o.images
		ij, _ = json.Marshal(o.images)
	}
	if len(o.files) > 0 {
		outer["files"] = o.files
		fj, _ = json.Marshal(o.files)
	}
	p := map[string]any{"prompt": prompt}
	if len(outer) > 0 {
		d, err := trust.BodyDigest(nil, ij, fj)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		p["digest"] = d
	}
	in, err := k.bound("INPUT", p, outer)
	if err != nil {
		return nil, err
	}
	if err := k.send(ctx, in); err != nil {
		return nil, err
	}
	return c.follow(ctx, k, o, yield, false)
}

// Resume reattaches to the client's session after a lost connection
// (ErrConnectionLost): the agent replays the events after the last one this
// client saw (all of them for a client that saw none, e.g. one made with
// WithSession), then streams the rest of the run, and Resume returns its
// answer, as Input would have. A run that already ended gives its stored
// answer.
func (c *Client) Resume(ctx context.Context, opts ...InputOption) (*Result, error) {
	var o inputOptions
	for _, opt := range opts {
		opt(&o)
	}
	c.mu.Lock()
	sid, last := c.session, c.lastEvent
	c.mu.Unlock()
	if sid == "" {
		return nil, &Error{Kind: ErrBadRequest, Message: "no session to resume"}
	}
	k, err := c.open(ctx, sid, last)
	if err != nil {
		return nil, err
	}
	defer k.ws.CloseNow()
	if k.sid != sid {
		return nil, &Error{Kind: ErrNotFound, Message: "session " + sid, SessionID: sid}
	}
	if last == 0 {
		return c.resumeFresh(ctx, k, o)
	}
	if k.status != "running" {
		// Whatever the run left is replayed before this is answered.
		f, err := k.bound("SESSION_STATUS", map[string]any{"session_id": sid}, nil)
		if err != nil {
			return nil, err
		}
		if err := k.send(ctx, f); err != nil {
			return nil, err
		}
	}
	return c.follow(ctx, k, o, func(e Event) bool {
		if o.onEvent != nil {
			o.onEvent(e)
		}
		return true
	}, true)
}

// resumeFresh resumes for a client that saw none of the session (last
// event 0): the host replays the whole session, every earlier turn
// included, so a SESSION_STATUS sent at once marks where the replay ends.
// Until then the events of each turn that ended (OUTPUT, or ERROR) are
// dropped; at the mark, a session that is idle answers with its latest
// result, and a running one has the events of its current turn passed on
// and is followed to its end.
func (c *Client) resumeFresh(ctx context.Context, k *conn, o inputOptions) (*Result, error) {
	f, err := k.bound("SESSION_STATUS", map[string]any{"session_id": k.sid}, nil)
	if err != nil {
		return nil, err
	}
	if err := k.send(ctx, f); err != nil {
		return nil, err
	}
	var current []*frame
	for {
		f, err := k.read(ctx)
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case "PING":
			if err := k.send(ctx, map[string]any{"type": "PONG"}); err != nil {
				return nil, err
			}
		case "CONNECTED", "PONG", "ONBOARD_SUCCESS":
		case "ERROR":
			if f.event().ID == 0 {
				return nil, k.errorOf(f) // the host's answer, not a replayed turn
			}
			current = current[:0] // an earlier turn, failed
		case "OUTPUT":
			current = current[:0] // an earlier turn, over
		case "SESSION_STATUS":
			if f.Status != "running" && f.Status != "waiting_approval" {
				return c.statusResult(k, f)
			}
			// Replay what the current turn did so far, then follow it.
			replay := make(chan *frame, len(current))
			for _, cf := range current {
				replay <- cf
			}
			close(replay)
			k.pending = replay
			return c.follow(ctx, k, o, func(e Event) bool {
				if o.onEvent != nil {
					o.onEvent(e)
				}
				return true
			}, false)
		case EventApproval, EventAskUser:
			current = append(current, f)
		default:
			// The turn moved on: the questions it asked before were
			// answered; only those still open are passed on.
			current = slices.DeleteFunc(current, func(p *frame) bool { return p.Type == EventApproval || p.Type == EventAskUser })
			current = append(current, f)
		}
	}
}

// statusResult is the result a finished session's SESSION_STATUS reports.
func (c *Client) statusResult(k *conn, f *frame) (*Result, error) {
	if err := k.checkResult(f); err != nil {
		return nil, err
	}
	k.close()
	res := &Result{SessionID: k.sid, Result: stringOf(f.Result), Session: f.Session, ChatItems: f.ChatItems}
	switch f.Status {
	case "done":
		return res, nil
	case "new":
		return nil, &Error{Kind: ErrNotFound, Message: "session " + k.sid, SessionID: k.sid}
	case "interrupted":
		return res, &Error{Kind: ErrInterrupted, SessionID: k.sid}
	}
	return res, &Error{Kind: errors.New("run " + f.Status), Message: res.Result, SessionID: k.sid}
}

// setLast records the session and the last event seen, for Resume.
func (c *Client) setLast(session string, id int64) {
	c.mu.Lock()
	if session != "" {
		c.session = session
	}
	c.lastEvent = id
	c.mu.Unlock()
}

// follow reads a run's frames until its OUTPUT. With status set, a
// SESSION_STATUS frame (asked for by Resume) ends it too.
func (c *Client) follow(ctx context.Context, k *conn, o inputOptions, yield func(Event) bool, status bool) (*Result, error) {
	ask, approve := o.onQuestion, o.onApproval
	if ask == nil {
		ask = c.o.onQuestion
	}
	if approve == nil {
		approve = c.o.onApproval
	}
	for {
		f, err := k.read(ctx)
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case "PING":
			err = k.send(ctx, map[string]any{"type": "PONG"})
		case "CONNECTED", "PONG", "ONBOARD_SUCCESS":
		case "ERROR":
			return nil, k.errorOf(f)
		case "ONBOARD_REQUIRED":
			return nil, &Error{Kind: ErrOnboardRequired, Message: "the agent asked for onboarding again", SessionID: k.sid}
		case "SESSION_STATUS":
			if !status || f.Status == "running" || f.Status == "waiting_approval" {
				continue
			}
			return c.statusResult(k, f)
		case "OUTPUT":
			if err := k.checkResult(f); err != nil {
				return nil, err
			}
			res := &Result{SessionID: f.Sess, Result: stringOf(f.Result), DurationMS: f.DurationMS, Session: f.Session, ChatItems: f.ChatItems}
			// The session object names the agent's own id. Through a relay
			// the top-level id is the relay's, which differs when the agent
			// started a new session instead of the one named (another
			// caller's, or gone).
			var inner struct {
				SessionID string `json:"session_id"`
			}
			if json.Unmarshal(f.Session, &inner) == nil && inner.SessionID != "" {
				res.SessionID = inner.SessionID
			}
			if res.SessionID == "" {
				res.SessionID = k.sid
			}
			c.setLast(res.SessionID, 0)
			k.close()
			if f.Status == "interrupted" {
				return res, &Error{Kind: ErrInterrupted, SessionID: res.SessionID}
			}
			yield(Event{Type: EventOutput, SessionID: res.SessionID, Result: res.Result, Raw: f.raw})
			return res, nil
		default:
			ev := f.event()
			if ev.SessionID == "" {
				ev.SessionID = k.sid
			}
			if ev.ID > 0 {
				c.setLast("", ev.ID)
			}
			if !yield(ev) {
				return nil, nil
			}
			switch f.Type {
			case EventAskUser:
				err = c.answerQuestion(ctx, k, f, ask)
			case EventApproval:
				err = c.answerApproval(ctx, k, f, approve)
			}
		}
		if err != nil {
			return nil, err
		}
	}
}

func (c *Client) answerQuestion(ctx context.Context, k *conn, f *frame, ask QuestionFunc) error {
	var ans []string
	if ask != nil {
		var err error
		ans, err = ask(ctx, Question{Text: f.Text, Options: f.Options, MultiSelect: f.MultiSelect})
		if err != nil {
			return fmt.Errorf("client: answering the agent's question: %w", err)
		}
	}
	var v any = ""
	switch {
	case len(ans) == 1 && !f.MultiSelect:
		v = ans[0]
	case len(ans) > 0:
		v = ans
	}
	msg, err := k.bound("ASK_USER_RESPONSE", map[string]any{"answer": v}, nil)
	if err != nil {
		return err
	}
	return k.send(ctx, msg)
}

func (c *Client) answerApproval(ctx context.Context, k *conn, f *frame, approve ApprovalFunc) error {
	d := Decision{Feedback: "this client has no way to ask for approval"}
	if approve != nil {
		var err error
		d, err = approve(ctx, Approval{Tool: f.Tool, ToolID: f.ToolID, Arguments: f.Arguments, Description: f.Description})
		if err != nil {
			return fmt.Errorf("client: deciding an approval: %w", err)
		}
	}
	p := map[string]any{"approved": d.Approved}
	if d.Approved {
		p["scope"] = "once"
		if d.Scope == "session" {
			p["scope"] = "session"
		}
	}
	if d.Feedback != "" {
		p["feedback"] = d.Feedback
	}
	msg, err := k.bound("APPROVAL_RESPONSE", p, nil)
	if err != nil {
		return err
	}
	return k.send(ctx, msg)
}

// checkResult verifies the agent's signature on an OUTPUT or
// SESSION_STATUS: for this connection, over this very result.
func (k *conn) checkResult(f *frame) error {
	p, err := k.verifyAnswer(f)
	if err != nil || p == nil {
		return err
	}
	if k.nonce != "" && p["nonce"] != k.nonce {
		return &Error{Kind: ErrTampered, Message: f.Type + " was signed for another connection", SessionID: k.sid}
	}
	if p["result_sha256"] != sha256Hex(stringOf(f.Result)) {
		return &Error{Kind: ErrTampered, Message: f.Type + ": the result differs from the one the agent signed", SessionID: k.sid}
	}
	return nil
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// event decodes the common fields of an event frame.
func (f *frame) event() Event {
	e := Event{Type: f.Type, SessionID: f.Sess, Chunk: f.Chunk, Name: f.Name, ToolID: f.ToolID, Args: f.Args,
		Status: f.Status, Result: stringOf(f.Result), Raw: f.raw}
	var s string
	if json.Unmarshal(f.ID, &s) == nil {
		e.ID, _ = strconv.ParseInt(s, 10, 64)
	} else {
		_ = json.Unmarshal(f.ID, &e.ID)
	}
	if f.Type == EventApproval {
		e.Name, e.Args = f.Tool, f.Arguments
	}
	return e
}

// stringOf returns a JSON string's value, or other JSON as text.
func stringOf(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
