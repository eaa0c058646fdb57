package faults

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

func init() {
	params := []Param{
		{Name: "drain_timeout", Type: Duration, Default: "30s",
			Help: "bounded wait for a drained node's sessions to reach 0 before it is stopped anyway"},
		{Name: "drain", Type: Bool, Default: "true", Help: "drain and re-enable each node at the edge (false for nodes not behind it)"},
	}
	Register(&Kind{Name: "upgrade", Class: "upgrade", Target: TargetRole,
		Summary: "rolling upgrade of a tier to its upgrade image, node by node: drain, wait for sessions, stop, replace, wait ready, enable",
		Params: append(append([]Param(nil), params...),
			Param{Name: "rollback", Type: Bool, Default: "false", Help: "heal rolls the tier back to its old image"}),
		New: func(env Env, target string, p Values) (Fault, error) {
			return newRoll(env, target, p, true)
		}})
	Register(&Kind{Name: "rollback", Class: "upgrade", Target: TargetRole,
		Summary: "rolling rollback of a tier to the image it had when the fault was built, node by node like upgrade",
		Params:  params,
		New: func(env Env, target string, p Values) (Fault, error) {
			return newRoll(env, target, p, false)
		}})
}

func newRoll(env Env, role string, p Values, forward bool) (Fault, error) {
	f := &RollingUpgrade{role: role, forward: forward, rollback: p.Bool("rollback"),
		drainTimeout: p.Duration("drain_timeout"), drain: p.Bool("drain") && role != "edge"}
	f.kind = "upgrade"
	if !forward {
		f.kind = "rollback"
	}
	roles := map[string]bool{}
	for _, n := range env.Nodes() {
		roles[n.Role()] = true
		if n.Role() != role {
			continue
		}
		if n.UpgradeImage() == "" {
			return nil, fmt.Errorf("node %s has no upgrade image (upgrade_image in the descriptor)", n.Name())
		}
		// The old image is the declared one when the node knows it, else
		// the one it runs now, captured at build time.
		old := n.Image()
		if b, ok := n.(BaseImager); ok && b.BaseImage() != "" {
			old = b.BaseImage()
		}
		f.nodes = append(f.nodes, n)
		f.oldImage = append(f.oldImage, old)
		f.newImage = append(f.newImage, n.UpgradeImage())
	}
	if len(f.nodes) == 0 {
		var names []string
		for r := range roles {
			names = append(names, r)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("no node has role %q; roles: %s", role, strings.Join(names, ", "))
	}
	// Nodes roll in name order, so the order is the same every run.
	idx := make([]int, len(f.nodes))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return f.nodes[idx[a]].Name() < f.nodes[idx[b]].Name() })
	nodes, olds, news := make([]Node, len(idx)), make([]string, len(idx)), make([]string, len(idx))
	for i, j := range idx {
		nodes[i], olds[i], news[i] = f.nodes[j], f.oldImage[j], f.newImage[j]
	}
	f.nodes, f.oldImage, f.newImage = nodes, olds, news
	if f.drain {
		e, err := env.Edge()
		if err != nil {
			return nil, fmt.Errorf("rolling %s needs the edge to drain nodes (or drain=false): %w", role, err)
		}
		f.edge = e
	}
	return f, nil
}

// RollingUpgrade replaces every node of a tier with another image, one node
// at a time, each drained at the edge first so no client session is cut.
// Inject rolls forward (upgrade) or back (rollback). Heal makes sure every
// node of the tier runs and is enabled at the edge; with rollback=true it
// rolls the tier back to its old image.
type RollingUpgrade struct {
	kind         string
	role         string
	forward      bool
	rollback     bool
	drain        bool
	drainTimeout time.Duration
	edge         Edge
	nodes        []Node
	oldImage     []string
	newImage     []string
}

var (
	_ HealObserver = (*RollingUpgrade)(nil)
	_ Footprinter  = (*RollingUpgrade)(nil)
)

// Name returns "upgrade" or "rollback".
func (f *RollingUpgrade) Name() string { return f.kind }

// Target returns the role (tier).
func (f *RollingUpgrade) Target() string { return f.role }

// Footprint names the tier's nodes.
func (f *RollingUpgrade) Footprint() []string {
	out := []string{f.role}
	for _, n := range f.nodes {
		out = append(out, n.Name())
	}
	return out
}

// Inject rolls the tier to its upgrade image (upgrade) or its old image (rollback).
func (f *RollingUpgrade) Inject(ctx context.Context) error {
	if f.forward {
		return f.roll(ctx, f.newImage)
	}
	return f.roll(ctx, f.oldImage)
}

