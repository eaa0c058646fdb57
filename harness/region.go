package harness

import (
	"context"
	"fmt"
)

// Region is the handle of every service of one region.
type Region struct {
	env  *Env
	name string
}

// Name returns the region name.
func (r *Region) Name() string { return r.name }

// Nodes returns the region's nodes in start order.
func (r *Region) Nodes() []*Node {
	var out []*Node
	for _, n := range r.env.Nodes() {
		if n.spec.Region == r.name {
			out = append(out, n)
		}
	}
	return out
}

func (r *Region) names() []string {
	var out []string
	for _, n := range r.Nodes() {
		out = append(out, n.Name())
	}
	return out
}

func (r *Region) each(ctx context.Context, verb string, fn func(*Node, context.Context) error) error {
	err := parallel(ctx, r.names(), func(ctx context.Context, name string) error {
		return fn(r.env.nodes[name], ctx)
	})
	if err != nil {
		return fmt.Errorf("%s region %s: %w", verb, r.name, err)
	}
	return nil
}

// Kill kills every node of the region at once.
func (r *Region) Kill(ctx context.Context) error { return r.each(ctx, "kill", (*Node).Kill) }

// Stop stops every node of the region gracefully, in parallel.
func (r *Region) Stop(ctx context.Context) error { return r.each(ctx, "stop", (*Node).Stop) }

// Start starts the region's nodes in depends_on order (in parallel where
// independent) and waits until all are ready.
func (r *Region) Start(ctx context.Context) error {
	if err := r.env.startInOrder(ctx, r.names()); err != nil {
		return fmt.Errorf("start region %s: %w", r.name, err)
	}
	return nil
}

// Disconnect partitions every node of the region from all its networks.
func (r *Region) Disconnect(ctx context.Context) error {
	return r.each(ctx, "disconnect", (*Node).Disconnect)
}

// Connect rejoins every node of the region to its networks.
func (r *Region) Connect(ctx context.Context) error { return r.each(ctx, "connect", (*Node).Connect) }
