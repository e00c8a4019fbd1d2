package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/agenthost/agenthost/internal/runtime"
)

var (
	_ runtime.Driver = (*Driver)(nil)
	_ runtime.Lister = (*Driver)(nil)
)

// Start creates the runtime's volume if needed, replaces any earlier
// (exited) container of the runtime with one built from spec, and starts
// it. A runtime whose container is still running is an error.
func (d *Driver) Start(ctx context.Context, spec runtime.Spec) (*runtime.Handle, error) {
	if err := validate(spec); err != nil {
		return nil, err
	}
	defer d.locks.Lock(spec.ID)()
	netID, err := d.EnsureNetwork(ctx)
	if err != nil {
		return nil, err
	}
	name := ContainerName(spec.ID)
	old, err := d.api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	switch {
	case err == nil:
		if old.Container.State != nil && (old.Container.State.Running || old.Container.State.Restarting) {
			return nil, fmt.Errorf("docker: runtime %s is already running (container %s): stop it first", spec.ID, shortID(old.Container.ID))
		}
		if err := d.removeContainer(ctx, old.Container.ID); err != nil {
			return nil, err
		}
	case !cerrdefs.IsNotFound(err):
		return nil, fmt.Errorf("docker: runtime %s: %w", spec.ID, err)
	}
	labels := d.labels(spec)
	delete(labels, LabelPort)
	for _, v := range []struct{ name, what string }{{VolumeName(spec.ID), "workspace"}, {DataVolumeName(spec.ID), "data"}} {
		if _, err := d.api.VolumeCreate(ctx, client.VolumeCreateOptions{Name: v.name, Labels: labels}); err != nil {
			return nil, fmt.Errorf("docker: runtime %s: creating its %s volume: %w", spec.ID, v.what, err)
		}
	}
	secOpt, err := d.securityOptions(ctx)
	if err != nil {
		return nil, err
	}
	cfg, host, netcfg, err := d.createOptions(spec, netID, secOpt)
	if err != nil {
		return nil, err
	}
	id, err := d.createAndStart(ctx, spec, netID, cfg, host, netcfg)
	if d.networkGone(ctx, netID, err) {
		// The network was removed behind the driver's back (or by another
		// driver healing duplicates): find or make it again.
		d.forgetNetwork(netID)
		if netID, err = d.EnsureNetwork(ctx); err == nil {
			if cfg, host, netcfg, err = d.createOptions(spec, netID, secOpt); err == nil {
				id, err = d.createAndStart(ctx, spec, netID, cfg, host, netcfg)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(state{Container: id, Volume: VolumeName(spec.ID), Data: DataVolumeName(spec.ID), Port: spec.Port})
	if err != nil {
		return nil, err
	}
	return &runtime.Handle{
		ID: spec.ID, Driver: Name, State: raw,
		Endpoint: "http://" + net.JoinHostPort(d.opts.EndpointHost, strconv.Itoa(spec.Port)),
	}, nil
}

// createAndStart creates the runtime's container and starts it, removing
// it when it does not start.
func (d *Driver) createAndStart(ctx context.Context, spec runtime.Spec, netID string, cfg container.Config, host container.HostConfig, netcfg network.NetworkingConfig) (string, error) {
	created, err := d.api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: ContainerName(spec.ID), Config: &cfg, HostConfig: &host, NetworkingConfig: &netcfg,
	})
	if err != nil {
		if cerrdefs.IsNotFound(err) && !d.networkGone(ctx, netID, err) {
			return "", fmt.Errorf("docker: runtime %s: image %s not found in the engine (it is never pulled): build it with `agenthost image build --tag %s`: %w", spec.ID, cfg.Image, cfg.Image, err)
		}
		return "", fmt.Errorf("docker: runtime %s: creating its container: %w", spec.ID, err)
	}
	for _, w := range created.Warnings {
		d.log.Warn("docker: container created with a warning", "runtime", spec.ID, "warning", w)
	}
	if _, err := d.api.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rerr := d.removeContainer(rmCtx, created.ID); rerr != nil {
			d.log.Warn("docker: removing a container that failed to start", "runtime", spec.ID, "err", rerr)
		}
		return "", fmt.Errorf("docker: runtime %s: starting its container: %w", spec.ID, err)
	}
	return created.ID, nil
}

