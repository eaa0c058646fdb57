// Package defects is the proof that the harness catches what it claims to:
// a catalog of stack variants, each the reference stack with one seeded,
// realistic defect (fixtures/stacks/defects/<variant>/), the scenario that
// must expose it and the finding it must produce; the classification of a
// run's verdict into findings; and the table `mailchaos defects` prints and
// writes (variant, scenario, expected finding, actual finding, caught).
//
// The same scenarios run against the clean reference stack: a finding there
// is a false alarm. A defect counts as detected only when its run fails
// with the expected finding; a harness failure (exit code 2) is neither a
// detection nor a clean pass.
package defects

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The finding classes: what a failed gate says about the system under
// test, named after the ledger classes and checks of reports/check.
const (
	// Lost: an accepted message is missing from the final read.
	Lost = "lost"
	// Duplicated: more copies than the accepted attempts explain.
	Duplicated = "duplicated"
	// Corrupted: a copy whose body hash differs from the one sent.
	Corrupted = "corrupted"
	// Unexpected: a message in a mailbox it was never sent to.
	Unexpected = "unexpected"
	// Late: a message absent from the first complete final-read round.
	Late = "late"
	// RecoveredDuplicate: a duplicate of an indeterminate send, where the policy rejects them.
	RecoveredDuplicate = "recovered-duplicate"
	// ReplicaMissing: a mailbox replica, read directly, lacks a message the
	// final read found, or holds it with a different body.
	ReplicaMissing = "replica-missing"
	// IMAPInvariant: UIDVALIDITY changed, a UID was reused or out of order,
	// an expunged message reappeared or set flags were lost.
	IMAPInvariant = "imap-invariant"
	// Downtime: a client following the retry policy could not complete an operation.
	Downtime = "client-visible-downtime"
	// DeliveryLatency: a delivery_latency threshold failed.
	DeliveryLatency = "delivery-latency"
	// FailedOps: a failed_ops threshold failed.
	FailedOps = "failed-ops"
	// RawErrors: clients met errors they retried past (a failed_attempts or
	// raw_error threshold failed): not downtime, but not invisible either,
	// as a planned and drained maintenance must be.
	RawErrors = "raw-errors"
	// NoFinalRead: no complete final read, so loss could not be judged.
	NoFinalRead = "no-final-read"
	// SteadyGate: the clean steady load before the faults was not served.
	SteadyGate = "steady-state-gate"
	// Unmeasured: a gate could not be judged (a check or threshold unknown).
	Unmeasured = "unmeasured"
	// OtherGate: a failed gate none of the classes above names.
	OtherGate = "gate"
)

// Variant is one stack variant with a seeded defect.
type Variant struct {
	// Name is the variant's folder under the defects folder.
	Name string
	// Scenario is the scenario that must expose the defect.
	Scenario string
	// Expect is the finding class the scenario must report.
	Expect string
	// Models says in one line the real-world mistake the variant makes.
	Models string
}

// Stack returns the variant's descriptor path under dir (the defects folder).
func (v Variant) Stack(dir string) string { return filepath.Join(dir, v.Name, "stack.yaml") }

// Catalog is every variant, grouped by scenario so that one clean run of a
// scenario serves all of its variants. Each folder's README.md tells the
// story of the mistake and how the variant seeds it.
var Catalog = []Variant{
	{Name: "silent-discard", Scenario: "steady-state", Expect: Lost,
		Models: "a content rule DISCARDs a message after the MTA answered 250"},
	{Name: "double-delivery", Scenario: "steady-state", Expect: Duplicated,
		Models: "an archive BCC to user+archive@ lands back in the user's own INBOX"},
	{Name: "body-mangling", Scenario: "steady-state", Expect: Corrupted,
		Models: "a redaction rule (body_checks REPLACE) rewrites lines of message bodies"},
	{Name: "slow-delivery", Scenario: "steady-state", Expect: DeliveryLatency,
		Models: "LMTP delivery deferred (defer_transports) and only released by a job after 40 s"},
	{Name: "volatile-queue", Scenario: "mta-crash", Expect: Lost,
		Models: "the MTA's queue on tmpfs: a crash forgets every message it had accepted"},
	{Name: "uidvalidity-reset", Scenario: "mta-crash", Expect: IMAPInvariant,
		Models: "Dovecot's control and index files on tmpfs: a restart makes new UIDVALIDITYs"},
	{Name: "no-edge-health-checks", Scenario: "region-loss", Expect: Downtime,
		Models: "edge servers without 'check': a dead region keeps getting connections"},
	{Name: "replication-off", Scenario: "region-loss", Expect: ReplicaMissing,
		Models: "no mail_replica: the replica region never receives the mail"},
	{Name: "upgrade-without-drain", Scenario: "rolling-upgrade", Expect: RawErrors,
		Models: "the upgrade's drain step is a no-op and its session count always 0"},
}

// MinDuration is the shortest load phase (--duration) a scenario needs for
// its variants' defects to be visible at all; the clean run of the
// scenario uses the same, so the two stay comparable.
//
// region-loss holds region a down for half of the load phase. A client
// rides out an outage shorter than its retry budget (8 attempts, backoff up
// to 5 s, each failed attempt a few seconds: about 25 s), so at 40 s (a
// 20 s outage) even an edge without health checks shows only raw errors,
// never client-visible downtime. 70 s gives a 35 s outage.
var MinDuration = map[string]time.Duration{
	"region-loss": 70 * time.Second,
}

// Duration returns the load phase to run scenario with, given the default d.
func Duration(scenario string, d time.Duration) time.Duration {
	return max(d, MinDuration[scenario])
}

// Select returns the catalog's variants named in names (all when empty),
// in catalog order, or an error naming the unknown ones.
func Select(names []string) ([]Variant, error) {
	if len(names) == 0 {
		return slices.Clone(Catalog), nil
	}
	var out []Variant
	var unknown []string
	for _, n := range names {
		i := slices.IndexFunc(Catalog, func(v Variant) bool { return v.Name == n })
		if i < 0 {
			unknown = append(unknown, n)
			continue
		}
		if !slices.ContainsFunc(out, func(v Variant) bool { return v.Name == n }) {
			out = append(out, Catalog[i])
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown variant(s) %s; the variants are %s", strings.Join(unknown, ", "), strings.Join(Names(), ", "))
	}
	slices.SortStableFunc(out, func(a, b Variant) int { return index(a.Name) - index(b.Name) })
	return out, nil
}

// Names returns the catalog's variant names in order.
func Names() []string {
	out := make([]string, len(Catalog))
	for i, v := range Catalog {
		out[i] = v.Name
	}
	return out
}

func index(name string) int {
	return slices.IndexFunc(Catalog, func(v Variant) bool { return v.Name == name })
}

// Scenarios returns the distinct scenarios of vs, in order of first use.
func Scenarios(vs []Variant) []string {
	var out []string
	for _, v := range vs {
		if !slices.Contains(out, v.Scenario) {
			out = append(out, v.Scenario)
		}
	}
	return out
}
