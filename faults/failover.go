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
	Register(&Kind{Name: "failover", Class: "failover", Target: TargetRole,
		Summary: "switch the edge from a tier's nodes to a standby node; heal switches back and flushes the standby's held mail into the primary",
		Params: []Param{
			{Name: "standby", Type: String, Optional: true, Help: "the standby node (default: the only node with role standby)"},
			{Name: "drain_timeout", Type: Duration, Default: "30s", Help: "bounded wait for sessions on drained backends"},
			{Name: "flush", Type: String, Default: "mailchaos-flush",
				Help: "program run in the standby on heal: releases held mail to the primary, exits 0 once its queue is empty"},
		},
		New: newFailover})
}

func newFailover(env Env, role string, p Values) (Fault, error) {
	e, err := env.Edge()
	if err != nil {
		return nil, fmt.Errorf("failover needs the edge: %w", err)
	}
	f := &Failover{role: role, edge: e, drainTimeout: p.Duration("drain_timeout"), flush: p.String("flush")}
	var standbys []string
	for _, n := range env.Nodes() {
		switch {
		case n.Role() == role:
			f.primaries = append(f.primaries, n)
		case n.Role() == "standby":
			standbys = append(standbys, n.Name())
		}
	}
	sort.Slice(f.primaries, func(i, j int) bool { return f.primaries[i].Name() < f.primaries[j].Name() })
	if len(f.primaries) == 0 {
		return nil, fmt.Errorf("no node has role %q", role)
	}
	name := p.String("standby")
	if name == "" {
		if len(standbys) != 1 {
			return nil, fmt.Errorf("need exactly one node with role standby (found %d: %s) or standby=<node>", len(standbys), strings.Join(standbys, ", "))
		}
		name = standbys[0]
	}
	if f.standby, err = env.Node(name); err != nil {
		return nil, nodeNotFound(env, name, err)
	}
	return f, nil
}

// Failover switches the edge's backends of a tier to a standby node: the
// standby is enabled at the edge, then every primary is drained. Heal
// enables the primaries, drains the standby, and runs the flush program in
// it so the mail it held reaches the primary's mailboxes.
type Failover struct {
	role         string
	edge         Edge
	primaries    []Node
	standby      Node
	drainTimeout time.Duration
	flush        string
}

var (
	_ HealObserver = (*Failover)(nil)
	_ Footprinter  = (*Failover)(nil)
)

// Name returns "failover".
func (f *Failover) Name() string { return "failover" }

// Target returns the primary tier's role.
func (f *Failover) Target() string { return f.role }

// Footprint names the tier's nodes and the standby.
func (f *Failover) Footprint() []string {
	out := []string{f.role, f.standby.Name()}
	for _, n := range f.primaries {
		out = append(out, n.Name())
	}
	return out
}

// Inject enables the standby first, so that the edge always has a backend,
// then drains the primaries and waits (bounded) for their sessions to end.
func (f *Failover) Inject(ctx context.Context) error {
	if err := f.edge.Enable(ctx, f.standby.Name()); err != nil {
		return fmt.Errorf("enable standby %s at the edge: %w", f.standby.Name(), err)
	}
	for _, n := range f.primaries {
		if err := f.edge.Drain(ctx, n.Name()); err != nil {
			return fmt.Errorf("drain %s at the edge: %w", n.Name(), err)
		}
	}
	for _, n := range f.primaries {
		waitSessions(ctx, f.edge, n.Name(), f.drainTimeout)
	}
	return nil
}

// Heal switches back and flushes the standby.
func (f *Failover) Heal(ctx context.Context) error {
	var errs []error
	for _, n := range f.primaries {
		if err := f.edge.Enable(ctx, n.Name()); err != nil {
			errs = append(errs, fmt.Errorf("enable %s at the edge: %w", n.Name(), err))
		}
	}
	if err := f.edge.Drain(ctx, f.standby.Name()); err != nil {
		errs = append(errs, fmt.Errorf("drain standby %s at the edge: %w", f.standby.Name(), err))
	}
	waitSessions(ctx, f.edge, f.standby.Name(), f.drainTimeout)
	code, out, err := f.standby.Exec(ctx, []string{f.flush})
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("flush standby %s: %w", f.standby.Name(), err))
	case code != 0:
		errs = append(errs, fmt.Errorf("flush standby %s: %s exited %d: %s", f.standby.Name(), f.flush, code, strings.TrimSpace(out)))
	}
	return errors.Join(errs...)
}

// AwaitHealed verifies the primaries are ready.
func (f *Failover) AwaitHealed(ctx context.Context) error {
	return waitReady(ctx, f.primaries...)
}
