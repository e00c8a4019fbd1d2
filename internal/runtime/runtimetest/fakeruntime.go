package runtimetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"testing"
)

// FakeRuntimeSource is the directory of the fake runtime's main package,
// for drivers that need to build it their own way (a static binary for a
// container image).
func FakeRuntimeSource() string {
	_, file, _, ok := goruntime.Caller(0)
	if !ok {
		panic("runtimetest: cannot locate the package source")
	}
	return filepath.Join(filepath.Dir(file), "testdata", "fakeruntime")
}

var fake struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// FakeRuntime returns the path of the fake runtime built for this host,
// building it on first use, once per test binary. Call Main from TestMain
// so the binary is removed afterwards.
func FakeRuntime(t testing.TB) string {
	t.Helper()
	fake.once.Do(func() {
		fake.dir, fake.err = os.MkdirTemp("", "fakeruntime-")
		if fake.err != nil {
			return
		}
		fake.path = filepath.Join(fake.dir, "fakeruntime")
		cmd := exec.Command("go", "build", "-o", fake.path, ".")
		cmd.Dir = FakeRuntimeSource()
		if out, err := cmd.CombinedOutput(); err != nil {
			fake.err = fmt.Errorf("go build fakeruntime: %w\n%s", err, out)
		}
	})
	if fake.err != nil {
		t.Fatal(fake.err)
	}
	return fake.path
}

// Main runs the tests and removes the fake runtime built for them:
//
//	func TestMain(m *testing.M) { os.Exit(runtimetest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if fake.dir != "" {
		os.RemoveAll(fake.dir)
	}
	return code
}
