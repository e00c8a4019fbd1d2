// Package reliability holds the host's process-level tests: the real
// agenthost binary is built once, started, killed with SIGKILL in the
// middle of runs and restarted, to check what survives. It has no code of
// its own.
package reliability
