// Package apitest holds tests of the module's shape rather than its
// behaviour: what the public packages link (dependency budgets), which way
// imports flow, and that the README's Go programs are the runnable Examples
// they claim to be. It has no code of its own.
package apitest
