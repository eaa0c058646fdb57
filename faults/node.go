package faults

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// SMTPCutToxic is the Toxiproxy toxic type of the end-of-DATA cut, served by
// the toxiproxy built from faults/cmd/toxiproxy.
const SMTPCutToxic = "smtp_data_cut"

// nodeOp is one way of breaking a node.
type nodeOp struct {
	name, summary string
	params        []Param
	inject        func(ctx context.Context, n Node, p Values) error
	// heal restores the node; every heal ends with the node ready.
	heal func(ctx context.Context, n Node, p Values) error
}

func init() {
	for _, op := range []nodeOp{
		{name: "kill", summary: "SIGKILL a node; heal starts it again",
			inject: func(ctx context.Context, n Node, _ Values) error { return n.Kill(ctx) },
			heal:   startIfDown},
		{name: "stop", summary: "stop a node gracefully; heal starts it again",
			inject: func(ctx context.Context, n Node, _ Values) error { return n.Stop(ctx) },
			heal:   startIfDown},
		{name: "restart", summary: "restart a node (graceful stop, start); heal waits until it is ready",
			inject: func(ctx context.Context, n Node, _ Values) error { return n.Restart(ctx) },
			heal:   startIfDown},
		{name: "pause", summary: "freeze a node's processes (SIGSTOP via cgroup freezer); heal unpauses",
			inject: func(ctx context.Context, n Node, _ Values) error { return n.Pause(ctx) },
			heal: func(ctx context.Context, n Node, p Values) error {
				if err := n.Unpause(ctx); err != nil && !isNotPaused(err) {
					return fmt.Errorf("unpause %s: %w", n.Name(), err)
				}
				return startIfDown(ctx, n, p)
			}},
		{name: "kill-process", summary: "SIGKILL one process inside a node (pkill -KILL -x <process>); heal restarts the node if it is not ready",
			params: []Param{{Name: "process", Type: String, Help: "exact process name, e.g. imap or master"}},
			inject: killProcess,
			heal: func(ctx context.Context, n Node, p Values) error {
				// A supervisor inside the node may restart the process by
				// itself; only restart the node if it is not ready soon.
				rctx, cancel := context.WithTimeout(ctx, p.Duration("grace"))
				err := n.WaitReady(rctx)
				cancel()
				if err == nil {
					return nil
				}
				if err := n.Restart(ctx); err != nil {
					return fmt.Errorf("restart %s: %w", n.Name(), err)
				}
				return nil
			}},
	} {
		op := op
		params := op.params
		if op.name == "kill-process" {
			params = append(params, Param{Name: "grace", Type: Duration, Default: "3s",
				Help: "how long heal waits for the node to recover by itself before restarting it"})
		}
		Register(&Kind{Name: op.name, Class: "node", Summary: op.summary, Target: TargetNode, Params: params,
			New: func(env Env, target string, p Values) (Fault, error) {
				n, err := env.Node(target)
				if err != nil {
					return nil, nodeNotFound(env, target, err)
				}
				return &NodeFault{op: op, node: n, p: p}, nil
			}})
	}
	Register(&Kind{Name: "disconnect", Class: "partition", Target: TargetNode,
		Summary: "hard partition: disconnect a node from its Docker networks; heal reconnects it",
		New: func(env Env, target string, p Values) (Fault, error) {
			n, err := env.Node(target)
			if err != nil {
				return nil, nodeNotFound(env, target, err)
			}
			return &NodeFault{node: n, p: p, op: nodeOp{name: "disconnect",
				inject: func(ctx context.Context, n Node, _ Values) error { return n.Disconnect(ctx) },
				heal: func(ctx context.Context, n Node, _ Values) error {
					if err := n.Connect(ctx); err != nil && !isAlready(err) {
						return err
					}
					return n.WaitReady(ctx)
				}}}, nil
		}})
}

