package host

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/agenthost/agenthost/llm"
)

// inputRequest is POST /input's body, plain or signed (docs/protocol.md §2).
type inputRequest struct {
	Prompt    *string  `json:"prompt"`
	Session   *Session `json:"session"`
	SessionID string   `json:"session_id"`
	// CreateSession asks for a new session under SessionID when the caller
	// has none by that name; without it such a name is a 404.
	CreateSession bool        `json:"create_session"`
	Images        []string    `json:"images"`
	Files         []fileInput `json:"files"`
	// The signed form: the prompt is inside the signed payload.
	Payload   json.RawMessage `json:"payload"`
	From      string          `json:"from"`
	Signature string          `json:"signature"`
	Timestamp *float64        `json:"timestamp"`
	// raw is the body as received, for the gate.
	raw []byte
}

// fileInput is an uploaded file: a name for the agent's benefit and the
// content as a base64 data URL (or bare base64).
type fileInput struct {
	Name string `json:"name"`
	Data string `json:"data"`
	Type string `json:"type,omitempty"`
}

// signedPayload is the part of a signed request that the signature covers.
type signedPayload struct {
	Prompt    string `json:"prompt"`
	Timestamp any    `json:"timestamp"`
	To        string `json:"to"`
}

// sessionID returns the session the request names and whether the caller
// asks to create it: in the signed form from the payload's session_id and
// create_session, and nothing else — an unsigned top-level session_id
// beside the payload must name the same session, so nobody on the way can
// move a signed prompt into another of the signer's conversations.
func (in *inputRequest) sessionID() (id string, create bool, err error) {
	if !in.signed() {
		return in.SessionID, in.CreateSession, nil
	}
	var p struct {
		SessionID     string `json:"session_id"`
		CreateSession bool   `json:"create_session"`
	}
	if len(in.Payload) > 0 {
		json.Unmarshal(in.Payload, &p)
	}
	if in.SessionID != "" && in.SessionID != p.SessionID {
		return "", false, unauthorized("session_id is not signed: put it in the signed payload as payload.session_id")
	}
	if in.CreateSession && !p.CreateSession {
		return "", false, unauthorized("create_session is not signed: put it in the signed payload as payload.create_session")
	}
	return p.SessionID, p.CreateSession, nil
}

// signed reports whether the request claims a signature; the gate then
// verifies it, and the prompt comes from the signed payload only.
func (in *inputRequest) signed() bool {
	return in.Signature != "" || (len(in.Payload) > 0 && string(in.Payload) != "null")
}

// prompt returns the request's prompt: in the signed form the payload's,
// and nothing else (a top-level prompt beside it must be the same text).
func (in *inputRequest) prompt() (string, error) {
	if in.signed() {
		return signedPrompt(in.Payload, in.Prompt)
	}
	if in.Prompt == nil || strings.TrimSpace(*in.Prompt) == "" {
		return "", &fieldError{field: "prompt", msg: "is required and must not be empty"}
	}
	return *in.Prompt, nil
}

// signedPrompt is the prompt of a signed request or frame: payload.prompt,
// required; an unsigned top-level prompt beside it must say the same, so
// nobody on the way can make a signed request run other words.
func signedPrompt(payload json.RawMessage, outer *string) (string, error) {
	var p signedPayload
	if len(payload) == 0 || json.Unmarshal(payload, &p) != nil {
		return "", &fieldError{field: "payload", msg: "must be an object with a prompt"}
	}
	if strings.TrimSpace(p.Prompt) == "" {
		return "", &fieldError{field: "payload.prompt", msg: "is required in a signed request: sign the prompt"}
	}
	if outer != nil && *outer != p.Prompt {
		return "", unauthorized("the prompt differs from the signed payload's; send the signed prompt only")
	}
	return p.Prompt, nil
}

// gateRequest is what the gate sees of an input.
func (in *inputRequest) gateRequest(transport, method, path string, h http.Header, remote string) *Request {
	r := &Request{Transport: transport, Method: method, Path: path, Header: h, RemoteAddr: remote,
		From: in.From, Signature: in.Signature}
	if len(in.Payload) > 0 && string(in.Payload) != "null" {
		r.Payload = in.Payload
	}
	if in.Timestamp != nil {
		r.Timestamp = int64(*in.Timestamp)
	}
	if r.Signed() {
		r.Body = in.raw
	}
	return r
}

// maxInputBody is the body limit of an input: every allowed file at its
// maximum size, base64 encoded, plus room for the prompt and session.
func maxInputBody(cfg *Config) int64 {
	perFile := int64(cfg.MaxFileSizeMB * (1 << 20))
	return int64(cfg.MaxFilesPerRequest)*(perFile/3*4+1024) + 4<<20
}

