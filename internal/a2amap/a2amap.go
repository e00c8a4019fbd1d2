// Package a2amap is the part of the A2A mapping (docs/a2a.md) that the
// host and the platform share, so that it is written once: task ids,
// turning a message's parts into a prompt and files, the result artifact,
// and the methods neither front end supports. It depends on a2a-go's types
// only; each front end keeps what differs (where a task's state is read
// from, where files are saved).
package a2amap

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"
)

// TaskSep joins a task id's session id and message id.
const TaskSep = "~"

// TaskID is the task of one run: "<session id>~<user message id>", so a
// task is read back from its session's history and is as durable as it.
func TaskID(sessionID, msgID string) a2a.TaskID {
	return a2a.TaskID(sessionID + TaskSep + msgID)
}

// SplitTaskID is TaskID's inverse; ok is false for anything TaskID does
// not make.
func SplitTaskID(id a2a.TaskID) (sessionID, msgID string, ok bool) {
	sessionID, msgID, ok = strings.Cut(string(id), TaskSep)
	return sessionID, msgID, ok && sessionID != "" && msgID != ""
}

// File is a file part sent with its bytes.
type File struct {
	// Name and MimeType are the sender's, possibly empty; Name is not a
	// path anyone may trust.
	Name, MimeType string
	// Base64 is the content as sent (standard base64); Data decoded.
	Base64 string
	Data   []byte
}

// IsImage reports whether the sender says the file is an image.
func (f File) IsImage() bool { return strings.HasPrefix(f.MimeType, "image/") }

// DataURL is the file as a base64 data URL.
func (f File) DataURL() string { return "data:" + f.MimeType + ";base64," + f.Base64 }

// Input is what a message asks: the prompt (its text parts, and its data
// parts as JSON blocks, in order) and its files.
type Input struct {
	Prompt string
	Files  []File
}

// ErrNoURIs is the reason a file part by uri is refused: neither front end
// fetches URLs a caller names (that would make the agent's host a proxy
// into its own network).
const ErrNoURIs = "this agent does not fetch files by uri; send the file's bytes (file.bytes, base64)"

// Parse turns a message's parts into an Input. Text parts make the prompt,
// data parts join it as indented JSON, file parts with bytes become Files
// (their base64 checked), and file parts by uri are refused with
// a2a.ErrUnsupportedContentType. A message without text is invalid.
func Parse(parts a2a.ContentParts) (Input, error) {
	var in Input
	var texts []string
	for i, p := range parts {
		switch p := p.(type) {
		case a2a.TextPart:
			texts = append(texts, p.Text)
		case a2a.DataPart:
			b, err := json.MarshalIndent(p.Data, "", "  ")
			if err != nil {
				return Input{}, fmt.Errorf("%w: parts[%d]: %v", a2a.ErrInvalidParams, i, err)
			}
			texts = append(texts, "```json\n"+string(b)+"\n```")
		case a2a.FilePart:
			fb, ok := p.File.(a2a.FileBytes)
			if !ok {
				return Input{}, fmt.Errorf("%w: parts[%d]: %s", a2a.ErrUnsupportedContentType, i, ErrNoURIs)
			}
			data, err := base64.StdEncoding.DecodeString(fb.Bytes)
			if err != nil {
				return Input{}, fmt.Errorf("%w: parts[%d]: file.bytes must be base64", a2a.ErrInvalidParams, i)
			}
			in.Files = append(in.Files, File{Name: fb.Name, MimeType: fb.MimeType, Base64: fb.Bytes, Data: data})
		default:
			return Input{}, fmt.Errorf("%w: parts[%d]: unknown part kind", a2a.ErrInvalidParams, i)
		}
	}
	in.Prompt = strings.Join(texts, "\n\n")
	if strings.TrimSpace(in.Prompt) == "" {
		return Input{}, fmt.Errorf("%w: the message needs a text part (the prompt)", a2a.ErrInvalidParams)
	}
	return in, nil
}

// FileNote is the line added to a prompt for a saved file: what it is and
// where, the path in backquotes so that it reads as one token.
func FileNote(name string, size int64, mimeType, path string) string {
	note := fmt.Sprintf("[The user attached the file %q (%d bytes", clip(name, 120), size)
	if mimeType != "" {
		note += ", " + mimeType
	}
	return note + fmt.Sprintf("). It is saved at `%s` in your workspace; read it from there with your file tools.]", path)
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// AgentMessage is an agent's text message in task t.
func AgentMessage(t a2a.TaskInfoProvider, text string) *a2a.Message {
	return a2a.NewMessageForTask(a2a.MessageRoleAgent, t, a2a.TextPart{Text: text})
}

// ResultArtifact is a task's answer: one artifact named "result".
func ResultArtifact(text string) *a2a.Artifact {
	return &a2a.Artifact{ID: "result", Name: "result", Parts: a2a.ContentParts{a2a.TextPart{Text: text}}}
}

// Unsupported implements the a2asrv.RequestHandler methods that neither
// front end supports; both embed it. Push notifications would make the
// server call out to URLs callers name, and the public Agent Card is the
// whole card.
type Unsupported struct{}

// OnGetTaskPushConfig: no push notifications.
func (Unsupported) OnGetTaskPushConfig(context.Context, *a2a.GetTaskPushConfigParams) (*a2a.TaskPushConfig, error) {
	return nil, a2a.ErrPushNotificationNotSupported
}

// OnListTaskPushConfig: no push notifications.
func (Unsupported) OnListTaskPushConfig(context.Context, *a2a.ListTaskPushConfigParams) ([]*a2a.TaskPushConfig, error) {
	return nil, a2a.ErrPushNotificationNotSupported
}

// OnSetTaskPushConfig: no push notifications.
func (Unsupported) OnSetTaskPushConfig(context.Context, *a2a.TaskPushConfig) (*a2a.TaskPushConfig, error) {
	return nil, a2a.ErrPushNotificationNotSupported
}

// OnDeleteTaskPushConfig: no push notifications.
func (Unsupported) OnDeleteTaskPushConfig(context.Context, *a2a.DeleteTaskPushConfigParams) error {
	return a2a.ErrPushNotificationNotSupported
}

// OnGetExtendedAgentCard: the public card is the whole card.
func (Unsupported) OnGetExtendedAgentCard(context.Context) (*a2a.AgentCard, error) {
	return nil, a2a.ErrAuthenticatedExtendedCardNotConfigured
}
