package sandbox

import "testing"

func TestSeccompPolicy(t *testing.T) {
	p, err := dockerPolicy()
	if err != nil {
		t.Fatal(err)
	}
	insts, err := p.Assemble()
	if err != nil || len(insts) < 100 {
		t.Fatalf("%d instructions, %v", len(insts), err)
	}
}
