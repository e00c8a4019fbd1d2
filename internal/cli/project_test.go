package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/testutil"
)

// TestFindProject: the nearest .co/ from the working directory up, as git
// finds .git; not past the home directory; not another user's above.
func TestFindProject(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) string {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mk("proj/.co")
	mk("proj/src/pkg")
	mk("proj/inner/.co")
	mk("proj/inner/x")
	mk("home/u/.co")
	mk("home/u/code/app")
	mk("loose/dir")
	for _, tc := range []struct {
		name, dir, home, root string
		found, parent         bool
	}{
		{name: "here", dir: "proj", root: "proj", found: true},
		{name: "two up", dir: "proj/src/pkg", root: "proj", found: true, parent: true},
		{name: "nearest wins", dir: "proj/inner/x", root: "proj/inner", found: true, parent: true},
		{name: "none: the working directory", dir: "loose/dir", root: "loose/dir"},
		{name: "not home's .co from below", dir: "home/u/code/app", home: "home/u", root: "home/u/code/app"},
		{name: "home's own .co in home", dir: "home/u", home: "home/u", root: "home/u", found: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{}
			if tc.home != "" {
				vars["HOME"] = filepath.Join(root, tc.home)
			}
			p, err := findProject(&Env{Dir: filepath.Join(root, tc.dir), Getenv: mapEnv(vars)})
			if err != nil {
				t.Fatal(err)
			}
			if p.Root != filepath.Join(root, tc.root) || p.Found != tc.found || p.Parent != tc.parent {
				t.Errorf("got %+v, want root %s found %v parent %v", p, tc.root, tc.found, tc.parent)
			}
		})
	}

	t.Run("another user's .co above", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a directory to another user")
		}
		foreign := mk("shared/.co")
		mk("shared/mine")
		if err := os.Chown(foreign, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		_, err := findProject(&Env{Dir: filepath.Join(root, "shared/mine"), Getenv: mapEnv(nil)})
		if !errors.Is(err, ErrForeignProject) || !strings.Contains(err.Error(), "uid 4242") || !strings.Contains(err.Error(), "--co-dir") {
			t.Fatalf("err = %v", err)
		}
		// serve says so and does not start; --co-dir is the way out.
		var out, errb testutil.Buffer
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: mapEnv(nil), Dir: filepath.Join(root, "shared/mine")}
		if code := Run(context.Background(), env, []string{"serve", "--port", "0"}); code != 1 || !strings.Contains(errb.String(), "belongs to another user") {
			t.Fatalf("serve under another user's .co: exit %d %s", code, &errb)
		}
		// The working directory's own .co is the user's choice.
		p, err := findProject(&Env{Dir: filepath.Join(root, "shared"), Getenv: mapEnv(nil)})
		if err != nil || !p.Found {
			t.Fatalf("own directory's .co: %+v %v", p, err)
		}
	})
}

// TestServeInSubdirectory: serve run below a project uses the project's
// config and identity, says so, and tells at Ctrl-C what it waits for.
func TestServeInSubdirectory(t *testing.T) {
	root := t.TempDir()
	code, out, errb := hostCmd(context.Background(), root, "", "init")
	addr := regexp.MustCompile(`identity (0x[0-9a-f]+)`).FindStringSubmatch(out.String())
	if code != 0 || addr == nil {
		t.Fatalf("init: %d %s %s", code, out, errb)
	}
	sub := filepath.Join(root, "src", "deep")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sout, serr testutil.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &sout, Stderr: &serr, Getenv: mapEnv(nil), Dir: sub}
	done := make(chan int, 1)
	go func() { done <- Run(ctx, env, []string{"serve", "--port", "0", "--shutdown-grace", "3s"}) }()
	waitOutput(t, &sout, "Waiting for tasks", &sout, &serr)
	for _, want := range []string{
		"project:  " + root + " (the nearest .co/ above " + sub + ")",
		"config:   " + filepath.Join(root, ".co", "host.yaml"),
		"identity: " + filepath.Join(root, ".co", "keys", "agent.key") + "\n",
		"Address: " + addr[1],
	} {
		if !strings.Contains(sout.String(), want) {
			t.Errorf("serve output lacks %q:\n%s", want, &sout)
		}
	}
	if _, err := os.Stat(filepath.Join(sub, ".co")); err == nil {
		t.Error("serve made a .co in the subdirectory")
	}
	cancel()
	if c := <-done; c != 0 && c != 130 {
		t.Fatalf("serve exit %d: %s", c, &serr)
	}
	if !strings.Contains(serr.String(), "shutting down, waiting up to 3s for 0 runs…") {
		t.Errorf("no shutdown notice: %s", &serr)
	}

	// Nothing anywhere: serve makes .co in the working directory and says so.
	lone := t.TempDir()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	var lout, lerr testutil.Buffer
	env = &Env{Stdin: strings.NewReader(""), Stdout: &lout, Stderr: &lerr, Getenv: mapEnv(nil), Dir: lone}
	go func() { done <- Run(ctx, env, []string{"serve", "--port", "0"}) }()
	waitOutput(t, &lout, "Waiting for tasks", &lout, &lerr)
	cancel()
	<-done
	for _, want := range []string{"no .co/ here or above: making one here", "config:   none", filepath.Join(lone, ".co", "keys", "agent.key") + " (new)"} {
		if !strings.Contains(lout.String(), want) {
			t.Errorf("serve output lacks %q:\n%s", want, &lout)
		}
	}
}
