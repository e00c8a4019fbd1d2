package relayserver

import (
	"encoding/json"
	"math"
	"strings"
	"unicode"
)

// index is an inverted index over what agents announce: summary, profile
// examples, tool names, alias and skills. It ranks with BM25 and lifts
// agents whose tool names a query names exactly. It is guarded by the
// registry's lock.
type index struct {
	ids      map[string]int32 // address → doc id
	docs     []*doc           // by id; nil for a free id
	free     []int32
	postings map[string]map[int32]float64 // term → doc id → weighted frequency
	tools    map[string]map[int32]bool    // tool name (lower case, and squashed) → doc ids
	totalLen float64
	n        int // docs indexed
}

type doc struct {
	addr   string
	length float64
	terms  map[string]float64
	// tools holds the agent's tool names, lower case, and squashed
	// (separators removed) so "detect language" finds detect_language.
	tools map[string]bool
}

// hit is an agent's relevance to a query.
type hit struct {
	addr  string
	score float64
}

// Field weights: words in names (tools, alias, skills) say more about an
// agent than words in its prose.
const (
	weightProse = 1.0
	weightName  = 2.0
	bm25K1      = 1.2
	bm25B       = 0.75
	// toolHit is added per query word that is a whole tool name, and
	// toolQueryHit when the whole query is one.
	toolHit      = 3.0
	toolQueryHit = 8.0
)

func newIndex() *index {
	return &index{ids: map[string]int32{}, postings: map[string]map[int32]float64{}, tools: map[string]map[int32]bool{}}
}

