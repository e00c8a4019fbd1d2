package offline

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/agenthost/agenthost/llm"
)

var (
	factRe     = regexp.MustCompile(`(?i)\bmy\s+((?:favou?rite\s+)?[a-z][a-z ]{0,30}?)\s+is\s+([^.,;!?\n]+)`)
	iAmRe      = regexp.MustCompile(`(?i)\b(?:i am|i'm|call me)\s+([A-Z][\p{L}'-]*(?:\s+[A-Z][\p{L}'-]*)?)`)
	askFactRe  = regexp.MustCompile(`(?i)\bwhat(?:'s| is)\s+my\s+((?:favou?rite\s+)?[a-z][a-z ]{0,30}?)\s*\??$`)
	whoAmIRe   = regexp.MustCompile(`(?i)\bwho am i\b`)
	greetingRe = regexp.MustCompile(`(?i)^\s*(hi|hello|hey|hola|good (morning|afternoon|evening))\b`)
)

// answer composes a reply from the conversation alone.
func answer(req *llm.Request) string {
	var b strings.Builder
	b.WriteString(Prefix)
	msgs := req.Messages
	if len(msgs) == 0 {
		b.WriteString("There is nothing to answer yet.")
		return b.String()
	}
	last := msgs[len(msgs)-1]
	if last.Role == llm.RoleTool {
		writeToolSummary(&b, msgs)
		return b.String()
	}

	// Facts come from earlier visible user messages; the newest one may
	// state a new fact or ask for an old one.
	facts := map[string]string{}
	var earlier []string
	for _, m := range msgs[:len(msgs)-1] {
		if m.Role != llm.RoleUser || m.Hidden {
			continue
		}
		t := strings.TrimSpace(m.Text())
		if t == "" {
			continue
		}
		earlier = append(earlier, t)
		learn(facts, t)
	}
	prompt := strings.TrimSpace(last.Text())
	images := 0
	for _, p := range last.Parts {
		if p.Type == llm.PartImage {
			images++
		}
	}

	switch {
	case whoAmIRe.MatchString(prompt):
		if v, ok := facts["name"]; ok {
			fmt.Fprintf(&b, "You are %s.", v)
		} else {
			b.WriteString("You haven't told me your name yet.")
		}
	case askFactRe.MatchString(prompt):
		key := normKey(askFactRe.FindStringSubmatch(prompt)[1])
		if v, ok := facts[key]; ok {
			fmt.Fprintf(&b, "Your %s is %s.", key, v)
		} else {
			fmt.Fprintf(&b, "You haven't told me your %s yet.", key)
		}
	default:
		stated := map[string]string{}
		learn(stated, prompt)
		switch {
		case stated["name"] != "":
			fmt.Fprintf(&b, "Nice to meet you, %s! I'll remember that.", stated["name"])
		case len(stated) > 0:
			for k, v := range stated {
				fmt.Fprintf(&b, "Got it: your %s is %s. I'll remember that.", k, v)
				break
			}
		case greetingRe.MatchString(prompt):
			b.WriteString("Hello! I run without a network or an API key. Tell me something about you, or ask me to use one of my tools.")
		case prompt == "" && images == 0:
			b.WriteString("You sent an empty message.")
		default:
			fmt.Fprintf(&b, "You said: %q.", clip(prompt, 200))
		}
		if images > 0 {
			fmt.Fprintf(&b, " I received %d image(s), but I can't look at them; a multimodal model can.", images)
		}
		if len(earlier) > 0 {
			fmt.Fprintf(&b, " This is message %d of our conversation; you first said %q.", len(earlier)+1, clip(earlier[0], 80))
		}
		if len(req.Tools) > 0 && len(earlier) == 0 {
			names := make([]string, len(req.Tools))
			for i, t := range req.Tools {
				names[i] = t.Name
			}
			fmt.Fprintf(&b, " My tools: %s (say \"use %s ...\" to try one).", strings.Join(names, ", "), names[0])
		}
	}
	return b.String()
}

// writeToolSummary reports the results of the last round of tool calls.
func writeToolSummary(b *strings.Builder, msgs []llm.Message) {
	var results []llm.ToolResult
	for i := len(msgs) - 1; i >= 0 && msgs[i].Role == llm.RoleTool; i-- {
		for _, p := range msgs[i].Parts {
			if p.ToolResult != nil {
				results = append(results, *p.ToolResult)
			}
		}
	}
	for i := len(results) - 1; i >= 0; i-- {
		r := results[i]
		if i != len(results)-1 {
			b.WriteString(" ")
		}
		if r.IsError {
			fmt.Fprintf(b, "The %s tool failed: %s", r.Name, clip(r.Content, 2000))
		} else {
			fmt.Fprintf(b, "The %s tool returned: %s", r.Name, clip(r.Content, 2000))
		}
	}
}

func learn(facts map[string]string, text string) {
	for _, m := range factRe.FindAllStringSubmatch(text, -1) {
		facts[normKey(m[1])] = strings.TrimSpace(m[2])
	}
	if m := iAmRe.FindStringSubmatch(text); m != nil {
		facts["name"] = strings.TrimSpace(m[1])
	}
}

func normKey(k string) string {
	k = strings.ToLower(strings.TrimSpace(k))
	return strings.Replace(k, "favourite", "favorite", 1)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
