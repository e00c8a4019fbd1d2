// Package version reports the build's version, the same string everywhere
// it is shown (agenthost version, /info, /health, banners).
package version

import (
	"runtime/debug"
	"sync"
)

// Version is set at link time (-ldflags "-X .../internal/version.Version=v1.2.3");
// otherwise it comes from the module's build info.
var Version = ""

var fromBuild = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return fromInfo(bi)
})

// String returns the version: the link-time Version; else the module
// version of a `go install module@version` build; else the VCS revision a
// source build records (12 hex digits, "-dirty" with uncommitted changes);
// else "devel".
func String() string {
	if Version != "" {
		return Version
	}
	return fromBuild()
}

func fromInfo(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return "devel-" + rev + dirty
}
