package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/agenthost/agenthost/trust"
)

// AgentInfo is the relay's answer about one agent, as served by
// GET {relay}/api/relay/agents/{address} (alias /api/agents/{address}) and
// in search results.
type AgentInfo struct {
	Address   string   `json:"address"`
	Endpoints []string `json:"endpoints"`
	// Relay is the relay URL the agent announced (empty when it named
	// none).
	Relay string `json:"relay"`
	// LastSeen is when the relay last heard from the agent, Unix seconds.
	LastSeen int64 `json:"last_seen"`
	// Online reports a live announce connection: the relay can forward to
	// the agent now.
	Online bool `json:"online"`
	// Profile is the agent's announced profile object, or null.
	Profile json.RawMessage `json:"profile"`
	Summary string          `json:"summary"`
	// Score is the search relevance (search results only).
	Score float64 `json:"score,omitempty"`
}

// SearchResult is a page of GET {relay}/api/agents?q=…&limit=…&offset=….
type SearchResult struct {
	Agents []AgentInfo `json:"agents"`
	// Total counts every match, across pages.
	Total int `json:"total"`
	// NextOffset is the offset of the next page, or null on the last.
	NextOffset *int `json:"next_offset"`
}

// AnnounceOKFrame returns the relay's answer to an accepted ANNOUNCE.
func AnnounceOKFrame(address string, timestamp int64) []byte {
	b, _ := json.Marshal(struct {
		Type      string `json:"type"`
		Address   string `json:"address"`
		Timestamp int64  `json:"timestamp"`
	}{TypeAnnounceOK, address, timestamp})
	return b
}

// ErrAgentNotFound is returned by LookupAgent when the relay does not know
// the address.
var ErrAgentNotFound = errors.New("relay: agent not found")

// LookupAgent asks the relay at relayURL (any form NormalizeRelayURL
// accepts) about address.
func LookupAgent(ctx context.Context, hc *http.Client, relayURL, address string) (*AgentInfo, error) {
	addr, err := trust.NormalizeAddress(address)
	if err != nil {
		return nil, err
	}
	base, err := NormalizeRelayURL(relayURL)
	if err != nil {
		return nil, err
	}
	var info AgentInfo
	if err := getJSON(ctx, hc, HTTPBase(base)+"/api/relay/agents/"+addr, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// SearchAgents asks the relay at relayURL for agents matching query. limit
// 0 means the relay's default.
func SearchAgents(ctx context.Context, hc *http.Client, relayURL, query string, limit, offset int) (*SearchResult, error) {
	base, err := NormalizeRelayURL(relayURL)
	if err != nil {
		return nil, err
	}
	v := url.Values{"q": {query}}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if offset > 0 {
		v.Set("offset", strconv.Itoa(offset))
	}
	var res SearchResult
	if err := getJSON(ctx, hc, HTTPBase(base)+"/api/agents?"+v.Encode(), &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func getJSON(ctx context.Context, hc *http.Client, u string, dst any) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("relay: reading %s: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return ErrAgentNotFound
	case resp.StatusCode != http.StatusOK:
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return fmt.Errorf("relay: %s: %s: %s", u, resp.Status, clip(e.Error, 200))
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("relay: decoding %s: %w", u, err)
	}
	return nil
}
