package relayserver

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agenthost/agenthost/relay"
)

// registry holds the agents the relay knows, the newest ANNOUNCE timestamp
// accepted per address (the replay guard) and the search index.
//
// Lock order: registry.mu before agentConn.mu.
type registry struct {
	s  *Server
	mu sync.RWMutex
	// agents holds online agents and, for SilenceTimeout after they
	// disconnect, offline ones (so lookups can still offer their direct
	// endpoints).
	agents map[string]*agentRecord
	// latest is the newest accepted ANNOUNCE timestamp per address. It
	// outlives records, for the clock window, so that a captured ANNOUNCE
	// cannot be replayed once its agent has gone.
	latest map[string]int64
	idx    *index
}

type agentRecord struct {
	ann      *relay.Announce
	conn     *agentConn // nil while offline
	lastSeen time.Time  // last announce, or when the connection ended
}

func newRegistry(s *Server) *registry {
	return &registry{s: s, agents: map[string]*agentRecord{}, latest: map[string]int64{}, idx: newIndex()}
}

// accept records ann as announced on ac. An ANNOUNCE on the connection that
// holds the address may repeat the last timestamp (a heartbeat in the same
// second); one on another connection must be strictly newer than anything
// accepted for the address, so a replayed ANNOUNCE never displaces the
// holder. It returns the connection it displaced, if any.
func (r *registry) accept(ac *agentConn, ann *relay.Announce, now time.Time) (displaced *agentConn, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.agents[ann.Address]
	last, seen := r.latest[ann.Address]
	holder := rec != nil && rec.conn == ac
	switch {
	case holder && ann.Timestamp < last:
		return nil, &relay.AnnounceError{Reason: "replayed",
			Msg: "ANNOUNCE is older than the last one accepted on this connection"}
	case !holder && seen && ann.Timestamp <= last:
		return nil, &relay.AnnounceError{Reason: "replayed",
			Msg: "ANNOUNCE is not newer than the last one accepted for this address (replayed?); sign a fresh one"}
	case !seen && time.Unix(ann.Timestamp, 0).Before(r.s.start.Add(-r.s.cfg.RestartSlack)):
		return nil, &relay.AnnounceError{Reason: "replayed",
			Msg: "ANNOUNCE was signed before this relay started; sign a fresh one"}
	case rec == nil && len(r.agents) >= r.s.cfg.MaxAgents:
		return nil, &relay.AnnounceError{Reason: "agent_limit", Msg: "relay is full; try another relay"}
	}
	r.latest[ann.Address] = ann.Timestamp
	if rec == nil {
		rec = &agentRecord{}
		r.agents[ann.Address] = rec
	}
	if rec.ann == nil || rec.ann.Summary != ann.Summary || !bytes.Equal(rec.ann.Profile, ann.Profile) {
		r.idx.put(ann.Address, ann.Summary, ann.Profile)
	}
	rec.ann, rec.lastSeen = ann, now
	if rec.conn != ac {
		displaced, rec.conn = rec.conn, ac
	}
	return displaced, nil
}

// disconnect marks ac's agent offline, if ac still holds it.
func (r *registry) disconnect(ac *agentConn, now time.Time) {
	addr := ac.address()
	if addr == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec := r.agents[addr]; rec != nil && rec.conn == ac {
		rec.conn = nil
		rec.lastSeen = now
	}
}

// connOf returns the live connection of the agent at addr, or nil.
func (r *registry) connOf(addr string) *agentConn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if rec := r.agents[addr]; rec != nil {
		return rec.conn
	}
	return nil
}

func (r *registry) info(addr string, rec *agentRecord) relay.AgentInfo {
	seen := rec.lastSeen
	if rec.conn != nil {
		if t := rec.conn.p.idleSince(); t.After(seen) {
			seen = t
		}
	}
	return relay.AgentInfo{
		Address:   addr,
		Endpoints: rec.ann.Endpoints,
		Relay:     rec.ann.Relay,
		LastSeen:  seen.Unix(),
		Online:    rec.conn != nil,
		Profile:   rec.ann.Profile,
		Summary:   rec.ann.Summary,
	}
}

