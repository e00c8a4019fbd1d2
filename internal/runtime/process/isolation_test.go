//go:build linux

package process

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/runtime"
)

// probe asks a fake runtime to do something on its own behalf and returns
// the status and body of its answer.
func probe(t *testing.T, h *runtime.Handle, path string, query url.Values) (int, string) {
	t.Helper()
	resp, err := http.Get(h.Endpoint + path + "?" + query.Encode())
	if err != nil {
		t.Fatalf("%s %s: %v", h.ID, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func probeJSON(t *testing.T, h *runtime.Handle, path string, query url.Values, v any) {
	t.Helper()
	code, body := probe(t, h, path, query)
	if code != http.StatusOK {
		t.Fatalf("%s %s: %d %s", h.ID, path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%s %s: %v: %s", h.ID, path, err, body)
	}
}

type who struct{ UID, GID, PID int }

func idOf(t *testing.T, h *runtime.Handle) who {
	t.Helper()
	var id who
	probeJSON(t, h, "/id", nil, &id)
	return id
}

// needRoot skips tests of the uid separation, which only a root platform
// makes; under CI=true, where the tests run as root, it fails instead.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the isolation tests need root (CI runs as root)")
	}
	t.Skip("needs root: runtimes run under their own uids only when the platform runs as root")
}

// platformDir lays out a platform's data directory as the platform does:
// the master key and the database (0600) beside the driver's root.
func platformDir(t *testing.T) (data, root string) {
	t.Helper()
	data = traversableDir(t)
	for name, content := range map[string]string{"master.key": "the-master-key", "platform.db": "every-org-secret"} {
		if err := os.WriteFile(filepath.Join(data, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return data, filepath.Join(data, "runtimes")
}

// traversableDir is a fresh directory that other users may traverse (not
// list), as a platform's data directory is: t.TempDir's own parent is 0700.
func traversableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRuntimesCannotReachEachOtherOrThePlatform plays one organisation's
// runtime attacking another's and the platform's, with the bash of its
// agent as the weapon (here the fake runtime's own requests, which run
// with the runtime's identity: what a tool could do without the tool
// sandbox). Every attempt must fail.
func TestRuntimesCannotReachEachOtherOrThePlatform(t *testing.T) {
	needRoot(t)
	t.Parallel()
	data, root := platformDir(t)
	d := newDriver(t, root)
	a, b := fakeSpec(t, "attacker"), fakeSpec(t, "victim")
	a.Env = map[string]string{"ORG_A_TOKEN": "secret-of-a"}
	b.Env = map[string]string{"ORG_B_TOKEN": "secret-of-b-" + strconv.Itoa(os.Getpid())}
	ha, hb := start(t, d, a), start(t, d, b)
	healthy(t, ha)
	healthy(t, hb)
	ida, idb := idOf(t, ha), idOf(t, hb)
	if ida.UID == 0 || idb.UID == 0 || ida.UID == idb.UID || ida.GID == idb.GID || ida.UID == os.Geteuid() {
		t.Errorf("uids: attacker %+v, victim %+v, platform %d: want two distinct unprivileged uids", ida, idb, os.Geteuid())
	}
	victimWS := filepath.Join(root, "victim", "workspace")
	reads := []string{
		filepath.Join(victimWS, "canary.txt"),
		filepath.Join(victimWS, "starts.txt"),
		filepath.Join(root, "victim", "data"),
		filepath.Join(root, "victim", stateName),
		filepath.Join(root, "victim", logName),
		filepath.Join(data, "master.key"),
		filepath.Join(data, "platform.db"),
		fmt.Sprintf("/proc/%d/environ", idb.PID),
		fmt.Sprintf("/proc/%d/environ", os.Getpid()),
		fmt.Sprintf("/proc/%d/mem", os.Getpid()),
	}
	for _, p := range reads {
		if code, body := probe(t, ha, "/read", url.Values{"path": {p}}); code == http.StatusOK {
			t.Errorf("the attacker read %s: %.80q", p, body)
		}
	}
	for _, p := range []string{root, data, filepath.Join(root, "victim"), victimWS} {
		if code, body := probe(t, ha, "/list", url.Values{"path": {p}}); code == http.StatusOK {
			t.Errorf("the attacker listed %s: %s", p, body)
		}
	}
	for name, pid := range map[string]int{"the platform": os.Getpid(), "the victim": idb.PID} {
		if code, _ := probe(t, ha, "/signal", url.Values{"pid": {strconv.Itoa(pid)}}); code == http.StatusOK {
			t.Errorf("the attacker may signal %s (pid %d)", name, pid)
		}
	}
	// Control: the attacker still reads its own workspace, and the victim
	// is unharmed.
	own := filepath.Join(root, "attacker", "workspace", "canary.txt")
	if code, body := probe(t, ha, "/read", url.Values{"path": {own}}); code != http.StatusOK || body != "attacker" {
		t.Errorf("the attacker cannot read its own workspace: %d %q", code, body)
	}
	healthy(t, hb)
}

// TestMemoryLimitKillsTheRuntime: a runtime that exceeds its memory limit
// is killed and its exit says why; another runtime is unaffected.
func TestMemoryLimitKillsTheRuntime(t *testing.T) {
	t.Parallel()
	root := traversableDir(t)
	d := newDriver(t, root)
	hog, calm := fakeSpec(t, "hog"), fakeSpec(t, "calm")
	hog.Resources.MemoryBytes = 64 << 20
	calm.Resources.MemoryBytes = 512 << 20
	hh, hc := start(t, d, hog), start(t, d, calm)
	healthy(t, hh)
	healthy(t, hc)
	resp, err := http.Get(hh.Endpoint + "/alloc?mb=512")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("alloc answered %s %s", resp.Status, body)
	}
	res, err := d.Wait(ctx(t), hh)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 137 || res.Err == nil || !strings.Contains(res.Err.Error(), "memory limit 64 MiB reached") {
		t.Errorf("Wait = %+v (%v), want 137 and \"killed: memory limit 64 MiB reached\"", res, res.Err)
	}
	healthy(t, hc)
}
