package harness

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/moby/moby/client"
)

// Clean removes every container, network and volume labelled with runID,
// or with any mailchaos run when runID is "": what an earlier crashed run
// left behind. It does not save logs.
func Clean(ctx context.Context, runID string) error {
	_, err := CleanReport(ctx, runID)
	return err
}

// CleanReport is Clean that also says what was removed.
func CleanReport(ctx context.Context, runID string) (Removed, error) {
	cli, err := connectDocker(ctx)
	if err != nil {
		return Removed{}, err
	}
	defer cli.Close()
	r, err := removeRun(ctx, cli, runID)
	if err != nil {
		return r, fmt.Errorf("clean: %w", err)
	}
	slog.Debug("clean", "run", runID, "removed", r.String())
	return r, nil
}

// Remaining counts the containers, networks and volumes labelled with runID
// (with any mailchaos run when runID is "") that are still on the engine:
// what Clean would remove. After a Teardown it is zero; a holder of a
// stack polls it to notice that someone else removed the stack.
func Remaining(ctx context.Context, runID string) (Removed, error) {
	cli, err := connectDocker(ctx)
	if err != nil {
		return Removed{}, err
	}
	defer cli.Close()
	label := LabelRun
	if runID != "" {
		label += "=" + runID
	}
	f := make(client.Filters).Add("label", label)
	var r Removed
	c, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return r, fmt.Errorf("list containers: %w", err)
	}
	n, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return r, fmt.Errorf("list networks: %w", err)
	}
	v, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return r, fmt.Errorf("list volumes: %w", err)
	}
	r.Containers, r.Networks, r.Volumes = len(c.Items), len(n.Items), len(v.Items)
	return r, nil
}
