package coding

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/llm"
)

// The seed's example question, as the model sends it.
const seedQuestion = `{"questions":[{"question":"How would you like me to implement this?","header":"Approach",
"options":[{"label":"Simple","description":"Quick, minimal implementation"},{"label":"Full","description":"Complete with tests and error handling"}],
"multiSelect":false},{"question":"Which extras?","header":"Extras","options":[{"label":"Docs"},{"label":"Bench"}],"multiSelect":true}]}`

func TestQuestionTool(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		answers [][]string
		askErr  error
		want    string
		err     string
	}{
		{"seed example", seedQuestion, [][]string{{"Simple"}, {"Docs", "Bench"}},
			nil, "The user answered:\n1. How would you like me to implement this? → \"Simple\"\n2. Which extras? → \"Docs\", \"Bench\"", ""},
		{"unanswered", seedQuestion, [][]string{{"Full"}, {}}, nil, "2. Which extras? → (no answer)", ""},
		{"own words", `{"questions":[{"question":"Name?","options":[{"label":"foo"}]}]}`, [][]string{{"bar baz"}}, nil, `→ "bar baz"`, ""},
		{"no questions", `{"questions":[]}`, nil, nil, "", "at least one question"},
		{"no text", `{"questions":[{"question":" ","options":[{"label":"a"}]}]}`, nil, nil, "", "question text is empty"},
		{"no options", `{"questions":[{"question":"Why?"}]}`, nil, nil, "", "at least one option"},
		{"empty label", `{"questions":[{"question":"Why?","options":[{"label":""}]}]}`, nil, nil, "", "label is empty"},
		{"missing questions", `{}`, nil, nil, "", "invalid arguments"},
		{"asker fails", seedQuestion, nil, errors.New("expired"), "", "asking the user: expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []agent.Question
			asker := func(_ context.Context, qs []agent.Question) ([][]string, error) {
				got = qs
				return tc.answers, tc.askErr
			}
			// AskUser finds the asker in the run's context; a run with
			// the tool is the only way to put it there.
			tool := QuestionTool()
			probe := agent.MustTool("probe", "", func(ctx context.Context, _ struct{}) (string, error) {
				return tool.Call(ctx, json.RawMessage(tc.args))
			})
			a, err := agent.New("q", agent.WithTools(probe))
			if err != nil {
				t.Fatal(err)
			}
			var res *agent.Result
			var out *agent.ToolOutcome
			for ev := range a.Run(context.Background(), &agent.Conversation{}, []llm.Message{llm.UserText("use probe")}, agent.WithAsker(asker)) {
				if ev.Type == agent.EventToolResult {
					out = ev.ToolResult
				}
				if ev.Type == agent.EventResult {
					res = ev.Result
				}
			}
			if res == nil || out == nil {
				t.Fatal("no tool result")
			}
			if tc.err != "" {
				if out.Err == nil || !strings.Contains(out.Err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", out.Err, tc.err)
				}
				return
			}
			if out.Err != nil || !strings.Contains(out.Output, tc.want) {
				t.Fatalf("output = %q, %v; want %q", out.Output, out.Err, tc.want)
			}
			if tc.name == "seed example" && (len(got) != 2 || got[0].Header != "Approach" || got[0].Options[1].Description == "" || !got[1].MultiSelect) {
				t.Fatalf("asker got %+v", got)
			}
		})
	}
}

// Through the offline model: the model calls question, the person
// answers, the model reads the answer.
func TestQuestionThroughAgent(t *testing.T) {
	tools, err := Tools(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New("coder", agent.WithTools(tools...))
	if err != nil {
		t.Fatal(err)
	}
	asker := func(_ context.Context, qs []agent.Question) ([][]string, error) {
		return [][]string{{"Simple"}, {"Docs"}}, nil
	}
	var res *agent.Result
	for ev := range a.Run(context.Background(), &agent.Conversation{}, []llm.Message{llm.UserText("use question " + seedQuestion)},
		agent.WithAsker(asker), agent.WithApprover(NewApprover(ApproverConfig{Tools: tools}))) {
		if ev.Type == agent.EventResult {
			res = ev.Result
		}
	}
	if res.Status != agent.StatusCompleted || !strings.Contains(res.Text, `→ "Simple"`) {
		t.Fatalf("result = %s %q", res.Status, res.Text)
	}
	if _, err := Tools(t.TempDir(), Options{NoQuestion: true}); err != nil {
		t.Fatal(err)
	}
}

func TestValidateAnswers(t *testing.T) {
	var qs struct {
		Questions []agent.Question `json:"questions"`
	}
	if err := json.Unmarshal([]byte(seedQuestion), &qs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		answers [][]string
		ok      bool
	}{
		{[][]string{{"Simple"}, {"Docs", "Bench"}}, true},
		{[][]string{{}, {}}, true},
		{[][]string{{"Simple", "Full"}, {}}, false},
		{[][]string{{"Simple"}}, false},
		{nil, false},
	}
	for _, tc := range tests {
		err := ValidateAnswers(qs.Questions, tc.answers)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrBadAnswers) {
			t.Errorf("ValidateAnswers(%q) = %v", tc.answers, err)
		}
	}
}

// The pending shapes serialise with exactly the seed's field names.
func TestWireShapes(t *testing.T) {
	p := Permission{ID: "perm_abc123", SessionID: "sess_xyz789", Permission: "bash", Patterns: []string{"rm -rf /tmp/build"},
		Metadata: map[string]any{}, Tool: ToolRef{MessageID: "msg_def456", CallID: "call_ghi012"}}
	b, _ := json.Marshal(p)
	want := `{"id":"perm_abc123","sessionID":"sess_xyz789","permission":"bash","patterns":["rm -rf /tmp/build"],"metadata":{},"always":false,"tool":{"messageID":"msg_def456","callID":"call_ghi012"}}`
	if string(b) != want {
		t.Errorf("permission JSON\n%s\nwant\n%s", b, want)
	}
	var r Reply
	if err := json.Unmarshal([]byte(`{"reply":"reject","message":"not now"}`), &r); err != nil || r != (Reply{Reply: ReplyReject, Message: "not now"}) {
		t.Errorf("reply = %+v, %v", r, err)
	}
	q := PendingQuestion{ID: "q_abc123", Questions: []agent.Question{{Question: "Q?", Header: "H", Options: []agent.AnswerOption{{Label: "A", Description: "d"}}}}}
	b, _ = json.Marshal(q)
	if want := `{"id":"q_abc123","questions":[{"question":"Q?","header":"H","options":[{"label":"A","description":"d"}],"multiSelect":false}]}`; string(b) != want {
		t.Errorf("question JSON\n%s\nwant\n%s", b, want)
	}
	var back PendingQuestion
	if err := json.Unmarshal(b, &back); err != nil || back.Questions[0].Options[0].Label != "A" {
		t.Errorf("question round trip = %+v, %v", back, err)
	}
	var qr QuestionReply
	if err := json.Unmarshal([]byte(`{"answers":[["Simple"]]}`), &qr); err != nil || qr.Answers[0][0] != "Simple" {
		t.Errorf("question reply = %+v, %v", qr, err)
	}
}