// attachments checks the images and files against the limits, saves the
// files under <co_dir>/uploads/<caller>/ with generated names (within the
// caller's quota, uploads.go), and returns the parts to add to the user's
// message: the images, and a note per file telling the agent where it is.
// It runs only for admitted requests.
func attachments(cfg *Config, images []string, files []fileInput, owner uploadOwner, now func() time.Time) ([]llm.Part, error) {
	if n := len(images) + len(files); n > cfg.MaxFilesPerRequest {
		return nil, errorf(http.StatusBadRequest, "too many attachments: %d files and images; the limit is %d per request", n, cfg.MaxFilesPerRequest)
	}
	limit := int64(cfg.MaxFileSizeMB * (1 << 20))
	limitStr := fmt.Sprintf("%g MB", cfg.MaxFileSizeMB)
	var parts []llm.Part
	for i, img := range images {
		mt, data, err := decodeDataURL(img)
		if err != nil || !strings.HasPrefix(mt, "image/") {
			return nil, errorf(http.StatusBadRequest, "images[%d] must be a base64 data URL of an image (data:image/png;base64,...)", i)
		}
		if int64(len(data)) > limit {
			return nil, errorf(http.StatusRequestEntityTooLarge, "image %d is %s; the limit is %s per file", i+1, sizeString(int64(len(data))), limitStr)
		}
		parts = append(parts, llm.ImagePart(img))
	}
	type decoded struct {
		name, mt string
		data     []byte
	}
	var ok []decoded
	for i, f := range files {
		label := fmt.Sprintf("files[%d]", i)
		if f.Name != "" {
			label = fmt.Sprintf("file %q", clipString(f.Name, 80))
		}
		if f.Data == "" {
			return nil, errorf(http.StatusBadRequest, "%s has no data; send it as a base64 data URL", label)
		}
		if est := decodedLen(f.Data); est > limit {
			return nil, errorf(http.StatusRequestEntityTooLarge, "%s is %s; the limit is %s per file", label, sizeString(est), limitStr)
		}
		mt, data, err := decodeDataURL(f.Data)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "%s: data is not a base64 data URL (data:<type>;base64,...)", label)
		}
		if int64(len(data)) > limit {
			return nil, errorf(http.StatusRequestEntityTooLarge, "%s is %s; the limit is %s per file", label, sizeString(int64(len(data))), limitStr)
		}
		if mt == "" {
			mt = f.Type
		}
		ok = append(ok, decoded{name: f.Name, mt: mt, data: data})
	}
	if len(ok) == 0 {
		return parts, nil
	}
	dir := uploadsDirOf(cfg, owner)
	var total int64
	for _, f := range ok {
		total += int64(len(f.data))
	}
	unlock := lockUploads(dir)
	defer unlock()
	if err := checkQuota(cfg, dir, total); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("uploads: %w", err)
	}
	at := now()
	for _, f := range ok {
		path := filepath.Join(dir, uploadName(f.name))
		if err := os.WriteFile(path, f.data, 0o600); err != nil {
			return nil, fmt.Errorf("saving upload: %w", err)
		}
		// The host's clock dates the upload, for its expiry.
		os.Chtimes(path, at, at)
		note := fmt.Sprintf("[The user attached the file %q (%d bytes", clipString(f.name, 120), len(f.data))
		if f.mt != "" {
			note += ", " + f.mt
		}
		note += fmt.Sprintf("). It is saved at %s; read it from there with your file tools.]", path)
		parts = append(parts, llm.TextPart(note))
	}
	return parts, nil
}

// decodedLen is the size base64 data decodes to, computed without decoding
// so that oversized files are refused cheaply.
func decodedLen(s string) int64 {
	if _, body, ok := strings.Cut(s, ","); ok && strings.HasPrefix(s, "data:") {
		s = body
	}
	return int64(len(strings.TrimRight(s, "="))) * 3 / 4
}

// decodeDataURL decodes "data:<type>;base64,<data>" or bare base64.
func decodeDataURL(s string) (mediaType string, data []byte, err error) {
	payload := s
	if rest, ok := strings.CutPrefix(s, "data:"); ok {
		meta, body, found := strings.Cut(rest, ",")
		if !found || !strings.HasSuffix(meta, ";base64") {
			return "", nil, fmt.Errorf("not a base64 data URL")
		}
		mediaType, _, _ = strings.Cut(strings.TrimSuffix(meta, ";base64"), ";")
		payload = body
	}
	payload = strings.TrimRight(payload, "=")
	data, err = base64.RawStdEncoding.DecodeString(payload)
	if err != nil {
		data, err = base64.RawURLEncoding.DecodeString(payload)
	}
	return mediaType, data, err
}

// uploadName is a generated, safe file name that keeps a readable tail of
// the client's name: never a path, never hidden, never too long.
func uploadName(client string) string {
	var rnd [8]byte
	rand.Read(rnd[:])
	base := client
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	var b strings.Builder
	for _, r := range base {
		switch {
		case r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)), r == '.', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('_')
		}
	}
	clean := strings.TrimLeft(b.String(), ".")
	if len(clean) > 64 {
		clean = clean[len(clean)-64:]
	}
	if clean == "" {
		clean = "file"
	}
	return hex.EncodeToString(rnd[:]) + "_" + clean
}
