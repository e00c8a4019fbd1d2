package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/store"
)

// Replicas sharing a store each run their own agents' runtimes, on their
// own loopback. A request for an agent whose runtime another node runs is
// reverse-proxied, as it came (Authorization or session capability
// included), to that node's advertised URL (store.NodeURL). The owner
// authenticates it again; ForwardedHeader, an HMAC under a key derived
// from the master key, tells it that the request was already forwarded
// once, so it never forwards it again.

// ForwardedHeader marks a request one platform node forwarded to another:
// "{node}:{unix seconds}:{hex HMAC-SHA256}".
const ForwardedHeader = "X-Agenthost-Forwarded"

// forwardSkew bounds how old (or early) a forwarding mark may be.
const forwardSkew = 5 * time.Minute

// ForwardKey derives the key that signs forwarded requests from the
// master key: every replica of an installation shares it.
func ForwardKey(masterKey []byte) []byte {
	m := hmac.New(sha256.New, masterKey)
	m.Write([]byte("agenthost platform: node-to-node forwarding v1"))
	return m.Sum(nil)
}

func (s *Server) forwardMAC(from string, at int64, method, path string) string {
	m := hmac.New(sha256.New, s.cfg.ForwardKey)
	fmt.Fprintf(m, "%s\n%d\n%s\n%s", from, at, method, path)
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Server) forwardMark(from, method, path string) string {
	at := s.cfg.Now().Unix()
	return from + ":" + strconv.FormatInt(at, 10) + ":" + s.forwardMAC(from, at, method, path)
}

// forwarded reports whether r carries a valid forwarding mark: another
// node already forwarded it here.
func (s *Server) forwarded(r *http.Request) bool {
	v := r.Header.Get(ForwardedHeader)
	if v == "" || len(s.cfg.ForwardKey) == 0 {
		return false
	}
	i, j := strings.Index(v, ":"), strings.LastIndex(v, ":")
	if i < 0 || j <= i {
		return false
	}
	at, err := strconv.ParseInt(v[i+1:j], 10, 64)
	if err != nil {
		return false
	}
	if d := s.cfg.Now().Sub(time.Unix(at, 0)); d > forwardSkew || d < -forwardSkew {
		return false
	}
	return hmac.Equal([]byte(v[j+1:]), []byte(s.forwardMAC(v[:i], at, r.Method, r.URL.Path)))
}

// elsewhere reports whether a's runtime is another node's.
func (s *Server) elsewhere(a store.Agent) bool {
	return a.Node != "" && a.Node != s.cfg.Agents.Node() && len(a.Handle) > 0
}

// forward serves r by proxying it to the node that runs a's runtime, when
// that is another node; it reports whether it did (the response is then
// written). A request already forwarded once is never forwarded again.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, a store.Agent) (bool, error) {
	return s.forwardOr(w, r, a, false)
}

// forwardOr is forward; with local, a request that cannot be forwarded
// (already forwarded, or the node's URL unknown) is left to this node.
func (s *Server) forwardOr(w http.ResponseWriter, r *http.Request, a store.Agent, local bool) (bool, error) {
	if !s.elsewhere(a) {
		return false, nil
	}
	other := fmt.Errorf("%w (%q; this is %q)", agents.ErrOtherNode, a.Node, s.cfg.Agents.Node())
	if s.forwarded(r) || len(s.cfg.ForwardKey) == 0 {
		return !local, other
	}
	raw, err := s.cfg.Store.NodeURL(r.Context(), a.Node)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			if local {
				return false, nil
			}
			return true, fmt.Errorf("%w, whose URL is unknown (it has not recorded its --advertise-url)", other)
		}
		return true, err
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return true, fmt.Errorf("%w, whose recorded URL %q is invalid", other, raw)
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	mark := s.forwardMark(s.cfg.Agents.Node(), r.Method, r.URL.Path)
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Set(ForwardedHeader, mark)
		},
		Transport:     s.forwardHTTP,
		FlushInterval: -1, // event streams go through as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if ctx.Err() != nil {
				return // the client went away, or the platform is shutting down
			}
			s.log.Warn("forwarding to the agent's node failed", "agent", a.ID, "node", a.Node, "url", raw, "err", err)
			httpjson.WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s, which did not answer at %s", other.Error(), raw))
		},
	}
	p.ServeHTTP(w, r.WithContext(ctx))
	return true, nil
}

// forwardingTransport is the default transport to other nodes.
func forwardingTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.Proxy = nil // nodes reach each other directly
	return t
}
