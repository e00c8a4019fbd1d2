package relayserver

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// counterVec is a Prometheus counter with at most one label. Label values
// listed up front are exported from the start at 0, so dashboards and
// alerts see every series before its first event.
type counterVec struct {
	name, help, label string
	mu                sync.Mutex
	vals              map[string]*atomic.Int64
}

func newCounterVec(name, help, label string, preset ...string) *counterVec {
	c := &counterVec{name: name, help: help, label: label, vals: map[string]*atomic.Int64{}}
	for _, v := range preset {
		c.vals[v] = new(atomic.Int64)
	}
	if label == "" {
		c.vals[""] = new(atomic.Int64)
	}
	return c
}

func (c *counterVec) add(value string, n int64) {
	c.mu.Lock()
	v := c.vals[value]
	if v == nil {
		v = new(atomic.Int64)
		c.vals[value] = v
	}
	c.mu.Unlock()
	v.Add(n)
}

func (c *counterVec) inc(value string) { c.add(value, 1) }

func (c *counterVec) get(value string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.vals[value]; v != nil {
		return v.Load()
	}
	return 0
}

func (c *counterVec) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
	c.mu.Lock()
	keys := make([]string, 0, len(c.vals))
	for k := range c.vals {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	slices.Sort(keys)
	for _, k := range keys {
		n := c.get(k)
		if c.label == "" {
			fmt.Fprintf(w, "%s %d\n", c.name, n)
		} else {
			fmt.Fprintf(w, "%s{%s=%s} %d\n", c.name, c.label, strconv.Quote(k), n)
		}
	}
}

// gaugeFunc is a gauge read at scrape time.
type gaugeFunc struct {
	name, help string
	f          func() float64
}

// metrics holds everything /metrics exports. Label values are fixed words
// chosen by the relay, never anything a peer sent.
type metrics struct {
	connections      *counterVec
	rejected         *counterVec
	forwarded        *counterVec
	forwardedBytes   *counterVec
	dropped          *counterVec
	slowConsumers    *counterVec
	rateLimited      *counterVec
	announces        *counterVec
	announceFailures *counterVec
	disconnects      *counterVec
	tooLarge         *counterVec
	lookups          *counterVec
	searches         *counterVec
	gauges           []gaugeFunc
}

func newMetrics() *metrics {
	return &metrics{
		connections: newCounterVec("relay_connections_total",
			"WebSocket connections accepted, by kind.", "kind", "agent", "client"),
		rejected: newCounterVec("relay_connections_rejected_total",
			"Connections refused before or at upgrade, by reason.", "reason",
			"ip_limit", "rate_limited", "shutting_down", "session_limit", "agent_offline", "bad_first_frame", "session_conflict", "agent_limit"),
		forwarded: newCounterVec("relay_frames_forwarded_total",
			"Frames forwarded between clients and agents, by direction.", "direction", "to_agent", "to_client"),
		forwardedBytes: newCounterVec("relay_bytes_forwarded_total",
			"Bytes of frames forwarded, by direction.", "direction", "to_agent", "to_client"),
		dropped: newCounterVec("relay_frames_dropped_total",
			"Frames not forwarded, by reason.", "reason",
			"agent_queue_full", "unknown_session", "no_session_id", "malformed", "binary", "rate_limited"),
		slowConsumers: newCounterVec("relay_slow_consumer_disconnects_total",
			"Peers disconnected because they did not read their frames fast enough, by kind.", "kind", "agent", "client"),
		rateLimited: newCounterVec("relay_rate_limited_total",
			"Events refused by a rate limit, by kind.", "kind",
			"connection", "client_frame", "agent_frame", "announce", "session_open"),
		announces: newCounterVec("relay_announces_total",
			"ANNOUNCE messages accepted.", ""),
		announceFailures: newCounterVec("relay_announce_failures_total",
			"ANNOUNCE messages refused, by reason.", "reason",
			"malformed", "bad_address", "bad_signature", "stale_timestamp", "replayed", "summary_too_long",
			"invalid_field", "too_large", "address_changed", "timeout", "rate_limited", "agent_limit"),
		disconnects: newCounterVec("relay_disconnects_total",
			"Connections ended by the relay, by reason.", "reason",
			"agent_silent", "client_idle", "replaced", "agent_gone", "too_large", "shutdown"),
		tooLarge: newCounterVec("relay_frames_too_large_total",
			"Frames over the size limit (the sender is disconnected), by kind.", "kind", "agent", "client"),
		lookups: newCounterVec("relay_lookups_total",
			"Agent lookups, by result.", "result", "found", "not_found"),
		searches: newCounterVec("relay_searches_total",
			"Discovery searches served.", ""),
	}
}

func (m *metrics) write(w io.Writer) {
	for _, c := range []*counterVec{m.connections, m.rejected, m.forwarded, m.forwardedBytes, m.dropped,
		m.slowConsumers, m.rateLimited, m.announces, m.announceFailures, m.disconnects, m.tooLarge,
		m.lookups, m.searches} {
		c.write(w)
	}
	for _, g := range m.gauges {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", g.name, g.help, g.name, g.name,
			strconv.FormatFloat(g.f(), 'g', -1, 64))
	}
}