// networkGone reports whether err, from creating or starting a container
// on the network netID, is that network's absence: the engine's answer is
// a not-found error whose text alone tells a missing network from a
// missing image, so the driver asks the engine whether the network is
// still there.
func (d *Driver) networkGone(ctx context.Context, netID string, err error) bool {
	if err == nil || !cerrdefs.IsNotFound(err) {
		return false
	}
	_, ierr := d.api.NetworkInspect(ctx, netID, client.NetworkInspectOptions{})
	return cerrdefs.IsNotFound(ierr)
}

// Wait blocks until the runtime's container is no longer running.
func (d *Driver) Wait(ctx context.Context, h *runtime.Handle) (runtime.ExitResult, error) {
	if err := checkHandle(h); err != nil {
		return runtime.ExitResult{}, err
	}
	st := decodeState(h)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := d.api.ContainerWait(wctx, st.Container, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-ctx.Done():
		return runtime.ExitResult{}, ctx.Err()
	case err := <-w.Error:
		if ctx.Err() != nil {
			return runtime.ExitResult{}, ctx.Err()
		}
		if cerrdefs.IsNotFound(err) {
			return runtime.ExitResult{}, fmt.Errorf("docker: runtime %s: %w", h.ID, runtime.ErrNotFound)
		}
		return runtime.ExitResult{}, fmt.Errorf("docker: runtime %s: waiting for its container: %w", h.ID, err)
	case r := <-w.Result:
		oom, limit := false, int64(0)
		if in, err := d.api.ContainerInspect(ctx, st.Container, client.ContainerInspectOptions{}); err == nil && in.Container.State != nil {
			oom = in.Container.State.OOMKilled
			if in.Container.HostConfig != nil {
				limit = in.Container.HostConfig.Memory
			}
		}
		res := exitResult(int(r.StatusCode), oom, limit)
		if r.Error != nil && r.Error.Message != "" && res.Err == nil {
			res.Err = fmt.Errorf("docker: %s", r.Error.Message)
		}
		return res, nil
	}
}

