package harness

import (
	"context"
	"fmt"
	"log/slog"
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
