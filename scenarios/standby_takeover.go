package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// standby-takeover: the edge's MTA backends are switched to the standby,
// which accepts and holds mail for the primary's domains; when they are
// switched back, the standby's held mail is flushed into the primary.
var _ = define(flow.Scenario{
	Name:   "standby-takeover",
	Proves: "mail accepted by a standby during a takeover reaches the primary's mailboxes after the switch back, once, byte-identical",
	Labels: []string{flow.LabelNightly},
	Needs:  flow.Needs{Roles: []string{"standby"}, EdgeControl: []string{"drain", "enable"}},
	Faults: []flow.FaultAt{{At: 0.2, For: 0.5, Spec: "failover:mta"}},
	Policy: check.Policy{Thresholds: append(append([]string(nil), flow.GateThresholds...),
		"delivery_latency_p99 < 120s")},
}, StrictGates...)
