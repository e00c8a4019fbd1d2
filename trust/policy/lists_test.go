package policy

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	addrA = "0x" + strings.Repeat("ab", 32)
	addrB = "0x" + strings.Repeat("cd", 32)
	addrC = "0xabc1" + strings.Repeat("0", 60)
)

func TestParseList(t *testing.T) {
	text := "# .co/whitelist.txt - one address per line\n" +
		"# Trusted partners\n" +
		"\n" +
		"  " + strings.ToUpper(addrA[2:4]) + addrA[4:] + "   # wait, no 0x: invalid\n"
	if _, err := ParseList("whitelist.txt", strings.NewReader(text)); !errors.Is(err, ErrBadListEntry) || !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("want a line-4 error, got %v", err)
	}
	if err := func() error { _, err := ParseList("x", strings.NewReader("0xSECRETNAME\n")); return err }(); err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error %v should not quote the entry", err)
	}

	text = "# partners\n\n" +
		"0x" + strings.ToUpper(addrA[2:]) + "   # Partner company\n" +
		"\t" + addrB + "\r\n" +
		"0xabc1*  # everyone starting with abc1\n" +
		"*ffff\n"
	l, err := ParseList("whitelist.txt", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 4 || l.Name() != "whitelist.txt" || !strings.Contains(l.String(), "4 entries") {
		t.Errorf("Len %d, String %s", l.Len(), l)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{addrA, true},
		{strings.ToUpper(addrA), true},
		{addrB, true},
		{addrC, true},
		{"0xABC1" + strings.Repeat("9", 60), true},
		{"0x" + strings.Repeat("1", 60) + "ffff", true},
		{"0x" + strings.Repeat("1", 64), false},
		{"", false},
		{"0xabc", false},
	} {
		if got := l.Match(tc.addr); got != tc.want {
			t.Errorf("Match(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestNewList(t *testing.T) {
	l, err := NewList("whitelist", []string{addrA, " ", "0xCD*"})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Match(addrA) || !l.Match(addrB) || l.Match(addrC) {
		t.Error("wrong matches")
	}
	if _, err := NewList("blacklist", []string{"0xbad..."}); !errors.Is(err, ErrBadListEntry) || !strings.Contains(err.Error(), "blacklist entry 1") {
		t.Errorf("placeholder entry: %v", err)
	}
	var nilList *List
	if nilList.Match(addrA) || nilList.Len() != 0 {
		t.Error("nil list matched")
	}
	all, _ := NewList("all", []string{"*"})
	if !all.Match(addrA) {
		t.Error("* should match everything")
	}
}

func TestLoadListFailsClosed(t *testing.T) {
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)

	dir := t.TempDir()
	good := filepath.Join(dir, "whitelist.txt")
	if err := os.WriteFile(good, []byte(addrA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := LoadList(good); err != nil || !l.Match(addrA) {
		t.Fatalf("LoadList: %v", err)
	}
	if _, err := LoadList(filepath.Join(dir, "missing.txt")); err == nil {
		t.Error("missing file: no error")
	}
	bad := filepath.Join(dir, "blacklist.txt")
	if err := os.WriteFile(bad, []byte(addrB+"\nnot-an-address-"+addrC+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadList(bad); err == nil {
		t.Error("malformed file: no error")
	}
	out := logs.String()
	if !strings.Contains(out, "missing.txt") || !strings.Contains(out, "blacklist.txt") || !strings.Contains(out, "denying") {
		t.Errorf("log lines missing: %s", out)
	}
	if strings.Contains(out, addrB) || strings.Contains(out, addrC) {
		t.Errorf("log leaks list contents: %s", out)
	}
}

func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*", "abc", true}, {"*c", "abc", true}, {"a*c", "abc", true}, {"a*c", "ab", false},
		{"a**c", "ac", true}, {"*b*", "abc", true}, {"abc", "abc", true}, {"abc", "abcd", false}, {"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false}, {"", "", true}, {"", "a", false},
	} {
		if got := matchGlob(tc.p, tc.s); got != tc.want {
			t.Errorf("matchGlob(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}
