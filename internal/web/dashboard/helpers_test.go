package dashboard_test

import (
	"io/fs"

	"github.com/agenthost/agenthost/internal/web/dashboard"
)

func fsRead(name string) (string, error) {
	b, err := fs.ReadFile(dashboard.FS, name)
	return string(b), err
}
