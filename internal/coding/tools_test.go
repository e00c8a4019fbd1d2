package coding

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestTools(t *testing.T) {
	root := t.TempDir()
	tools, err := Tools(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools {
		spec := tl.Spec()
		names = append(names, spec.Name)
		var schema map[string]any
		if err := json.Unmarshal(spec.Parameters, &schema); err != nil || schema["type"] != "object" {
			t.Errorf("%s: schema %s", spec.Name, spec.Parameters)
		}
		if spec.Description == "" {
			t.Errorf("%s: no description", spec.Name)
		}
		if _, ok := tl.(Requester); !ok {
			t.Errorf("%s is not a Requester", spec.Name)
		}
	}
	if got := strings.Join(names, ","); got != "read,write,edit,list,glob,grep,bash,webfetch,question" {
		t.Errorf("tools = %s", got)
	}
	if _, err := Tools(root+"/missing", Options{}); err == nil {
		t.Error("missing root accepted")
	}
	p := SystemPrompt(root)
	for _, want := range []string{root, "read", "edit", "bash", "question", "approval"} {
		if !strings.Contains(p, want) {
			t.Errorf("system prompt lacks %q", want)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{BashTimeout: 20 * time.Minute, BashMaxTimeout: 0}.withDefaults()
	if o.BashTimeout != o.BashMaxTimeout || o.OutputLimit != 30<<10 || o.FetchLimit != 5<<20 {
		t.Fatalf("defaults %+v", o)
	}
}
