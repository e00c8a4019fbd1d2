package sse

import (
	"bufio"
	"bytes"
	"io"
)

// Event is one event read from a stream.
type Event struct {
	// ID is the event's id: line, or "" when it had none.
	ID string
	// Name is its event: line, or "" (the default "message").
	Name string
	// Data is its data: lines joined with "\n".
	Data []byte
}

// MaxLine bounds one line of a stream a Reader accepts: an event's data
// line is one JSON document, and a runtime's message with its tool output
// stays well below this.
const MaxLine = 16 << 20

// Reader reads events from a stream as the HTML Living Standard's
// event-stream format has them: lines ended by LF, CR LF or CR; "field:
// value" with one optional space after the colon; comment lines (":")
// ignored; an event dispatched at a blank line when it has data or a name.
// The clients of agenthost's own streams (the platform reading its
// runtimes, the benchmarks, the tests) read with it.
type Reader struct {
	sc *bufio.Scanner
}

// NewReader reads events from r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	sc.Split(scanLines)
	return &Reader{sc: sc}
}

// Next returns the next event, or io.EOF when the stream ended between
// events (an event cut off by the end is dropped, as a browser drops it),
// or the read's error (bufio.ErrTooLong for a line past MaxLine).
func (r *Reader) Next() (Event, error) {
	var ev Event
	var data []byte
	hasData := false
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if len(line) == 0 {
			if hasData || ev.Name != "" {
				if hasData && data == nil {
					data = []byte{} // "data:" alone is an empty data, not none
				}
				ev.Data = data
				return ev, nil
			}
			ev = Event{}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "id":
			ev.ID = string(value)
		case "event":
			ev.Name = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		}
	}
	if err := r.sc.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.EOF
}

// scanLines splits at LF, CR LF or a lone CR.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		// A CR: a following LF belongs to it; wait for the next byte
		// unless the input ended.
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		if atEOF {
			return i + 1, data[:i], nil
		}
		return 0, nil, nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
