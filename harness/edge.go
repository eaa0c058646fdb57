package harness

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Edge is the handle of the service with role edge; it runs the
// descriptor's control commands inside the edge container.
type Edge struct {
	node *Node
}

// Node returns the edge's node.
func (e *Edge) Node() *Node { return e.node }

// controlData is what control command templates see.
type controlData struct {
	// Node is the target service name.
	Node  string
	RunID string
}

func (e *Edge) run(ctx context.Context, verb string, cmd []string, node string) (string, error) {
	if _, err := e.node.env.Node(node); err != nil {
		return "", fmt.Errorf("edge %s: %w", verb, err)
	}
	if len(cmd) == 0 {
		return "", fmt.Errorf("edge %s %s: the descriptor has no control.%s command for %s", verb, node, verb, e.node.Name())
	}
	args, err := renderArgs(cmd, controlData{Node: node, RunID: e.node.env.runID})
	if err != nil {
		return "", fmt.Errorf("edge %s %s: %w", verb, node, err)
	}
	code, out, err := e.node.Exec(ctx, args)
	if err != nil {
		return out, fmt.Errorf("edge %s %s: %w", verb, node, err)
	}
	if code != 0 {
		return out, fmt.Errorf("edge %s %s: %w", verb, node, &controlExitError{code: code, out: strings.TrimSpace(out)})
	}
	return out, nil
}

// controlExitError is a control command that exited non-zero.
type controlExitError struct {
	code int
	out  string
}

func (e *controlExitError) Error() string {
	return fmt.Sprintf("control command exited %d: %s", e.code, e.out)
}

func (e *Edge) control() *ControlSpec {
	if e.node.spec.Control == nil {
		return &ControlSpec{}
	}
	return e.node.spec.Control
}

// Drain stops the edge from sending new sessions to node.
func (e *Edge) Drain(ctx context.Context, node string) error {
	_, err := e.run(ctx, "drain", e.control().Drain, node)
	return err
}

// Enable lets the edge send sessions to node again.
func (e *Edge) Enable(ctx context.Context, node string) error {
	_, err := e.run(ctx, "enable", e.control().Enable, node)
	return err
}

// Sessions returns the number of open sessions from the edge to node.
func (e *Edge) Sessions(ctx context.Context, node string) (int, error) {
	out, err := e.run(ctx, "sessions", e.control().Sessions, node)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return 0, fmt.Errorf("edge sessions %s: control command printed %q, not one integer", node, strings.TrimSpace(out))
	}
	return n, nil
}

// CanTellServing reports whether the descriptor gives a control.serving command.
func (e *Edge) CanTellServing() bool { return len(e.control().Serving) > 0 }

// Serving reports whether the edge sends new sessions to node: the
// control.serving command exits 0 (true) or 1 (false).
func (e *Edge) Serving(ctx context.Context, node string) (bool, error) {
	_, err := e.run(ctx, "serving", e.control().Serving, node)
	var exit *controlExitError
	if errors.As(err, &exit) && exit.code == 1 {
		return false, nil
	}
	return err == nil, err
}
