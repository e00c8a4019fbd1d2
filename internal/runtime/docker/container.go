package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/agenthost/agenthost/internal/runtime"
)

// state is the Handle's State.
type state struct {
	// Container is the container's id; a later Start's container has
	// another, so a stale handle never acts on a newer run.
	Container string `json:"container"`
	Volume    string `json:"volume"`
	// Data is the agent loop's data volume (older handles have none:
	// DataVolumeName then).
	Data string `json:"data,omitempty"`
	Port int    `json:"port"`
}

// idPattern keeps ids valid in container and volume names.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func validID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("docker: invalid runtime id %q", id)
	}
	return nil
}

// ContainerName is the name of runtime id's container.
func ContainerName(id string) string { return "agenthost-" + id }

// VolumeName is the name of runtime id's workspace volume.
func VolumeName(id string) string { return "agenthost-" + id + "-workspace" }

// DataVolumeName is the name of runtime id's data volume (DataDir): the
// agent loop's database, out of the workspace its tools write to.
func DataVolumeName(id string) string { return "agenthost-" + id + "-data" }

// validate rejects specs the driver cannot run. Errors never quote
// environment values: they are secrets.
func validate(spec runtime.Spec) error {
	if err := validID(spec.ID); err != nil {
		return err
	}
	if spec.Port < 1 || spec.Port > 65535 {
		return fmt.Errorf("docker: runtime %s: port %d out of range", spec.ID, spec.Port)
	}
	for k, v := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("docker: runtime %s: invalid environment variable %q", spec.ID, k)
		}
	}
	for k := range spec.Labels {
		if k == LabelManaged || k == LabelRuntime || k == LabelScope || k == LabelPort {
			return fmt.Errorf("docker: runtime %s: label %q is the driver's", spec.ID, k)
		}
	}
	return nil
}

// checkHandle rejects handles that are not this driver's.
func checkHandle(h *runtime.Handle) error {
	if h == nil {
		return errors.New("docker: nil handle")
	}
	if h.Driver != Name {
		return fmt.Errorf("docker: handle of runtime %s belongs to driver %q", h.ID, h.Driver)
	}
	return validID(h.ID)
}

// decodeState reads h's State; a handle without one (or an unreadable
// one) names the runtime's container by its name.
func decodeState(h *runtime.Handle) state {
	var st state
	if len(h.State) > 0 {
		_ = json.Unmarshal(h.State, &st)
	}
	if st.Container == "" {
		st.Container = ContainerName(h.ID)
	}
	if st.Volume == "" {
		st.Volume = VolumeName(h.ID)
	}
	if st.Data == "" {
		st.Data = DataVolumeName(h.ID)
	}
	return st
}

// labels are the labels of a runtime's container and volume.
func (d *Driver) labels(spec runtime.Spec) map[string]string {
	l := maps.Clone(spec.Labels)
	if l == nil {
		l = map[string]string{}
	}
	l[LabelManaged] = "true"
	l[LabelRuntime] = spec.ID
	l[LabelScope] = d.opts.Scope
	l[LabelPort] = strconv.Itoa(spec.Port)
	return l
}

