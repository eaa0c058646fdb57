package flow

import (
	"errors"
	"log/slog"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/loadgen/history"
)

// ErrNoTraffic is returned while the load generator offers no SMTP/IMAP
// traffic API: a scenario cannot pass without traffic, so it fails in
// set-up with this reason (a harness failure, exit code 2).
var ErrNoTraffic = errors.New("loadgen: no SMTP senders or IMAP clients to drive yet (loadgen API not landed)")

// ErrNoFaultEnv is returned while faults has no adapter over *harness.Env.
var ErrNoFaultEnv = errors.New("faults: no adapter from *harness.Env to faults.Env yet (faults/harnessenv not landed)")

// NewTraffic connects the load generator to a running stack, recording
// into w.
func NewTraffic(env *harness.Env, w *history.Writer, p Params, log *slog.Logger) (Traffic, error) {
	return nil, ErrNoTraffic
}

// NewFaultEnv adapts a running stack to what the fault kinds need.
func NewFaultEnv(env *harness.Env) (faults.Env, error) {
	return nil, ErrNoFaultEnv
}
