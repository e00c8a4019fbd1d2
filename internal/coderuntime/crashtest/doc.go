// Package crashtest holds the coding runtime's process-level tests: the
// agenthost binary is built once, `agenthost serve --role coding` is
// started, killed with SIGKILL in the middle of turns and restarted, to
// check what survives; and the idle memory of one runtime is measured. It
// has no code of its own.
package crashtest
