package scenarios

import (
	"time"

	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// rolling-upgrade: the MTA tier, then the store tier, is rolled node by
// node to its upgrade image (drain at the edge, wait for sessions, stop,
// replace on the same volumes, wait ready, re-enable) while mail flows;
// then both are rolled back the same way. `make rehearse FROM=.. TO=..`
// runs it with other image sets.
//
// A node's roll takes 15-25 s (a 10 s bounded drain: clients keep their
// sessions open, so the drain waits it out; a graceful stop; start; ready),
// a tier's about twice that. The load phase is at least 150 s so that all
// four rolls happen under load; a rollback waits for its tier's upgrade to
// finish (the timeline never acts on a node twice at once).
var _ = define(flow.Scenario{
	Name:        "rolling-upgrade",
	Proves:      "an upgrade rolled node by node under load, and its rollback, lose no accepted mail and clients do not notice",
	Labels:      []string{flow.LabelNightly, flow.LabelUpgrade},
	Rehearsal:   true,
	MinDuration: 150 * time.Second,
	Needs:       flow.Needs{Upgrade: []string{"mta", "store"}, EdgeControl: []string{"drain", "enable", "sessions"}},
	Faults: []flow.FaultAt{
		// Rollback faults are built before the upgrade runs, so they roll
		// back to the image each tier had at the start.
		{At: 0.02, For: 0.3, Spec: "upgrade:mta:drain_timeout=10s"},
		{At: 0.1, For: 0.3, Spec: "upgrade:store:drain_timeout=10s"},
		{At: 0.45, For: 0.25, Spec: "rollback:store:drain_timeout=10s"},
		{At: 0.5, For: 0.25, Spec: "rollback:mta:drain_timeout=10s"},
	},
	// A planned, drained upgrade is invisible to SMTP clients, not only
	// survivable: a drained MTA takes no session with it, so not one SMTP
	// attempt may fail (IMAP clients do lose their long-lived sessions when
	// a store restarts, and reconnect).
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 60s", "smtp_failed_attempts == 0")},
}, StrictGates...)
