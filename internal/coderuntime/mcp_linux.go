package coderuntime

import "golang.org/x/sys/unix"

// protectFromChildren makes this process non-dumpable: its /proc entries
// (environ, fd, mem) become root's, so a child running as the same user —
// a stdio MCP server the organisation chose — cannot read the control
// token or the operator's model keys from this process's environment, nor
// trace it. Children are dumpable again once they exec.
func protectFromChildren() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
