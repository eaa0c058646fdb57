package faults

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// concurrently runs fn for every item at once and joins every error (each
// names its item): a step over many links or nodes takes as long as the
// slowest of them, and no failure hides another.
func concurrently[T any](items []T, fn func(T) error) error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(it)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