// indexedProfile is the part of a profile the index reads. Tools may be
// names or objects with a name.
type indexedProfile struct {
	Alias    string            `json:"alias"`
	Tools    []json.RawMessage `json:"tools"`
	Examples []string          `json:"examples"`
	Skills   []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"skills"`
}

func toolNames(raw []json.RawMessage) []string {
	var names []string
	for _, t := range raw {
		var s string
		if json.Unmarshal(t, &s) == nil {
			names = append(names, s)
			continue
		}
		var o struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(t, &o) == nil && o.Name != "" {
			names = append(names, o.Name)
		}
	}
	return names
}

// put indexes (or re-indexes) the agent at addr.
func (ix *index) put(addr, summary string, profile json.RawMessage) {
	ix.remove(addr)
	d := &doc{addr: addr, terms: map[string]float64{}, tools: map[string]bool{}}
	add := func(text string, w float64) {
		for _, t := range tokens(text) {
			d.terms[t] += w
			d.length += w
		}
	}
	add(summary, weightProse)
	var p indexedProfile
	if len(profile) > 0 && json.Unmarshal(profile, &p) != nil {
		p = indexedProfile{} // an odd profile is stored, just not indexed
	}
	add(p.Alias, weightName)
	for _, e := range p.Examples {
		add(e, weightProse)
	}
	for _, s := range p.Skills {
		add(s.Name, weightName)
		add(s.Description, weightProse)
	}
	for _, name := range toolNames(p.Tools) {
		add(name, weightName)
		low := strings.ToLower(name)
		d.tools[low] = true
		d.tools[squash(low)] = true
	}
	var id int32
	if n := len(ix.free); n > 0 {
		id, ix.free = ix.free[n-1], ix.free[:n-1]
		ix.docs[id] = d
	} else {
		id = int32(len(ix.docs))
		ix.docs = append(ix.docs, d)
	}
	ix.ids[addr] = id
	ix.n++
	ix.totalLen += d.length
	for t, f := range d.terms {
		m := ix.postings[t]
		if m == nil {
			m = map[int32]float64{}
			ix.postings[t] = m
		}
		m[id] = f
	}
	for name := range d.tools {
		m := ix.tools[name]
		if m == nil {
			m = map[int32]bool{}
			ix.tools[name] = m
		}
		m[id] = true
	}
}

func (ix *index) remove(addr string) {
	id, ok := ix.ids[addr]
	if !ok {
		return
	}
	d := ix.docs[id]
	for t := range d.terms {
		if m := ix.postings[t]; m != nil {
			delete(m, id)
			if len(m) == 0 {
				delete(ix.postings, t)
			}
		}
	}
	for name := range d.tools {
		if m := ix.tools[name]; m != nil {
			delete(m, id)
			if len(m) == 0 {
				delete(ix.tools, name)
			}
		}
	}
	ix.totalLen -= d.length
	ix.n--
	delete(ix.ids, addr)
	ix.docs[id] = nil
	ix.free = append(ix.free, id)
}

// score returns the agents matching query with their relevance, in no
// particular order. An empty query matches nothing; the caller lists
// instead. It only reads the index, so searches may run concurrently.
func (ix *index) score(query string) []hit {
	if ix.n == 0 {
		return nil
	}
	n := float64(ix.n)
	avg := ix.totalLen / n
	if avg <= 0 {
		avg = 1
	}
	scores := make([]float64, len(ix.docs))
	var touched []int32
	bump := func(id int32, v float64) {
		if scores[id] == 0 {
			touched = append(touched, id)
		}
		scores[id] += v
	}
	seen := map[string]bool{}
	for _, t := range tokens(query) {
		if seen[t] {
			continue
		}
		seen[t] = true
		post := ix.postings[t]
		df := float64(len(post))
		idf := math.Log(1 + (n-df+0.5)/(df+0.5))
		for id, f := range post {
			d := ix.docs[id]
			bump(id, idf*f*(bm25K1+1)/(f+bm25K1*(1-bm25B+bm25B*d.length/avg)))
		}
	}
	// Exact tool names: each query word that is one, and the whole query.
	words := strings.FieldsFunc(strings.ToLower(query), func(r rune) bool { return unicode.IsSpace(r) || r == ',' })
	whole := squash(strings.ToLower(query))
	for _, w := range words {
		for id := range ix.tools[w] {
			bump(id, toolHit)
		}
	}
	if whole != "" {
		for id := range ix.tools[whole] {
			bump(id, toolQueryHit)
		}
	}
	out := make([]hit, 0, len(touched))
	for _, id := range touched {
		out = append(out, hit{ix.docs[id].addr, scores[id]})
	}
	return out
}

// squash drops separators so "detect_language", "detect-language" and
// "detect language" compare equal.
func squash(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r == '.' || unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

var stopwords = map[string]bool{
	"a": true, "an": true, "and": true, "are": true, "as": true, "at": true, "be": true, "by": true,
	"can": true, "for": true, "from": true, "i": true, "in": true, "is": true, "it": true, "me": true,
	"my": true, "of": true, "on": true, "or": true, "that": true, "the": true, "this": true, "to": true,
	"what": true, "with": true, "you": true, "your": true,
}

// tokens splits text into lower-case, lightly stemmed words. Letters of
// scripts written without spaces (Han, kana, Hangul) are one word each.
func tokens(text string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			w := string(cur)
			cur = cur[:0]
			if !stopwords[w] {
				out = append(out, stem(w))
			}
		}
	}
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
			flush()
			out = append(out, string(r))
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			cur = append(cur, r)
		default:
			flush()
		}
	}
	flush()
	return out
}

// stem strips a few English endings so "translates", "translating" and
// "translate" meet. It is deliberately crude: recall over precision, and
// BM25 sorts the rest.
func stem(w string) string {
	if len(w) <= 3 {
		return w
	}
	for _, suf := range []string{"ing", "ed", "es", "s"} {
		if strings.HasSuffix(w, suf) && len(w)-len(suf) >= 3 {
			if suf == "s" && strings.HasSuffix(w, "ss") {
				break
			}
			w = w[:len(w)-len(suf)]
			break
		}
	}
	if len(w) > 4 && strings.HasSuffix(w, "e") {
		w = w[:len(w)-1]
	}
	return w
}