// killProcess SIGKILLs a process in a node and reports what happened, not
// what pkill said: killing the node's main process can take the container
// down with it, and the exec'd pkill then dies too (exit 137, or an exec
// error) although the kill worked. So the process must exist first (else
// the fault would do nothing), and after a pkill that did not exit 0 the
// fault succeeded if the process is gone or the node stopped running.
func killProcess(ctx context.Context, n Node, p Values) error {
	proc := p.String("process")
	if code, out, err := n.Exec(ctx, []string{"pgrep", "-x", proc}); err != nil {
		return fmt.Errorf("look for process %s in %s: %w", proc, n.Name(), err)
	} else if code != 0 {
		return fmt.Errorf("no process %s in %s (pgrep -x exit %d) %s: the fault would do nothing", proc, n.Name(), code, strings.TrimSpace(out))
	}
	code, out, err := n.Exec(ctx, []string{"pkill", "-KILL", "-x", proc})
	if err == nil && code == 0 {
		return nil
	}
	gone, verr := processGone(ctx, n, proc)
	if verr != nil {
		return fmt.Errorf("pkill -x %s in %s: exit %d %v %s; and could not check the process: %w", proc, n.Name(), code, err, strings.TrimSpace(out), verr)
	}
	if !gone {
		return fmt.Errorf("pkill -x %s in %s: exit %d %v %s: the process is still running", proc, n.Name(), code, err, strings.TrimSpace(out))
	}
	return nil
}

// processGone reports whether no process named proc runs in n; a node
// that no longer runs (its exec fails or is killed) has none.
func processGone(ctx context.Context, n Node, proc string) (bool, error) {
	code, _, err := n.Exec(ctx, []string{"pgrep", "-x", proc})
	switch {
	case err != nil:
		// A node whose container stopped has no process left; any other
		// exec failure says nothing about the process.
		if rc, ok := n.(RunChecker); ok {
			if running, rerr := rc.Running(ctx); rerr == nil && !running {
				return true, nil
			}
		}
		return false, err
	case code == 0:
		return false, nil
	case code == 1:
		return true, nil
	default:
		// 137 and the like: the exec died with the container.
		return code > 128, nil
	}
}

func nodeNotFound(env Env, name string, err error) error {
	return notFound("node", name, err, env.Nodes())
}

// notFound names what a spec asked for and lists what the stack has, so a
// typo in a target is fixed from the error alone.
func notFound[T interface{ Name() string }](kind, name string, err error, have []T) error {
	names := make([]string, 0, len(have))
	for _, h := range have {
		names = append(names, h.Name())
	}
	sort.Strings(names)
	return fmt.Errorf("%s %q: %w; %ss: %s", kind, name, err, kind, strings.Join(names, ", "))
}

// startIfDown makes a node ready: if it already answers its readiness
// probe nothing is done, else it is started (Start waits until ready).
func startIfDown(ctx context.Context, n Node, _ Values) error {
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := n.WaitReady(rctx)
	cancel()
	if err == nil {
		return nil
	}
	if err := n.Start(ctx); err != nil {
		return fmt.Errorf("start %s: %w", n.Name(), err)
	}
	return nil
}

func isNotPaused(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "not paused")
}

func isAlready(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "already")
}

// NodeFault breaks one node in one way (kill, stop, restart, pause,
// kill-process, disconnect); its heal leaves the node ready.
type NodeFault struct {
	op   nodeOp
	node Node
	p    Values
}

var _ HealObserver = (*NodeFault)(nil)

// Name returns the fault kind.
func (f *NodeFault) Name() string { return f.op.name }

// Target returns the node name.
func (f *NodeFault) Target() string { return f.node.Name() }

// Inject breaks the node.
func (f *NodeFault) Inject(ctx context.Context) error {
	if err := f.op.inject(ctx, f.node, f.p); err != nil {
		return fmt.Errorf("%s %s: %w", f.op.name, f.node.Name(), err)
	}
	return nil
}

// Heal restores the node.
func (f *NodeFault) Heal(ctx context.Context) error {
	if err := f.op.heal(ctx, f.node, f.p); err != nil {
		return fmt.Errorf("heal %s %s: %w", f.op.name, f.node.Name(), err)
	}
	return nil
}

// AwaitHealed verifies the node answers its readiness probe.
func (f *NodeFault) AwaitHealed(ctx context.Context) error {
	return waitReady(ctx, f.node)
}

// errNoCapability says a handle lacks an optional capability a fault needs.
var errNoCapability = errors.New("not supported by this environment")

// waitReady verifies that every node answers its readiness probe: the heal
// check shared by the faults that take nodes down.
func waitReady(ctx context.Context, nodes ...Node) error {
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			return fmt.Errorf("node %s ready: %w", n.Name(), err)
		}
	}
	return nil
}
