package coding

import (
	"fmt"
	"strings"
)

const (
	diffContext  = 3
	diffMaxBytes = 16 << 10
)

// unifiedDiff returns a one-hunk unified diff from old to new: the common
// leading and trailing lines are trimmed and the middle is shown as removed
// and added. It is not a minimal diff, but it is a correct one and costs
// linear time, which is what a permission preview needs.
func unifiedDiff(name, old, new string) string {
	if old == new {
		return ""
	}
	a, b := splitLines(old), splitLines(new)
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	start := max(pre-diffContext, 0)
	endA := min(len(a)-suf+diffContext, len(a))
	endB := min(len(b)-suf+diffContext, len(b))
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- a/%s\n+++ b/%s\n", name, name)
	fmt.Fprintf(&sb, "@@ -%s +%s @@\n", hunkRange(start, endA-start), hunkRange(start, endB-start))
	for _, l := range a[start:pre] {
		writeDiffLine(&sb, ' ', l)
	}
	for _, l := range a[pre : len(a)-suf] {
		writeDiffLine(&sb, '-', l)
	}
	for _, l := range b[pre : len(b)-suf] {
		writeDiffLine(&sb, '+', l)
	}
	for _, l := range a[len(a)-suf : endA] {
		writeDiffLine(&sb, ' ', l)
	}
	return capText(sb.String(), diffMaxBytes)
}

// hunkRange formats a unified-diff range; lines count from 1, and an empty
// range names the line before it.
func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func writeDiffLine(sb *strings.Builder, mark byte, line string) {
	sb.WriteByte(mark)
	if text, ok := strings.CutSuffix(line, "\n"); ok {
		sb.WriteString(text)
		sb.WriteByte('\n')
		return
	}
	sb.WriteString(line)
	sb.WriteString("\n\\ No newline at end of file\n")
}

// splitLines splits s after each newline, keeping the newlines so that a
// missing final newline shows up as a difference.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}
