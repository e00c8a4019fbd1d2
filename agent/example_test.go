package agent_test

import (
	"context"
	"fmt"

	"github.com/agenthost/agenthost/agent"
)

type TranslateArgs struct {
	Text string `json:"text" jsonschema:"the text to translate"`
	To   string `json:"to,omitempty" jsonschema:"target language, e.g. Spanish"`
}

func Example() {
	translate := agent.MustTool("translate", "Translate text.",
		func(ctx context.Context, a TranslateArgs) (string, error) {
			return "Hola", nil // call your translation service here
		})
	a, err := agent.New("translator",
		agent.WithModel("offline/demo"), // or openai/gpt-4o-mini with llm/openai imported
		agent.WithSystemPrompt("You translate text."),
		agent.WithTools(translate))
	if err != nil {
		panic(err)
	}
	answer, err := a.Ask(context.Background(), `use translate on "hello"`)
	fmt.Println(answer, err)
	// Output: [offline demo model] The translate tool returned: Hola <nil>
}
