package relayserver

import (
	"encoding/json"
	"testing"
)

// FuzzIndex: any summary, profile and query index and search without
// panicking; a removed agent is never found again and the index empties.
func FuzzIndex(f *testing.F) {
	f.Add("translates French", `{"alias":"tr","tools":["detect_language",{"name":"x"}]}`, "detect language")
	f.Add("天気予報 weather", `{"examples":["what is the weather"],"skills":[{"name":"s","description":"d"}]}`, "weather 天")
	f.Add("", `[]`, "")
	f.Add("a-b_c.d", `{"tools":[1,null,"A-B"]}`, "a-b ab,c")
	f.Fuzz(func(t *testing.T, summary, profile, query string) {
		ix := newIndex()
		var p json.RawMessage
		if json.Valid([]byte(profile)) {
			p = json.RawMessage(profile)
		}
		ix.put("0xa", summary, p)
		ix.put("0xb", query, nil)
		ix.put("0xa", summary+" "+query, p) // re-index
		for _, h := range ix.score(query) {
			if h.score <= 0 || (h.addr != "0xa" && h.addr != "0xb") {
				t.Fatalf("hit %+v", h)
			}
		}
		ix.remove("0xa")
		for _, h := range ix.score(summary + " " + query) {
			if h.addr == "0xa" {
				t.Fatal("removed agent found")
			}
		}
		ix.remove("0xb")
		ix.remove("0xb")
		if ix.n != 0 || len(ix.ids) != 0 || len(ix.postings) != 0 || len(ix.tools) != 0 {
			t.Fatalf("index not empty: n=%d ids=%d postings=%d tools=%d", ix.n, len(ix.ids), len(ix.postings), len(ix.tools))
		}
	})
}
