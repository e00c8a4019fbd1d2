package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

const (
	logName = "runtime.log"
	// tailBytes bounds how much of each log file Inspect reads.
	tailBytes = 64 << 10
	// maxLineBytes truncates absurd lines in Inspect's answer.
	maxLineBytes = 2048
)

// rotateLog keeps path under max bytes. The runtime holds path open with
// O_APPEND and writes to it directly, so the log cannot be renamed away;
// it is copied and truncated instead ("copytruncate"): the last max bytes,
// from a line boundary, go to path.1, and path starts again from zero.
// Output written between the copy and the truncation is lost, a window of
// microseconds once per MaxLogBytes of output.
func rotateLog(path string, max int64) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	size := fi.Size()
	if size <= max {
		return nil
	}
	off := size - max
	br := bufio.NewReader(io.NewSectionReader(f, off, max))
	if err := skipLine(br); err != nil {
		// No line boundary in the whole window: keep the bytes as they are.
		br = bufio.NewReader(io.NewSectionReader(f, off, max))
	}
	tmp := path + ".1.tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	if _, err := io.Copy(out, br); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("rotate log: %w", err)
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rotate log: %w", err)
	}
	if err := os.Rename(tmp, path+".1"); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	return nil
}

// skipLine consumes br up to and including the next newline, however long
// the line.
func skipLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// tailLog returns the last n lines of the log at path, reaching into
// path.1 when path alone has fewer.
func tailLog(path string, n int) []string {
	if n <= 0 {
		return nil
	}
	lines := tailFile(path, n)
	if len(lines) < n {
		older := tailFile(path+".1", n-len(lines))
		lines = append(older, lines...)
	}
	return lines
}

// tailFile returns at most n of the last lines of one file, read from its
// last tailBytes. A missing or unreadable file has no lines: logs are a
// courtesy for error messages, never a reason to fail.
func tailFile(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	off := max(fi.Size()-tailBytes, 0)
	buf := make([]byte, fi.Size()-off)
	k, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil
	}
	return lastLines(buf[:k], n, off > 0)
}

// lastLines splits b into lines and returns the last n; partialFirst says
// b starts mid-line, so its first line is dropped.
func lastLines(b []byte, n int, partialFirst bool) []string {
	b = bytes.TrimSuffix(b, []byte("\n"))
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte("\n"))
	if partialFirst && len(parts) > 1 {
		parts = parts[1:]
	}
	if len(parts) > n {
		parts = parts[len(parts)-n:]
	}
	lines := make([]string, len(parts))
	for i, p := range parts {
		p = bytes.TrimSuffix(p, []byte("\r"))
		if len(p) > maxLineBytes {
			p = append(p[:maxLineBytes:maxLineBytes], "…"...)
		}
		lines[i] = strings.ToValidUTF8(string(p), "\uFFFD")
	}
	return lines
}
