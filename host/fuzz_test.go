package host

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzParseConfig: any bytes give a config or an ErrConfig, never a panic.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("summary: hi\nport: 8000\n"))
	f.Add([]byte("trust:\n  allow: [contact]\n"))
	f.Add([]byte("examples: [a, b]\nwhitelist: [\"0x1\"]\n"))
	f.Add([]byte("port: abc\n"))
	f.Add([]byte("system_prompt: |\n  multi\n  line\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fc, err := parseConfig(data, "host.yaml")
		if err == nil && fc == nil {
			t.Fatal("nil config without error")
		}
	})
}

// FuzzDecodeInput: request decoding never panics, and accepted requests
// have a prompt.
func FuzzDecodeInput(f *testing.F) {
	f.Add([]byte(`{"prompt":"hi"}`))
	f.Add([]byte(`{"prompt":"hi","session":{"messages":[{"role":"user","content":"x"}],"iteration":2}}`))
	f.Add([]byte(`{"payload":{"prompt":"hi","timestamp":1},"from":"0x1","signature":"ab"}`))
	f.Add([]byte(`{"prompt":"x","files":[{"name":"a","data":"data:text/plain;base64,eA=="}],"images":["data:image/png;base64,AA=="]}`))
	f.Add([]byte(`{"prompt": 5}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in inputRequest
		if err := decodeBody(body, &in); err != nil {
			if _, ok := err.(*httpError); !ok {
				t.Fatalf("error %T is not an httpError", err)
			}
			return
		}
		p, err := in.prompt()
		if err == nil && p == "" {
			t.Fatal("empty prompt accepted")
		}
		cfg := &Config{MaxFileSizeMB: 0.001, MaxFilesPerRequest: 2, CoDir: t.TempDir()}
		attachments(cfg, in.Images, in.Files, uploadOwner{}, time.Now)
		var f struct{}
		_ = json.Unmarshal(body, &f)
	})
}

// FuzzKeyCollision: a body checkKeys accepts decodes to the same values
// through encoding/json (which matches names without regard to case and
// lets the last repeat win) as through an exact, case-sensitive reading of
// its members, at the body and payload level and in file entries: what the
// signature and the digest saw is what the host uses.
func FuzzKeyCollision(f *testing.F) {
	f.Add([]byte(`{"payload":{"prompt":"hi","timestamp":1},"from":"0x1","signature":"ab","PAYLOAD":{"prompt":"evil"}}`))
	f.Add([]byte(`{"prompt":"a","images":["x"],"Images":["y"]}`))
	f.Add([]byte(`{"prompt":"a","files":[{"name":"a","data":"x","NAME":"b"}]}`))
	f.Add([]byte(`{"prompt":"a","\u017fession":{"messages":[]}}`))
	f.Add([]byte(`{"prompt":"a","prompt":"b"}`))
	f.Add([]byte(`{"prompt":"ok","colour":"red","session":{"messages":[{"role":"user","content":"x","args":{"Name":1,"name":2}}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if checkKeys(body) != nil {
			return
		}
		var in inputRequest
		if json.Unmarshal(body, &in) != nil {
			return
		}
		var exact map[string]json.RawMessage
		if json.Unmarshal(body, &exact) != nil {
			return
		}
		same := func(name string, got any) {
			raw, ok := exact[name]
			var want any
			if ok {
				if json.Unmarshal(raw, &want) != nil {
					return
				}
			}
			gb, _ := json.Marshal(got)
			var g any
			json.Unmarshal(gb, &g)
			wb, _ := json.Marshal(want)
			if !ok || string(raw) == "null" {
				// Absent: the decoded field must be empty too.
				if s := string(gb); s != "null" && s != "[]" && s != `""` && s != "{}" {
					t.Fatalf("%s absent from %q but decoded as %s", name, body, gb)
				}
				return
			}
			if name == "session" {
				return // decoded into a richer type; presence is what matters
			}
			gb2, _ := json.Marshal(g)
			if !bytes.Equal(gb2, wb) && !strings.Contains(name, "payload") {
				t.Fatalf("%s: decoded %s, exact member %s (body %q)", name, gb2, wb, body)
			}
		}
		same("prompt", in.Prompt)
		same("images", in.Images)
		same("from", in.From)
		same("signature", in.Signature)
		if raw, ok := exact["payload"]; ok && !bytes.Equal(bytes.TrimSpace(raw), bytes.TrimSpace(in.Payload)) {
			t.Fatalf("payload: decoded %s, exact member %s", in.Payload, raw)
		}
		if _, ok := exact["session"]; !ok && in.Session != nil {
			t.Fatalf("session absent from %q but decoded", body)
		}
		if _, ok := exact["files"]; !ok && len(in.Files) > 0 {
			t.Fatalf("files absent from %q but decoded", body)
		}
	})
}

// FuzzFrameBinding: checkBinding accepts a signed frame's payload only
// when it names this connection's nonce, a seq after the last accepted one
// and (if any) the frame's own type; the accepted seq only grows; and on a
// connection that declared signed frames a state-changing frame without a
// binding is refused.
func FuzzFrameBinding(f *testing.F) {
	const nonce = "00112233445566778899aabbccddeeff"
	f.Add([]byte(`{"type":"INPUT","conn":"`+nonce+`","seq":1,"prompt":"hi"}`), "INPUT", int64(0), true, "0xa", "0xa")
	f.Add([]byte(`{"type":"INPUT","conn":"`+nonce+`","seq":1}`), "INPUT", int64(1), true, "0xa", "0xa")
	f.Add([]byte(`{"type":"APPROVAL_RESPONSE","conn":"`+nonce+`","seq":9}`), "INPUT", int64(0), false, "0xa", "0xa")
	f.Add([]byte(`{"prompt":"hi"}`), "APPROVAL_RESPONSE", int64(0), true, "0xa", "0xa")
	f.Add([]byte(`{"conn":"other","seq":5,"type":"INPUT"}`), "INPUT", int64(0), false, "0xa", "0xb")
	f.Add([]byte(`{"conn":"`+nonce+`","seq":"5","type":"INPUT"}`), "INPUT", int64(0), false, "0xa", "0xa")
	f.Fuzz(func(t *testing.T, payload []byte, typ string, last int64, bound bool, signer, from string) {
		c := &wsConn{nonce: nonce, seq: last, bound: bound, signer: signer}
		err := c.checkBinding(typ, Caller{Address: from, Payload: payload})
		var bp struct {
			Type string          `json:"type"`
			Conn string          `json:"conn"`
			Seq  json.RawMessage `json:"seq"`
		}
		decoded := json.Unmarshal(payload, &bp) == nil
		if err != nil {
			if c.seq != last {
				t.Fatalf("refused frame moved seq from %d to %d", last, c.seq)
			}
			return
		}
		if !decoded {
			t.Fatalf("accepted an undecodable payload %q", payload)
		}
		if bp.Type != "" && bp.Type != typ {
			t.Fatalf("accepted a %q payload for a %q frame", bp.Type, typ)
		}
		if bp.Conn == "" {
			if bound && stateChanging[typ] && typ != "CONNECT" {
				t.Fatalf("bound connection accepted an unbound %s: %q", typ, payload)
			}
			if c.seq != last {
				t.Fatal("an unbound frame moved seq")
			}
			return
		}
		if bp.Conn != nonce || bp.Type == "" {
			t.Fatalf("accepted conn %q type %q", bp.Conn, bp.Type)
		}
		if c.seq <= last {
			t.Fatalf("accepted seq %d not after %d", c.seq, last)
		}
		if signer != "" && from != signer && typ != "CONNECT" {
			t.Fatalf("accepted a frame signed by %q on %q's connection", from, signer)
		}
	})
}