// env is the container's environment: the spec's, then the driver's own;
// hostAddrs join the egress deny list.
func env(spec runtime.Spec, hostAddrs []string) []string {
	m := maps.Clone(spec.Env)
	if m == nil {
		m = map[string]string{}
	}
	if len(hostAddrs) > 0 {
		deny := slices.Clone(hostAddrs)
		if v := m[EnvEgressDeny]; v != "" {
			deny = append([]string{v}, deny...)
		}
		m[EnvEgressDeny] = strings.Join(deny, ",")
	}
	for k, v := range map[string]string{"HOME": Workspace, "TMPDIR": "/tmp"} {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	m["AGENTHOST_PORT"] = strconv.Itoa(spec.Port)
	m[EnvHost] = "0.0.0.0"
	m["AGENTHOST_WORKSPACE"] = Workspace
	m["AGENTHOST_DATA_DIR"] = DataDir
	m["AGENTHOST_RUNTIME_ID"] = spec.ID
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

// createOptions builds the container of spec: everything the package
// documentation promises about isolation is here.
func (d *Driver) createOptions(spec runtime.Spec, netID string, secOpt []string) (container.Config, container.HostConfig, network.NetworkingConfig, error) {
	port, ok := network.PortFrom(uint16(spec.Port), network.TCP)
	if !ok {
		return container.Config{}, container.HostConfig{}, network.NetworkingConfig{}, fmt.Errorf("docker: runtime %s: bad port %d", spec.ID, spec.Port)
	}
	image := spec.Image
	if image == "" {
		image = d.opts.Image
	}
	r := spec.Resources
	res := Resources{r.MemoryBytes, r.NanoCPUs, r.PidsLimit, r.NofileLimit}.or(d.opts.Resources)
	// The tools' own open-files limit (set by the runtime) cannot exceed
	// the container's.
	if n, err := strconv.ParseInt(spec.Env["AGENTHOST_NOFILE_LIMIT"], 10, 64); err == nil && n > res.NofileLimit {
		res.NofileLimit = n
	}
	stopTimeout := 3
	cfg := container.Config{
		Image:        image,
		Cmd:          slices.Clone(spec.Command),
		Env:          env(spec, d.opts.HostAddrs),
		User:         d.opts.User,
		WorkingDir:   Workspace,
		Hostname:     "agent",
		Labels:       d.labels(spec),
		ExposedPorts: network.PortSet{port: {}},
		StopSignal:   "SIGTERM",
		StopTimeout:  &stopTimeout,
	}
	init := true
	host := container.HostConfig{
		NetworkMode: container.NetworkMode(netID),
		PortBindings: network.PortMap{port: {{
			HostIP: d.opts.PublishIP, HostPort: strconv.Itoa(spec.Port),
		}}},
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		// no-new-privileges, the seccomp profile, AppArmor (see
		// securityOptions).
		SecurityOpt: secOpt,
		// systempaths=unconfined: bubblewrap mounts a fresh /proc for the
		// tools' PID namespace, which the kernel refuses while parts of
		// the container's /proc are covered (Docker's masked and
		// read-only paths). The agent loop runs without capabilities as
		// a non-root uid, so it can write none of them.
		MaskedPaths:   []string{},
		ReadonlyPaths: []string{},
		Init:          &init,
		Tmpfs:         map[string]string{"/tmp": fmt.Sprintf("rw,nosuid,nodev,size=%d,mode=1777", d.opts.TmpSize)},
		Mounts: []mount.Mount{
			{Type: mount.TypeVolume, Source: VolumeName(spec.ID), Target: Workspace},
			{Type: mount.TypeVolume, Source: DataVolumeName(spec.ID), Target: DataDir},
		},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": logMaxSize, "max-file": logMaxFiles,
		}},
		Resources: container.Resources{
			Memory:     res.MemoryBytes,
			MemorySwap: res.MemoryBytes, // no swap beyond the limit
			NanoCPUs:   res.NanoCPUs,
			PidsLimit:  &res.PidsLimit,
			Ulimits:    []*container.Ulimit{{Name: "nofile", Soft: res.NofileLimit, Hard: res.NofileLimit}},
		},
	}
	// The endpoint names the network by id too: the engine looks the
	// network up again when the container starts, by name unless told
	// its id, and a name can be ambiguous (see EnsureNetwork).
	netcfg := network.NetworkingConfig{}
	if !container.NetworkMode(netID).IsDefault() && !container.NetworkMode(netID).IsBridge() && !container.NetworkMode(netID).IsNone() {
		netcfg.EndpointsConfig = map[string]*network.EndpointSettings{netID: {NetworkID: netID}}
	}
	return cfg, host, netcfg, nil
}

// exitResult turns a container's exit into the runtime's convention; a
// container the kernel killed at its memory limit (of limit bytes) matches
// runtime.ErrMemoryLimit.
func exitResult(code int, oomKilled bool, limit int64) runtime.ExitResult {
	res := runtime.ExitResult{ExitCode: code}
	switch {
	case oomKilled:
		res.Err = fmt.Errorf("docker: %w", memoryLimitError{limit})
	case code > 128 && code <= 128+64:
		res.Err = fmt.Errorf("docker: killed by signal %d", code-128)
	}
	return res
}

// memoryLimitError is the ExitResult.Err of a container the kernel killed
// at its memory limit; it words it as the process driver does.
type memoryLimitError struct{ limit int64 }

func (e memoryLimitError) Error() string {
	return "killed: memory limit " + memorySize(e.limit) + " reached"
}

func (e memoryLimitError) Is(target error) bool { return target == runtime.ErrMemoryLimit }

// memorySize writes a memory limit in the largest binary unit that
// divides it ("96 MiB").
func memorySize(n int64) string {
	switch {
	case n <= 0:
		return "unknown"
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
