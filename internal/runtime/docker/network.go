package docker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// LabelNetwork is set, on a network the driver makes, to the name it was
// made under; with LabelManaged it is how drivers recognise it.
const LabelNetwork = "agenthost.network"

// networkAttempts bounds EnsureNetwork's find-or-create rounds; each
// round ends with a network unless other drivers keep removing the one
// just chosen, which they stop doing once all agree on the oldest.
const networkAttempts = 5

// EnsureNetwork returns the id of the runtimes' network (Options.Network),
// creating it when missing. It is safe when several drivers, in this
// process or in others (platform replicas, test binaries), call it on one
// engine at once. Older engines (API < 1.44) do not refuse a second
// network of an existing name, so drivers on one machine find-or-create
// under a lock file in the temporary directory: the second finds what the
// first made. Drivers on different machines sharing an engine can still
// race; then every driver chooses the same network among those it sees
// (made by a driver, oldest first, lowest id on a tie), removes the other
// empty ones, and refers to its choice by id only, never by the name,
// which the engine calls ambiguous. (The lock is needed on one machine
// because choosing alone does not converge: a network's creation time is
// set before it becomes visible, so a driver may see, and start runtimes
// on, a younger network before an older one appears; TestNetworkRace
// caught that on a fresh machine.) A network of that name the driver did
// not make (an operator's) is used when no driver-made one exists, and
// never removed.
//
// The id is remembered; a Start that finds the network gone asks again.
func (d *Driver) EnsureNetwork(ctx context.Context) (string, error) {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	if d.netID != "" {
		return d.netID, nil
	}
	name := d.opts.Network
	switch name {
	case "bridge", "none", "default":
		// The engine's own: one of each, never ambiguous.
		d.netID = name
		return name, nil
	}
	if unlock, err := lockFile(networkLockPath(name)); err != nil {
		d.log.Warn("docker: creating the runtimes' network without the machine's lock; a racing driver may make a duplicate, which is then healed", "network", name, "err", err)
	} else {
		defer unlock()
	}
	for range networkAttempts {
		id, err := d.findNetwork(ctx, name)
		if err != nil {
			return "", err
		}
		if id != "" {
			d.netID = id
			return id, nil
		}
		created, err := d.api.NetworkCreate(ctx, name, client.NetworkCreateOptions{
			Driver: "bridge",
			// Runtimes cannot reach each other; the host reaches each at
			// its published port.
			Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"},
			Labels:  map[string]string{LabelManaged: "true", LabelNetwork: name},
		})
		// A newer engine refuses a duplicate (conflict): another driver
		// made it first, and the next round finds it.
		if err != nil && !cerrdefs.IsConflict(err) {
			return "", fmt.Errorf("docker: creating network %s: %w", name, err)
		}
		if err == nil {
			d.log.Info("docker: created the runtimes' network", "network", name, "id", shortID(created.ID))
		}
	}
	return "", fmt.Errorf("docker: network %s: created, but it disappeared %d times (is something removing it?)", name, networkAttempts)
}

// networkLockPath is the lock file drivers on this machine share for the
// network name (hashed: the name is the operator's).
func networkLockPath(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(os.TempDir(), "agenthost-network-"+hex.EncodeToString(sum[:8])+".lock")
}

// forgetNetwork drops the remembered network id when it is id, so the
// next EnsureNetwork looks again.
func (d *Driver) forgetNetwork(id string) {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	if d.netID == id {
		d.netID = ""
	}
}

// findNetwork returns the id of the network named name that every driver
// chooses, or "" when there is none, and removes the driver-made
// duplicates that no container uses.
func (d *Driver) findNetwork(ctx context.Context, name string) (string, error) {
	// The engine's name filter matches substrings: keep exact names.
	res, err := d.api.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return "", fmt.Errorf("docker: listing networks named %s: %w", name, err)
	}
	var nets []network.Summary
	for _, n := range res.Items {
		if n.Name == name {
			nets = append(nets, n)
		}
	}
	if len(nets) == 0 {
		return "", nil
	}
	slices.SortFunc(nets, compareNetworks)
	chosen := nets[0]
	for _, n := range nets[1:] {
		if !ours(n) {
			continue
		}
		d.removeDuplicate(ctx, n.ID)
	}
	if len(nets) > 1 {
		d.log.Info("docker: several networks share the runtimes' network name; using the oldest", "network", name, "id", shortID(chosen.ID), "count", len(nets))
	}
	return chosen.ID, nil
}

// compareNetworks orders networks of one name as every driver must
// choose among them: the driver's own first, then the oldest, then the
// lowest id.
func compareNetworks(a, b network.Summary) int {
	if oa, ob := ours(a), ours(b); oa != ob {
		if oa {
			return -1
		}
		return 1
	}
	return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
}

// ours reports a network a driver made.
func ours(n network.Summary) bool { return n.Labels[LabelManaged] == "true" }

// removeDuplicate removes a duplicate network unless a container uses it;
// failures are only logged: the duplicate does no harm while every driver
// uses the chosen network by id.
func (d *Driver) removeDuplicate(ctx context.Context, id string) {
	in, err := d.api.NetworkInspect(ctx, id, client.NetworkInspectOptions{})
	if err != nil {
		return
	}
	if len(in.Network.Containers) > 0 {
		d.log.Info("docker: keeping a duplicate network that containers still use", "id", shortID(id), "containers", len(in.Network.Containers))
		return
	}
	_, err = d.api.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
	switch {
	case err == nil:
		d.log.Info("docker: removed a duplicate of the runtimes' network", "id", shortID(id))
	case cerrdefs.IsNotFound(err):
		// Another driver removed it first.
	default:
		d.log.Info("docker: could not remove a duplicate network", "id", shortID(id), "err", err)
	}
}