// Stop sends SIGTERM to the runtime (through the container's init) and
// SIGKILL after timeout, then waits for the container to stop. The
// container and its volume are kept.
func (d *Driver) Stop(ctx context.Context, h *runtime.Handle, timeout time.Duration) error {
	if err := checkHandle(h); err != nil {
		return err
	}
	st := decodeState(h)
	in, err := d.api.ContainerInspect(ctx, st.Container, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("docker: stopping runtime %s: %w", h.ID, err)
	}
	if in.Container.State == nil || !in.Container.State.Running {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := d.api.ContainerWait(wctx, st.Container, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	signal := "SIGTERM"
	if timeout <= 0 {
		signal = "SIGKILL"
	}
	if err := d.kill(ctx, st.Container, signal); err != nil {
		return fmt.Errorf("docker: stopping runtime %s: %w", h.ID, err)
	}
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-w.Result:
			return nil
		case err := <-w.Error:
			return d.waitErr(h, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		d.log.Info("docker: runtime ignored SIGTERM; killing it", "runtime", h.ID, "timeout", timeout)
		if err := d.kill(ctx, st.Container, "SIGKILL"); err != nil {
			return fmt.Errorf("docker: killing runtime %s: %w", h.ID, err)
		}
	}
	select {
	case <-w.Result:
		return nil
	case err := <-w.Error:
		return d.waitErr(h, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Driver) waitErr(h *runtime.Handle, err error) error {
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("docker: waiting for runtime %s to stop: %w", h.ID, err)
}

// kill signals a container; one that is gone or no longer running is not
// an error.
func (d *Driver) kill(ctx context.Context, id, signal string) error {
	_, err := d.api.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: signal})
	if err == nil || cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
		return nil
	}
	return err
}

// Destroy removes the runtime's container (killing it if needed) and its
// workspace volume.
func (d *Driver) Destroy(ctx context.Context, h *runtime.Handle) error {
	if err := checkHandle(h); err != nil {
		return err
	}
	defer d.locks.Lock(h.ID)()
	st := decodeState(h)
	var errs []error
	// The handle's container, and whatever container now has the runtime's
	// name (a later Start's).
	for _, c := range []string{st.Container, ContainerName(h.ID)} {
		if err := d.removeContainer(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	for _, v := range []string{st.Volume, st.Data} {
		if err := d.removeVolume(ctx, v); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("docker: destroying runtime %s: %w", h.ID, err)
	}
	return nil
}

func (d *Driver) removeContainer(ctx context.Context, id string) error {
	_, err := d.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	// "removal already in progress" is a conflict: wait for it.
	if cerrdefs.IsConflict(err) {
		w := d.api.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
		select {
		case <-w.Result:
			return nil
		case werr := <-w.Error:
			if werr == nil || cerrdefs.IsNotFound(werr) {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

// removeVolume removes a volume, retrying while the engine still counts
// a just-removed container as its user.
func (d *Driver) removeVolume(ctx context.Context, name string) error {
	for attempt := 0; ; attempt++ {
		_, err := d.api.VolumeRemove(ctx, name, client.VolumeRemoveOptions{Force: true})
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		if !cerrdefs.IsConflict(err) || attempt == 20 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Inspect reports the container's state and its last log lines.
func (d *Driver) Inspect(ctx context.Context, h *runtime.Handle) (runtime.Status, error) {
	if err := checkHandle(h); err != nil {
		return runtime.Status{}, err
	}
	st := decodeState(h)
	in, err := d.api.ContainerInspect(ctx, st.Container, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return runtime.Status{State: runtime.StateUnknown}, nil
	}
	if err != nil {
		return runtime.Status{}, fmt.Errorf("docker: inspecting runtime %s: %w", h.ID, err)
	}
	s := in.Container.State
	if s == nil {
		return runtime.Status{State: runtime.StateUnknown}, nil
	}
	out := runtime.Status{StartedAt: parseTime(s.StartedAt), ExitedAt: parseTime(s.FinishedAt)}
	switch s.Status {
	case container.StateRunning, container.StatePaused, container.StateRestarting:
		out.State, out.ExitedAt = runtime.StateRunning, time.Time{}
	case container.StateCreated:
		// Created but never started: Start failed half-way.
		out.State, out.ExitCode = runtime.StateExited, -1
	default:
		out.State, out.ExitCode = runtime.StateExited, s.ExitCode
	}
	out.Logs, err = d.logs(ctx, st.Container)
	if err != nil && !cerrdefs.IsNotFound(err) {
		d.log.Warn("docker: reading runtime logs", "runtime", h.ID, "err", err)
	}
	return out, nil
}

// logs returns the container's last lines, stdout and stderr merged.
func (d *Driver) logs(ctx context.Context, id string) ([]string, error) {
	rc, err := d.api.ContainerLogs(ctx, id, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(d.opts.LogLines),
	})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if n := len(lines) - d.opts.LogLines; n > 0 {
		lines = lines[n:]
	}
	return lines, nil
}

// Recover re-attaches to a running container. The engine keeps containers
// and their exit status, so there is nothing to rebuild: Recover checks
// the container is the runtime's and still running. A container that has
// stopped is removed (its volume stays) and ErrNotFound returned, so the
// platform starts the runtime afresh.
func (d *Driver) Recover(ctx context.Context, h *runtime.Handle) error {
	if err := checkHandle(h); err != nil {
		return err
	}
	st := decodeState(h)
	in, err := d.api.ContainerInspect(ctx, st.Container, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: runtime %s: %w", h.ID, runtime.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("docker: recovering runtime %s: %w", h.ID, err)
	}
	c := in.Container
	if c.Config == nil || c.Config.Labels[LabelRuntime] != h.ID || c.Config.Labels[LabelManaged] != "true" {
		return fmt.Errorf("docker: container %s is not runtime %s's: %w", shortID(c.ID), h.ID, runtime.ErrNotFound)
	}
	if c.State != nil && (c.State.Running || c.State.Restarting) {
		return nil
	}
	defer d.locks.Lock(h.ID)()
	if err := d.removeContainer(ctx, c.ID); err != nil {
		d.log.Warn("docker: removing the stopped container of a recovered runtime", "runtime", h.ID, "err", err)
	}
	return fmt.Errorf("docker: runtime %s is no longer running: %w", h.ID, runtime.ErrNotFound)
}

// List returns a handle for every runtime that has a container or a
// workspace volume labelled as this driver's in its scope, running or
// not, except those created less than Options.OrphanGrace ago.
func (d *Driver) List(ctx context.Context) ([]*runtime.Handle, error) {
	f := make(client.Filters).Add("label", LabelManaged+"=true", LabelScope+"="+d.opts.Scope)
	cs, err := d.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: listing containers: %w", err)
	}
	now := time.Now()
	young := func(t time.Time) bool { return d.opts.OrphanGrace > 0 && now.Sub(t) < d.opts.OrphanGrace }
	seen := map[string]bool{}
	var out []*runtime.Handle
	for _, c := range cs.Items {
		id := c.Labels[LabelRuntime]
		if validID(id) != nil || seen[id] || young(time.Unix(c.Created, 0)) {
			continue
		}
		seen[id] = true
		port, _ := strconv.Atoi(c.Labels[LabelPort])
		raw, _ := json.Marshal(state{Container: c.ID, Volume: VolumeName(id), Data: DataVolumeName(id), Port: port})
		h := &runtime.Handle{ID: id, Driver: Name, State: raw}
		if port > 0 {
			h.Endpoint = "http://" + net.JoinHostPort(d.opts.EndpointHost, strconv.Itoa(port))
		}
		out = append(out, h)
	}
	vs, err := d.api.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: listing volumes: %w", err)
	}
	for _, v := range vs.Items {
		id := v.Labels[LabelRuntime]
		if validID(id) != nil || seen[id] || young(parseTime(v.CreatedAt)) {
			continue
		}
		seen[id] = true
		raw, _ := json.Marshal(state{Container: ContainerName(id), Volume: VolumeName(id), Data: DataVolumeName(id)})
		out = append(out, &runtime.Handle{ID: id, Driver: Name, State: raw})
	}
	return out, nil
}

// securityOptions returns the containers' SecurityOpt, made once:
// no-new-privileges; the seccomp profile (Docker's default plus what
// bubblewrap needs, SeccompProfile); and, when the engine confines
// containers with AppArmor, apparmor=unconfined, since Docker's AppArmor
// profile forbids the mounts bubblewrap makes.
func (d *Driver) securityOptions(ctx context.Context) ([]string, error) {
	d.secMu.Lock()
	defer d.secMu.Unlock()
	if d.secOpt != nil {
		return d.secOpt, nil
	}
	profile, err := SeccompProfile()
	if err != nil {
		return nil, err
	}
	info, err := d.api.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker: engine info: %w", err)
	}
	opts := []string{"no-new-privileges:true", "seccomp=" + string(profile)}
	if engineHasAppArmor(info.Info.SecurityOptions) {
		opts = append(opts, "apparmor=unconfined")
	}
	d.secOpt = opts
	return opts, nil
}

// engineHasAppArmor reads the engine's security options ("name=apparmor",
// "name=seccomp,profile=default", ...).
func engineHasAppArmor(secOpts []string) bool {
	for _, o := range secOpts {
		for _, kv := range strings.Split(o, ",") {
			if kv == "name=apparmor" {
				return true
			}
		}
	}
	return false
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
