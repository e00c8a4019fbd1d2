package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// errUnhealthy is returned when the probed server answers but not with a
// 2xx status.
var errUnhealthy = errors.New("unhealthy")

func init() {
	var timeout time.Duration
	register(&Command{
		Name:  "health",
		Usage: "[--timeout D] [URL]",
		Short: "probe a server's health endpoint (the image's HEALTHCHECK)",
		Long: `Sends GET URL and exits 0 when the answer is 2xx; otherwise it prints why
(the status and the start of the body, or the connection error) and exits 1.
A URL without a path gets /health; without URL, it probes
http://127.0.0.1:$PORT/health, the server of the same container (serve,
platform and relay all listen on $PORT when it is set).

The agenthost image has no curl: its HEALTHCHECK is "agenthost health".`,
		Flags: func(fs *flag.FlagSet) {
			fs.DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 1 {
				return Usagef("want at most one URL, got %d arguments", len(args))
			}
			raw := ""
			if len(args) == 1 {
				raw = args[0]
			} else if p := env.Getenv("PORT"); p != "" {
				raw = "http://127.0.0.1:" + p
			} else {
				return Usagef("give the URL to probe, or set PORT")
			}
			target, err := healthURL(raw)
			if err != nil {
				return Usagef("%v", err)
			}
			if timeout <= 0 {
				return Usagef("--timeout must be positive")
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			status, err := probe(ctx, target)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "%s: %s\n", target, status)
			return nil
		},
	})
}

// healthURL completes what the user gave: a scheme (http) and, without a
// path, /health.
func healthURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http:// or https:// URL", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/health"
	}
	return u.String(), nil
}

// probe GETs target and returns its status when 2xx; otherwise an error
// that says what came back.
func probe(ctx context.Context, target string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", "agenthost-health")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: no answer: %w", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := strings.TrimSpace(string(body))
		if msg != "" {
			msg = ": " + msg
		}
		return "", fmt.Errorf("%s: %w: %s%s", target, errUnhealthy, resp.Status, msg)
	}
	return resp.Status, nil
}
