package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/internal/testutil"
)

// mapEnv is a Getenv over a map.
func mapEnv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// runEnv runs a command in-process with the given environment.
func runEnv(ctx context.Context, t *testing.T, vars map[string]string, args ...string) (int, *testutil.Buffer, *testutil.Buffer) {
	t.Helper()
	var out, errb testutil.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: mapEnv(vars), Dir: t.TempDir()}
	return Run(ctx, env, args), &out, &errb
}

// TestFlagEnvironment: the command line wins over the environment, which
// wins over the default; a command may name other variables for a flag
// (PORT after AGENTHOST_PORT); an empty variable is unset; a value the flag
// refuses names the variable.
func TestFlagEnvironment(t *testing.T) {
	c := &Command{Name: "x", Env: map[string][]string{"port": {"AGENTHOST_PORT", "PORT"}}}
	for _, tc := range []struct {
		name    string
		args    []string
		vars    map[string]string
		want    string // port name on grace, as printed
		wantErr string
	}{
		{name: "defaults", want: "8000 n false 10s"},
		{name: "env", vars: map[string]string{"AGENTHOST_NAME": "e", "AGENTHOST_ON": "true", "AGENTHOST_SHUTDOWN_GRACE": "1m"}, want: "8000 e true 1m0s"},
		{name: "flag beats env", args: []string{"--name", "f", "--on=false"}, vars: map[string]string{"AGENTHOST_NAME": "e", "AGENTHOST_ON": "1"}, want: "8000 f false 10s"},
		{name: "PORT", vars: map[string]string{"PORT": "9"}, want: "9 n false 10s"},
		{name: "AGENTHOST_PORT beats PORT", vars: map[string]string{"PORT": "9", "AGENTHOST_PORT": "7"}, want: "7 n false 10s"},
		{name: "--port beats both", args: []string{"--port", "5"}, vars: map[string]string{"PORT": "9", "AGENTHOST_PORT": "7"}, want: "5 n false 10s"},
		{name: "empty is unset", vars: map[string]string{"AGENTHOST_NAME": "", "AGENTHOST_PORT": ""}, want: "8000 n false 10s"},
		{name: "AGENTHOST_PORT is not read for the usual name", vars: map[string]string{"AGENTHOST_X_PORT": "1"}, want: "8000 n false 10s"},
		{name: "bad value", vars: map[string]string{"AGENTHOST_SHUTDOWN_GRACE": "soon"}, wantErr: `AGENTHOST_SHUTDOWN_GRACE="soon" (for --shutdown-grace)`},
		{name: "bad PORT", vars: map[string]string{"PORT": "http"}, wantErr: `PORT="http" (for --port)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			port := fs.Int("port", 8000, "")
			name := fs.String("name", "n", "")
			on := fs.Bool("on", false, "")
			grace := fs.Duration("shutdown-grace", 10*time.Second, "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			env := &Env{Getenv: mapEnv(tc.vars)}
			err := applyEnv(fs, c, env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%d %s %v %s", *port, *name, *on, *grace); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			for _, a := range tc.args {
				if n := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-"); strings.HasPrefix(a, "-") && !env.Given(n) {
					t.Errorf("--%s given on the command line, Given says no", n)
				}
			}
		})
	}
}

// TestEveryFlagHasAnEnvironmentVariable sets each flag of each command
// (and the global ones) through its variable alone, and finds the
// variable in the command's help.
func TestEveryFlagHasAnEnvironmentVariable(t *testing.T) {
	for name, c := range commands {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		if c.Flags != nil {
			c.Flags(fs)
		}
		new(logFlags).declare(fs)
		code, help, _ := runEnv(context.Background(), t, nil, "help", name)
		if code != 0 {
			t.Fatalf("help %s: exit %d", name, code)
		}
		fs.VisitAll(func(f *flag.Flag) {
			value := "7"
			switch f.Value.(type) {
			case interface{ IsBoolFlag() bool }:
				value = "true"
				if f.DefValue == "true" {
					value = "false"
				}
			}
			if _, err := time.ParseDuration(f.DefValue); err == nil && strings.ContainsAny(f.DefValue, "smh") {
				value = "7s"
			}
			vars := envVars(c, f.Name)
			if vars[0] != envVar(f.Name) && !strings.HasPrefix(vars[0], EnvPrefix) {
				t.Errorf("%s --%s: first variable %s lacks the %s prefix", name, f.Name, vars[0], EnvPrefix)
			}
			set := flag.NewFlagSet(name, flag.ContinueOnError)
			set.SetOutput(new(strings.Builder))
			if c.Flags != nil {
				c.Flags(set)
			}
			new(logFlags).declare(set)
			env := &Env{Getenv: mapEnv(map[string]string{vars[0]: value})}
			if err := applyEnv(set, c, env); err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			got := set.Lookup(f.Name).Value.String()
			if want, _ := time.ParseDuration(value); got != value && got != want.String() {
				t.Errorf("%s: %s=%s set --%s to %q", name, vars[0], value, f.Name, got)
			}
			if !strings.Contains(help.String(), "--"+f.Name) || !strings.Contains(help.String(), "[env "+strings.Join(vars, ", ")+"]") {
				t.Errorf("help %s does not show --%s with [env %s]", name, f.Name, strings.Join(vars, ", "))
			}
		})
	}
	// Commands must have been reset to their defaults by the above.
	code, _, _ := runEnv(context.Background(), t, nil, "help", "serve")
	if code != 0 {
		t.Fatal("help serve")
	}
}

// TestLogFlags: --log-format and --log-level (and their variables) shape
// every command's logs; bad values are usage errors; the relay's --debug is
// --log-level debug.
func TestLogFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		code int
	}{
		{name: "bad format", args: []string{"relay", "--log-format", "xml"}, code: 2},
		{name: "bad level", args: []string{"relay", "--log-level", "loud"}, code: 2},
		{name: "bad format from env", args: []string{"version"}, vars: map[string]string{"AGENTHOST_LOG_FORMAT": "xml"}, code: 2},
	} {
		code, _, errb := runEnv(context.Background(), t, tc.vars, tc.args...)
		if code != tc.code || !strings.Contains(errb.String(), "want") {
			t.Errorf("%s: exit %d, want %d: %s", tc.name, code, tc.code, errb)
		}
	}

	// JSON: every line an object; the relay's start is logged at info.
	errb, stop := startRelay(t, map[string]string{"AGENTHOST_LOG_FORMAT": "json"})
	stop()
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	sawListening := false
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		sawListening = sawListening || m["msg"] == "relay listening" && m["level"] == "INFO"
	}
	if !sawListening {
		t.Errorf("no relay listening line: %s", errb)
	}

	// warn: no info lines.
	errb, stop = startRelay(t, nil, "--log-level", "warn")
	stop()
	if strings.Contains(errb.String(), "relay listening") {
		t.Errorf("info logged at --log-level warn: %s", errb)
	}

	// --debug: a refused ANNOUNCE is logged (at debug).
	for _, args := range [][]string{{"--debug"}, {"--log-level", "debug"}, nil} {
		errb, stop = startRelay(t, nil, args...)
		port := relayPort(t, errb)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ws, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+port+"/ws/announce", nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ANNOUNCE"}`))
		ws.Read(ctx) // the refusal
		ws.CloseNow()
		cancel()
		stop()
		if got := strings.Contains(errb.String(), "ANNOUNCE refused"); got != (args != nil) {
			t.Errorf("relay %v: debug line logged: %v\n%s", args, got, errb)
		}
	}
}

