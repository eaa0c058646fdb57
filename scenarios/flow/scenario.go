package flow

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/reports/check"
)

// The labels of the scenarios.
const (
	// LabelSmoke marks the one short scenario `make test` runs (the default filter).
	LabelSmoke = "smoke"
	// LabelNightly marks the gate set `make run` runs.
	LabelNightly = "nightly"
	// LabelUpgrade marks the upgrade rehearsals.
	LabelUpgrade = "upgrade"
	// LabelDR marks the disaster-recovery scenarios.
	LabelDR = "dr"
)

// Scenario is one scenario of the suite: what it proves, how it breaks the
// stack, and how its run is judged. The phases are the same for every
// scenario (see Run); only the timeline and the policy differ.
type Scenario struct {
	// Name is the scenario's name, e.g. "region-loss"; also its folder.
	Name string
	// Proves says in one sentence what a pass demonstrates.
	Proves string
	// Labels select the scenario (smoke, nightly, upgrade, dr).
	Labels []string
	// Faults is the fault timeline, laid out over the load phase.
	Faults []FaultAt
	// Policy is how the run is judged (ledger policy and thresholds).
	Policy check.Policy
	// Needs is what the scenario needs of a stack beyond what its fault
	// selectors ask for; a stack that lacks it skips the scenario with
	// the reason (a skip is never a pass).
	Needs Needs
	// Rehearsal says the scenario rolls --from images to --to images; the
	// stack starts on the --from set when one is given.
	Rehearsal bool
	// Nemesis, when set, adds a seeded random timeline to Faults.
	Nemesis *NemesisSpec
	// Gates are the assertions on the verdict, by name (see GateNames).
	Gates []string
	// File is where the scenario was read from ("builtin:<name>" for an
	// embedded one).
	File string
	// MinDuration is the shortest load phase the scenario's faults need to
	// act under load (a rolling upgrade of two tiers and its rollback take
	// minutes); a shorter --duration is raised to it for this scenario.
	MinDuration time.Duration
}

// LoadDuration is the load phase the scenario runs for, given --duration d.
func (s Scenario) LoadDuration(d time.Duration) time.Duration { return max(d, s.MinDuration) }

// FaultAt is one fault of a scenario's timeline. At and For are fractions
// of the load phase (--duration), so a scenario keeps its shape at any
// duration, or durations (AtTime, ForTime) where a fault needs a fixed
// time; For 0 holds the fault until the timeline ends.
type FaultAt struct {
	// At is when the fault is injected, as a fraction of the load phase.
	At float64
	// For is how long it stays, as a fraction of the load phase.
	For float64
	// AtTime, when set, is when the fault is injected (At is then unused).
	AtTime time.Duration
	// ForTime, when set, is how long it stays (For is then unused).
	ForTime time.Duration
	// Spec is the fault spec in the faults package syntax; its target is
	// a selector (see faults.Selector), e.g. "region-loss:region=primary".
	Spec string
	// Optional leaves the fault out, with a note in the log and the
	// report, when its selector matches nothing in the stack; otherwise
	// such a stack skips the whole scenario.
	Optional bool
}

// NemesisSpec asks for a seeded random fault timeline: the nemesis picks
// from Menu, a target among those each spec's selector matches, a hold and
// a gap, within Window; the same seed gives the same schedule.
type NemesisSpec struct {
	// Menu are fault specs whose targets are selectors (or "*").
	Menu []string
	// Window is when faults may start: At from the load phase's start,
	// For long (fractions or durations, as for a fault).
	Window FaultAt
	// MinHold and MaxHold bound how long each fault stays.
	MinHold, MaxHold time.Duration
	// MinGap and MaxGap bound the time between two injections.
	MinGap, MaxGap time.Duration
	// Count, when positive, is the most faults planned.
	Count int
	// MaxActive is how many faults may be injected at once (default 1).
	MaxActive int
}

// Offsets returns the fault's absolute offset and hold for a load phase of d.
func (f FaultAt) Offsets(d time.Duration) (at, hold time.Duration) {
	at = time.Duration(f.At * float64(d)).Round(time.Millisecond)
	hold = time.Duration(f.For * float64(d)).Round(time.Millisecond)
	if f.AtTime > 0 {
		at = f.AtTime
	}
	if f.ForTime > 0 {
		hold = f.ForTime
	}
	return at, hold
}

// Validate checks the scenario's shape: a name, labels, a timeline inside
// the load phase and thresholds that parse.
func (s Scenario) Validate() error {
	if s.Name == "" || s.Proves == "" || len(s.Labels) == 0 {
		return fmt.Errorf("scenario %q: name, proves and labels are required", s.Name)
	}
	for _, f := range s.Faults {
		if f.At < 0 || f.For < 0 || f.At+f.For > 1 || f.Spec == "" {
			return fmt.Errorf("scenario %s: fault %q at %.2f for %.2f is outside the load phase", s.Name, f.Spec, f.At, f.For)
		}
	}
	for _, g := range s.Gates {
		if !slices.Contains(GateNames, g) {
			return fmt.Errorf("scenario %s: unknown gate %q (gates: %s)", s.Name, g, strings.Join(GateNames, ", "))
		}
	}
	if _, err := check.ParseThresholds(s.Policy.Thresholds); err != nil {
		return fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	return nil
}

// The gates a scenario may assert, by name: each is one spec labelled
// GateLabel, judged by one matcher of scenarios/matchers.
const (
	GateNoLoss          = "no-loss"         // every accepted message delivered once, byte-identical
	GateReplicas        = "replicas"        // every replica holds what clients see
	GateIMAP            = "imap-invariants" // UIDVALIDITY, UIDs and flags as IMAP promises
	GateNoDowntime      = "no-downtime"     // no client-visible downtime
	GateMeetsThresholds = "thresholds"      // every threshold of the policy
	GateRecoveryPoint   = "recovery-point"  // the recovery point could be measured (reported, not gated)
)

// StrictGates are the gates of a zero-loss scenario.
var StrictGates = []string{GateNoLoss, GateReplicas, GateIMAP, GateNoDowntime, GateMeetsThresholds}

// GateNames are every gate a scenario may name.
var GateNames = append(slices.Clone(StrictGates), GateRecoveryPoint)

// SteadyThresholds are the gates of the steady-state phase: a short clean
// load must be fully served, or the faults would prove nothing.
var SteadyThresholds = []string{
	"accepted > 0",
	"failed_ops == 0",
	"client_visible_windows == 0",
}

// GateThresholds are the thresholds of the nightly gate that every
// zero-loss scenario shares.
var GateThresholds = []string{
	"final_read == 1",
	"accepted > 0",
	"lost == 0",
	"duplicated == 0",
	"corrupted == 0",
	"unexpected == 0",
	"client_visible_downtime_max == 0s",
}
