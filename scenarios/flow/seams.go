package flow

import (
	"log/slog"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/faults/harnessenv"
	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/history"
)

// NewTraffic connects the load generator to a running stack, recording
// into w.
func NewTraffic(env *harness.Env, w *history.Writer, p Params, log *slog.Logger) (Traffic, error) {
	return newStackTraffic(env, w, p, log)
}

// NewFaultEnv adapts a running stack to what the fault kinds need.
func NewFaultEnv(env *harness.Env) (faults.Env, error) {
	return harnessenv.New(env), nil
}