// lookup returns what the relay knows about addr.
func (r *registry) lookup(addr string) (relay.AgentInfo, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rec := r.agents[addr]
	if rec == nil {
		return relay.AgentInfo{}, false
	}
	return r.info(addr, rec), true
}

// search ranks the online agents matching query and returns one page. An
// empty query lists online agents, most recently seen first.
func (r *registry) search(query string, limit, offset int) relay.SearchResult {
	r.mu.RLock()
	defer r.mu.RUnlock()
	// Rank light records; build the answer only for the page shown.
	type ranked struct {
		addr  string
		rec   *agentRecord
		score float64
		seen  int64
	}
	var hits []ranked
	add := func(addr string, rec *agentRecord, score float64) {
		seen := rec.lastSeen
		if t := rec.conn.p.idleSince(); t.After(seen) {
			seen = t
		}
		hits = append(hits, ranked{addr, rec, score, seen.Unix()})
	}
	if strings.TrimSpace(query) == "" {
		for addr, rec := range r.agents {
			if rec.conn != nil {
				add(addr, rec, 0)
			}
		}
	} else {
		scores := r.idx.score(query)
		hits = make([]ranked, 0, len(scores))
		for _, h := range scores {
			if rec := r.agents[h.addr]; rec != nil && rec.conn != nil && h.score > 0 {
				add(h.addr, rec, h.score)
			}
		}
	}
	slices.SortFunc(hits, func(a, b ranked) int {
		switch {
		case a.score != b.score:
			if a.score > b.score {
				return -1
			}
			return 1
		case a.seen != b.seen:
			if a.seen > b.seen {
				return -1
			}
			return 1
		}
		return strings.Compare(a.addr, b.addr)
	})
	res := relay.SearchResult{Total: len(hits), Agents: []relay.AgentInfo{}}
	if offset < len(hits) {
		end := min(offset+limit, len(hits))
		for _, h := range hits[offset:end] {
			in := r.info(h.addr, h.rec)
			in.Score = h.score
			res.Agents = append(res.Agents, in)
		}
		if end < len(hits) {
			res.NextOffset = &end
		}
	}
	return res
}

func (r *registry) online() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, rec := range r.agents {
		if rec.conn != nil {
			n++
		}
	}
	return n
}

func (r *registry) known() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.agents)
}

// sweep drops agents silent for SilenceTimeout, forgets offline ones after
// it, closes idle client sessions and prunes the replay guard.
func (r *registry) sweep(now time.Time) {
	cfg := &r.s.cfg
	var silent []*agentConn
	var idle []*clientConn
	r.mu.Lock()
	for addr, rec := range r.agents {
		switch {
		case rec.conn == nil:
			if now.Sub(rec.lastSeen) > cfg.SilenceTimeout {
				delete(r.agents, addr)
				r.idx.remove(addr)
			}
		case now.Sub(rec.conn.p.idleSince()) > cfg.SilenceTimeout:
			silent = append(silent, rec.conn)
			delete(r.agents, addr)
			r.idx.remove(addr)
		default:
			idle = rec.conn.idleSessions(now, cfg.IdleTimeout, idle)
		}
	}
	horizon := now.Add(-cfg.ClockSkew - time.Minute).Unix()
	for addr, ts := range r.latest {
		if ts < horizon {
			delete(r.latest, addr)
		}
	}
	r.mu.Unlock()

	for _, ac := range silent {
		r.s.metrics.disconnects.inc("agent_silent")
		r.s.log.Info("relay: agent silent, dropped", "agent", ac.address(), "after", cfg.SilenceTimeout)
		ac.p.fail(relay.ErrorFrame("no ANNOUNCE or frame for "+cfg.SilenceTimeout.String()+"; disconnected"),
			closeSilent, "silent")
	}
	for _, cs := range idle {
		r.s.metrics.disconnects.inc("client_idle")
		cs.agent.endSession(cs, true, "idle")
		cs.p.fail(relay.ErrorFrame("session idle for "+cfg.IdleTimeout.String()+"; closed by the relay"),
			closeIdle, "idle")
	}
}
