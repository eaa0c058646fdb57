package scenarios

import (
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// region-destruction: the primary region is lost with its disks and rebuilt empty.
// What was accepted there and not yet replicated is gone: the scenario
// measures that recovery point and reports it rather than asserting zero.
// What it does assert: nothing duplicated, corrupted or invented, and
// clients back within a minute.
var _ = define(flow.Scenario{
	Name:   "region-destruction",
	Proves: "the recovery point of losing a region's disks is measured (messages lost with them), and the surviving region serves clients within a bound",
	Labels: []string{flow.LabelDR},
	Needs:  flow.Needs{Regions: 2},
	Faults: []flow.FaultAt{{At: 0.3, For: 0.4, Spec: "region-destroy:region=primary"}},
	Policy: check.Policy{
		AllowClientDowntime: true,
		Thresholds: []string{
			"final_read == 1", "accepted > 0",
			"duplicated == 0", "corrupted == 0", "unexpected == 0",
			"client_visible_downtime_max < 60s",
		},
	},
}, Gate{"reports its recovery point", RecoveryPointMeasured}, Thresholds)
