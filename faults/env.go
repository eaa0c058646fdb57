package faults

import (
	"context"
	"time"

	"github.com/mailchaos/mailchaos/history"
)

// Env is what faults need from a running stack: handles looked up by name.
// *harness.Env satisfies it through the adapter in faults/harnessenv; tests
// use fakes. Listings must be stable (the nemesis sorts them anyway).
type Env interface {
	Node(name string) (Node, error)
	Nodes() []Node
	Region(name string) (Region, error)
	Regions() []Region
	Link(name string) (Link, error)
	Links() []Link
	Edge() (Edge, error)
}

// Node is one container of the stack, with the lifecycle operations of the
// harness. Start, Restart and Replace wait until the node is ready.
type Node interface {
	Name() string
	Region() string
	Role() string
	Image() string
	UpgradeImage() string
	Kill(ctx context.Context) error
	Stop(ctx context.Context) error
	Start(ctx context.Context) error
	Restart(ctx context.Context) error
	Pause(ctx context.Context) error
	Unpause(ctx context.Context) error
	WaitReady(ctx context.Context) error
	Exec(ctx context.Context, cmd []string) (exitCode int, output string, err error)
	Replace(ctx context.Context, image string) error
	Disconnect(ctx context.Context) error
	Connect(ctx context.Context) error
}

// Region is a group of nodes on one network; its operations act on all of
// its nodes.
type Region interface {
	Name() string
	Nodes() []Node
	Kill(ctx context.Context) error
	Stop(ctx context.Context) error
	Start(ctx context.Context) error
	Disconnect(ctx context.Context) error
	Connect(ctx context.Context) error
}

// Link is one Toxiproxy proxy between two parts of the stack.
type Link interface {
	Name() string
	From() string
	To() string
	Listen() int
	Upstream() string
	AddToxic(ctx context.Context, t Toxic) error
	RemoveToxic(ctx context.Context, name string) error
	SetEnabled(ctx context.Context, enabled bool) error
}

// Toxic is a Toxiproxy toxic as the harness's Link.AddToxic takes it.
type Toxic struct {
	// Name identifies the toxic on its link; faults make it unique.
	Name string
	// Type is the Toxiproxy toxic type (latency, timeout, smtp_data_cut...).
	Type string
	// Stream is "upstream" (client to server) or "downstream".
	Stream string
	// Toxicity is the fraction of connections the toxic applies to (0..1].
	Toxicity float32
	// Attributes are the toxic's parameters, as Toxiproxy's JSON API names them.
	Attributes map[string]any
}

// Edge is the client-facing load balancer's control surface.
type Edge interface {
	Drain(ctx context.Context, node string) error
	Enable(ctx context.Context, node string) error
	Sessions(ctx context.Context, node string) (int, error)
}

// ServingEdge is an Edge that can tell whether it sends new sessions to a
// node again (enabled, health checks passing); CanTellServing is false
// when the stack gives no way to ask.
type ServingEdge interface {
	CanTellServing() bool
	Serving(ctx context.Context, node string) (bool, error)
}

// Quiescer is a Node that can tell it holds no work in flight (an MTA
// whose queue is empty); CanQuiesce is false when the stack gives no way
// to ask.
type Quiescer interface {
	CanQuiesce() bool
	Quiesced(ctx context.Context) (bool, error)
}

// Optional capabilities of the handles above, checked with a type assertion.
// The harness adapter implements those it can; a fault that needs one
// reports a clear error when building if it is missing.

// Prober is a Link that can check, once and quickly, that traffic passes
// through it (connect through the proxy and, where the upstream speaks
// first, read its banner). Faults use it to observe their effect and to
// verify a heal.
type Prober interface {
	Probe(ctx context.Context) error
}

// RunChecker is a Node that can tell whether its container runs at all,
// which a fault needs when its exec died with the container it acted on.
type RunChecker interface {
	Running(ctx context.Context) (bool, error)
}

// VolumeDropper is a Node whose volumes can be deleted and recreated empty
// while it is stopped: what region destruction needs.
type VolumeDropper interface {
	DropVolumes(ctx context.Context) error
}

// BaseImager is a Node that knows the image it was declared with (the
// descriptor's image), which a rollback returns to even when it is built
// after an upgrade, when Image() already names the upgrade image.
type BaseImager interface {
	BaseImage() string
}

// EventSink receives one record per fault inject and heal: kind is
// history.KindFaultInject or history.KindFaultHeal, name the fault kind, target what it hits, start
// the call and end the observed effect; err is non-nil if the step failed.
// *history.Writer satisfies it.
type EventSink interface {
	Event(kind history.Kind, name, target string, start, end time.Time, err error) error
}
