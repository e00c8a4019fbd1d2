// Package openapilint holds the test that lints agenthost's OpenAPI
// documents (the host's /openapi.json and the platform's
// /api/v1/openapi.json) with Redocly's CLI and its recommended rules: no
// error allowed, warnings logged. scripts/service-redocly.sh installs the
// CLI and prints AGENTHOST_TEST_REDOCLY; without it the test is skipped,
// and under CI=true it fails.
package openapilint
