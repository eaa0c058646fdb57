package faults

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// PollInterval is how often faults re-check an effect they wait for.
var PollInterval = 20 * time.Millisecond

// poll calls check until it returns nil or ctx ends; it returns the last
// check error wrapped with what, so a timeout says what was not observed.
func poll(ctx context.Context, what string, check func(context.Context) error) error {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not observed before %v: %w", what, context.Cause(ctx), last)
		case <-t.C:
		}
	}
}

// boundedCtx derives a context that ends after d (when d > 0).
func boundedCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

var toxicSeq atomic.Uint64

// toxicName returns a toxic name unique in this process, so overlapping
// faults on one link never collide.
func toxicName(kind, stream string) string {
	return fmt.Sprintf("mc-%s-%s-%d", kind, stream, toxicSeq.Add(1))
}
