package harness

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// volumeName is the Docker name of a service's named volume.
func (e *Env) volumeName(svc, vol string) string { return e.resName(svc + "-" + vol) }

// createVolume creates a service's named volume with the run's labels, so
// Teardown and Clean find it.
func (e *Env) createVolume(ctx context.Context, svc, vol string) error {
	name := e.volumeName(svc, vol)
	labels := e.labels(map[string]string{LabelService: svc})
	if _, err := e.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: labels}); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}

// DropVolumes deletes the node's named volumes and creates them again
// empty, under the same names and labels: what losing a region's disks
// does. The node must be down (killed or stopped); a running or paused node
// is refused, because deleting the disks under a live process is not a
// failure any real system has. Docker keeps a volume while a container
// refers to it, even a stopped one, so the container is removed and
// created again from the image it ran, with the same name, networks,
// aliases, files and host ports. The node stays down, and left
// disconnected if it was; Start brings it up on the empty volumes. The
// removed container's log is saved first, as logs/<service>.<n>.log.
func (n *Node) DropVolumes(ctx context.Context) error {
	name := n.spec.Name
	if n.proxy {
		return fmt.Errorf("drop volumes of %s: the proxy has no volumes", name)
	}
	if len(n.spec.Volumes) == 0 {
		return nil
	}
	st, err := n.state(ctx)
	if err != nil {
		return fmt.Errorf("drop volumes of %s: inspect the container: %w", name, err)
	}
	if st.Running || st.Paused || st.Restarting {
		return fmt.Errorf("drop volumes of %s: the container is %s; kill or stop it first (its volumes are in use)", name, st.Status)
	}
	n.mu.Lock()
	id, image, cut := n.id, n.image, n.disconnected
	n.mu.Unlock()
	n.saveRetiredLog(ctx, id)
	// Not forced: a container started meanwhile must fail here, not be killed.
	if _, err := n.cli().ContainerRemove(ctx, id, client.ContainerRemoveOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("drop volumes of %s: remove the container: %w", name, err)
	}
	for _, vol := range sortedKeys(n.spec.Volumes) {
		vname := n.env.volumeName(name, vol)
		if _, err := n.cli().VolumeRemove(ctx, vname, client.VolumeRemoveOptions{}); err != nil && !isNotFound(err) {
			return fmt.Errorf("drop volumes of %s: remove volume %s: %w (the container is removed; Start fails until the node is created again)", name, vname, err)
		}
		if err := n.env.createVolume(ctx, name, vol); err != nil {
			return fmt.Errorf("drop volumes of %s: %w", name, err)
		}
	}
	if err := n.create(ctx, image); err != nil {
		return fmt.Errorf("drop volumes of %s: recreate the container: %w", name, err)
	}
	if cut {
		// create joined every network; keep the partition the caller made.
		if err := n.Disconnect(ctx); err != nil {
			return fmt.Errorf("drop volumes of %s: %w", name, err)
		}
	}
	return nil
}