// Heal rolls back (upgrade with rollback=true) or repairs the tier: any
// node left down by an aborted roll is started and enabled again.
func (f *RollingUpgrade) Heal(ctx context.Context) error {
	if f.forward && f.rollback {
		return f.roll(ctx, f.oldImage)
	}
	var errs []error
	for _, n := range f.nodes {
		if err := startIfDown(ctx, n, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		if f.drain {
			if err := f.edge.Enable(ctx, n.Name()); err != nil {
				errs = append(errs, fmt.Errorf("enable %s at the edge: %w", n.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// AwaitHealed verifies every node of the tier is ready.
func (f *RollingUpgrade) AwaitHealed(ctx context.Context) error {
	return waitReady(ctx, f.nodes...)
}

func (f *RollingUpgrade) roll(ctx context.Context, images []string) error {
	log := logger(ctx).With("fault", f.kind, "role", f.role)
	for i, n := range f.nodes {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s %s: aborted before %s: %w", f.kind, f.role, n.Name(), err)
		}
		log.Info("rolling node", "node", n.Name(), "image", images[i], "step", i+1, "of", len(f.nodes))
		if err := f.rollNode(ctx, n, images[i]); err != nil {
			return fmt.Errorf("%s %s: node %s: %w", f.kind, f.role, n.Name(), err)
		}
	}
	return nil
}

func (f *RollingUpgrade) rollNode(ctx context.Context, n Node, image string) error {
	if f.drain {
		if err := f.edge.Drain(ctx, n.Name()); err != nil {
			return fmt.Errorf("drain at the edge: %w", err)
		}
		waitSessions(ctx, f.edge, n.Name(), f.drainTimeout)
		waitQuiesced(ctx, n, f.drainTimeout)
	}
	if err := n.Stop(ctx); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if err := n.Replace(ctx, image); err != nil {
		return fmt.Errorf("replace with %s: %w", image, err)
	}
	if err := n.WaitReady(ctx); err != nil {
		return fmt.Errorf("wait ready: %w", err)
	}
	if f.drain {
		if err := f.edge.Enable(ctx, n.Name()); err != nil {
			return fmt.Errorf("enable at the edge: %w", err)
		}
		if err := waitServing(ctx, f.edge, n.Name()); err != nil {
			return err
		}
	}
	return nil
}

// servingTimeout bounds the wait for the edge to send sessions to a
// re-enabled node: its health checks take a few seconds to pass.
const servingTimeout = 30 * time.Second

// waitServing waits until the edge sends new sessions to node again, where
// the edge can tell: draining the next node before then leaves the edge
// no server for new sessions (clients see their connections closed).
func waitServing(ctx context.Context, e Edge, node string) error {
	se, ok := e.(ServingEdge)
	if !ok || !se.CanTellServing() {
		return nil
	}
	start := time.Now()
	wctx, cancel := boundedCtx(ctx, servingTimeout)
	defer cancel()
	err := poll(wctx, "edge serving "+node, func(ctx context.Context) error {
		ok, err := se.Serving(ctx, node)
		if err == nil && !ok {
			err = errors.New("not serving yet")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("enable at the edge: %w", err)
	}
	logger(ctx).Info("edge serving", "node", node, "waited", time.Since(start).Round(time.Millisecond))
	return nil
}

// waitQuiesced waits, bounded by timeout, until a drained node holds no
// work in flight, where the stack can tell (an MTA's queue is empty: a
// message leaves it only once delivered, so none is mid-delivery when the
// node stops). Giving up is logged, not an error, as for the drain.
func waitQuiesced(ctx context.Context, n Node, timeout time.Duration) {
	q, ok := n.(Quiescer)
	if !ok || !q.CanQuiesce() {
		return
	}
	log := logger(ctx)
	wctx, cancel := boundedCtx(ctx, timeout)
	defer cancel()
	start := time.Now()
	err := poll(wctx, n.Name()+" quiesced", func(ctx context.Context) error {
		ok, err := q.Quiesced(ctx)
		if err == nil && !ok {
			err = errors.New("work in flight")
		}
		return err
	})
	if err != nil {
		log.Warn("quiesce wait gave up; stopping anyway", "node", n.Name(), "waited", time.Since(start).Round(time.Millisecond), "err", err)
		return
	}
	log.Info("quiesced", "node", n.Name(), "waited", time.Since(start).Round(time.Millisecond))
}

// waitSessions waits, bounded by timeout, until the edge reports no open
// session to node. Giving up is logged, not an error: a drain that does
// not finish must not hang the run, and the cut sessions show up in the
// history as client errors.
func waitSessions(ctx context.Context, e Edge, node string, timeout time.Duration) {
	log := logger(ctx)
	wctx, cancel := boundedCtx(ctx, timeout)
	defer cancel()
	start := time.Now()
	last := -1
	err := poll(wctx, "sessions to "+node+" drained", func(ctx context.Context) error {
		n, err := e.Sessions(ctx, node)
		if err != nil {
			return err
		}
		last = n
		if n > 0 {
			return fmt.Errorf("%d sessions open", n)
		}
		return nil
	})
	if err != nil {
		log.Warn("drain wait gave up; going on with sessions open", "node", node, "sessions", last, "waited", time.Since(start).Round(time.Millisecond), "err", err)
		return
	}
	log.Info("drained", "node", node, "waited", time.Since(start).Round(time.Millisecond))
}