// startRelay runs `agenthost relay --port 0` in-process until stop.
func startRelay(t *testing.T, vars map[string]string, args ...string) (*testutil.Buffer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb testutil.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: mapEnv(vars), Dir: t.TempDir()}
	done := make(chan int, 1)
	if vars == nil || vars["PORT"] == "" {
		args = append([]string{"--port", "0"}, args...)
	}
	go func() { done <- Run(ctx, env, append([]string{"relay"}, args...)) }()
	waitOutput(t, &out, "agenthost relay on", &out, &errb)
	return &errb, func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("relay exit %d: %s", code, errb.String())
		}
	}
}

// relayPort reads the relay's port from its log.
func relayPort(t *testing.T, errb *testutil.Buffer) string {
	t.Helper()
	for _, f := range strings.Fields(errb.String()) {
		if a, ok := strings.CutPrefix(f, "addr="); ok {
			_, port, err := net.SplitHostPort(strings.Trim(a, `"`))
			if err == nil {
				return port
			}
		}
	}
	t.Fatalf("no addr= in %s", errb)
	return ""
}

// waitOutput waits up to 30 s for b to hold s, the output of a command the
// test runs; a failure shows every output given.
func waitOutput(t *testing.T, b *testutil.Buffer, s string, outs ...fmt.Stringer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitFor(ctx, s); err != nil {
		t.Fatalf("%v: %v", err, outs)
	}
}

// TestPortFromEnvironment: the relay listens on $PORT, and health probes
// $PORT without a URL; /ready is next to /health.
func TestPortFromEnvironment(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	vars := map[string]string{"PORT": port}
	_, stop := startRelay(t, vars)
	defer stop()
	code, out, errb := runEnv(context.Background(), t, vars, "health")
	if code != 0 || !strings.Contains(out.String(), "http://127.0.0.1:"+port+"/health: 200 OK") {
		t.Fatalf("health: %d %s %s", code, out, errb)
	}
	code, out, errb = runEnv(context.Background(), t, nil, "health", "127.0.0.1:"+port+"/ready")
	if code != 0 || !strings.Contains(out.String(), "/ready: 200 OK") {
		t.Fatalf("health /ready: %d %s %s", code, out, errb)
	}
}

// TestHealth: 2xx is 0; anything else is 1 with what came back; bad
// arguments are 2.
func TestHealth(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			w.Write([]byte(`{"status":"healthy"}`))
		case "/sick/health":
			http.Error(w, `{"status":"unhealthy","database":"unreachable"}`, http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		name, out string
		args      []string
		vars      map[string]string
		code      int
	}{
		{name: "healthy", args: []string{srv.URL}, code: 0, out: srv.URL + "/health: 200 OK"},
		{name: "no scheme", args: []string{strings.TrimPrefix(srv.URL, "http://")}, code: 0, out: "200 OK"},
		{name: "unhealthy", args: []string{srv.URL + "/sick/health"}, code: 1, out: `503 Service Unavailable: {"status":"unhealthy","database":"unreachable"}`},
		{name: "not found", args: []string{srv.URL + "/nope"}, code: 1, out: "404 Not Found"},
		{name: "no answer", args: []string{dead}, code: 1, out: "no answer"},
		{name: "no URL, no PORT", code: 2, out: "set PORT"},
		{name: "two URLs", args: []string{srv.URL, srv.URL}, code: 2, out: "at most one URL"},
		{name: "not http", args: []string{"ftp://x/health"}, code: 2, out: "not an http"},
		{name: "bad timeout", args: []string{"--timeout", "0s", srv.URL}, code: 2, out: "--timeout"},
	} {
		code, out, errb := runEnv(context.Background(), t, tc.vars, append([]string{"health"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.out) {
			t.Errorf("%s: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q", tc.name, code, tc.code, out, errb, tc.out)
		}
	}
}
