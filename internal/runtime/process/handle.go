package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/agenthost/agenthost/internal/runtime"
)

// state is the Handle's State: what identifies a runtime's process across
// platform restarts.
type state struct {
	PID  int `json:"pid"`
	PGID int `json:"pgid"`
	SID  int `json:"sid"`
	// StartTicks is field 22 of /proc/<pid>/stat: with BootID it tells the
	// runtime from a later process that was given the same pid.
	StartTicks uint64    `json:"start_ticks"`
	BootID     string    `json:"boot_id,omitempty"`
	Port       int       `json:"port"`
	StartedAt  time.Time `json:"started_at"`
	// UID is the runtime's uid; zero when it runs as the platform's user.
	UID uint32 `json:"uid,omitempty"`
	// Cgroup is the runtime's cgroup, nil when it has none.
	Cgroup *cgroupState `json:"cgroup,omitempty"`
	// Exe is the executable run (the copy in <root>/.bin when runtimes
	// have their own uids).
	Exe string `json:"exe,omitempty"`
}

// cgroupState is a runtime's cgroup as its handle records it, so that a
// platform started later can kill and remove it.
type cgroupState struct {
	V2   bool     `json:"v2,omitempty"`
	Dirs []string `json:"dirs"`
	// MemoryBytes is the memory limit, for the message of an OOM kill.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
}

// sameRun reports whether s and o name the same process.
func (s state) sameRun(o state) bool {
	return s.PID == o.PID && s.StartTicks == o.StartTicks && s.BootID == o.BootID
}

// idPattern keeps ids safe as one path component: no separators, and no
// leading dot, so never "." or "..".
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func validID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("process: invalid runtime id %q", id)
	}
	return nil
}

// validate rejects specs the driver cannot run. Errors never quote
// environment values: they are secrets.
func validate(spec runtime.Spec) error {
	if err := validID(spec.ID); err != nil {
		return err
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return fmt.Errorf("process: runtime %s: empty command", spec.ID)
	}
	if spec.Port < 1 || spec.Port > 65535 {
		return fmt.Errorf("process: runtime %s: port %d out of range", spec.ID, spec.Port)
	}
	for k, v := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("process: runtime %s: invalid environment variable %q", spec.ID, k)
		}
	}
	return nil
}

// checkHandle rejects handles that are not this driver's or whose id is
// unsafe as a directory name.
func checkHandle(h *runtime.Handle) error {
	if h == nil {
		return errors.New("process: nil handle")
	}
	if h.Driver != Name {
		return fmt.Errorf("process: handle of runtime %s belongs to driver %q", h.ID, h.Driver)
	}
	return validID(h.ID)
}

// decodeState reads h's State. An unreadable state names no process the
// driver can find, which is ErrNotFound: the caller starts the runtime
// again (and Start's own check still refuses a duplicate).
func decodeState(h *runtime.Handle) (state, error) {
	var st state
	if err := json.Unmarshal(h.State, &st); err != nil {
		return state{}, fmt.Errorf("process: runtime %s: unreadable handle state: %w", h.ID, errors.Join(err, runtime.ErrNotFound))
	}
	if st.PID <= 1 || st.SID <= 1 || st.PGID <= 1 {
		return state{}, fmt.Errorf("process: runtime %s: handle state without a process: %w", h.ID, runtime.ErrNotFound)
	}
	return st, nil
}

const stateName = "state.json"

// writeHandleFile records h in dir, atomically.
func writeHandleFile(dir string, h *runtime.Handle) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateName))
}

func readHandleFile(dir string) (*runtime.Handle, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateName))
	if err != nil {
		return nil, err
	}
	var h runtime.Handle
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%s: %w", stateName, err)
	}
	return &h, nil
}
