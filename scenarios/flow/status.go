package flow

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/onsi/ginkgo/v2/types"
)

// Exit codes of a run. CI tells a failing system from a failing harness by
// them.
const (
	// ExitPass means every selected scenario ran and every gate passed.
	ExitPass = 0
	// ExitGate means a gate failed: the system under test lost, duplicated
	// or corrupted mail, clients saw downtime, or a threshold was missed.
	ExitGate = 1
	// ExitHarness means the harness itself failed: no Docker engine, a
	// set-up or phase timeout, a panic, an interrupt, no scenario selected,
	// a history that proves nothing.
	ExitHarness = 2
	// ExitInterrupted means a second signal stopped the run before its
	// report: the stacks were removed at once, status.json is all there
	// is.
	ExitInterrupted = harness.ExitInterrupted
)

// GateLabel marks the Ginkgo specs whose failure is a verdict on the system
// under test. A failure anywhere else (set-up, a phase, a cleanup, a timeout)
// is a harness failure.
const GateLabel = "gate"

// StatusFile is the name of the status file in the run folder.
const StatusFile = "status.json"

// Outcome of a scenario or of the whole run.
const (
	OutcomePass    = "pass"
	OutcomeGate    = "gate-failed"
	OutcomeHarness = "harness-failed"
	OutcomeSkipped = "skipped"
	OutcomePending = "pending"
)

// Status is the machine-readable outcome of a run, written by the suite
// after the last scenario and read by `mailchaos run` to choose its exit
// code.
type Status struct {
	// RunID is the run's id.
	RunID string `json:"run_id"`
	// Seed is the run's seed.
	Seed int64 `json:"seed"`
	// Label is the label filter that selected the scenarios.
	Label string `json:"label"`
	// ExitCode is ExitPass, ExitGate, ExitHarness or ExitInterrupted.
	ExitCode int `json:"exit_code"`
	// Outcome is pass, gate-failed or harness-failed.
	Outcome string `json:"outcome"`
	// Reason says in one line why the run did not pass ("" when it did).
	Reason string `json:"reason,omitempty"`
	// Start and End bound the run.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Scenarios are the scenarios of the suite, in run order.
	Scenarios []ScenarioStatus `json:"scenarios"`
}

// ScenarioStatus is the outcome of one scenario.
type ScenarioStatus struct {
	// Name is the scenario's name (its top-level container).
	Name string `json:"name"`
	// Outcome is pass, gate-failed, harness-failed, skipped or pending.
	Outcome string `json:"outcome"`
	// Failures are the failed specs of the scenario.
	Failures []SpecFailure `json:"failures,omitempty"`
	// Duration is the scenario's wall time.
	Duration time.Duration `json:"duration_ns"`
	// SkipReason says why the stack could not serve the scenario (outcome
	// skipped): what it lacks. A skip is never a pass.
	SkipReason string `json:"skip_reason,omitempty"`
	// Phases is where the scenario's wall time went: each phase (spec) in
	// run order with its time, set-up and teardown included in the specs
	// they ran in.
	Phases []PhaseTime `json:"phases,omitempty"`
}

// PhaseTime is the wall time of one phase of a scenario.
type PhaseTime struct {
	// Phase is the spec's text, e.g. "brings the stack up".
	Phase string `json:"phase"`
	// Seconds is its wall time.
	Seconds float64 `json:"seconds"`
}

// SkipPrefix starts the message of a scenario skipped because the stack
// cannot serve it; Classify tells such a skip from a scenario the label
// filter did not select by it.
const SkipPrefix = "stack cannot serve this scenario: "

// SpecFailure is one failed spec.
type SpecFailure struct {
	// Spec is the spec's text (the phase or gate).
	Spec string `json:"spec"`
	// Outcome is gate-failed or harness-failed.
	Outcome string `json:"outcome"`
	// State is Ginkgo's state of the spec (failed, timedout, panicked, ...).
	State string `json:"state"`
	// Node is the Ginkgo node the failure happened in (It, BeforeAll, DeferCleanup, ...).
	Node string `json:"node"`
	// Message is the first line of the failure message.
	Message string `json:"message"`
	// Location is the file:line of the failure.
	Location string `json:"location"`
}

// ClassifyFailure says whether a failed spec is a gate failure or a harness
// failure: a gate failure is a plain assertion failure inside the body of
// a spec labelled GateLabel. Timeouts, panics, interrupts, aborts and any
// failure in set-up or cleanup nodes are harness failures, even in a gate
// spec: they say nothing about the system under test.
func ClassifyFailure(s types.SpecReport) string {
	if s.State == types.SpecStateFailed &&
		s.Failure.FailureNodeContext == types.FailureNodeIsLeafNode &&
		s.LeafNodeType == types.NodeTypeIt &&
		slices.Contains(s.Labels(), GateLabel) {
		return OutcomeGate
	}
	return OutcomeHarness
}

// Classify turns a Ginkgo report into the run's Status. A gate failure
// outranks a harness failure: a definite finding about the system must not
// be hidden behind an exit code CI may treat as "retry the infrastructure".
func Classify(r types.Report) Status {
	st := Status{Start: r.StartTime, End: r.EndTime, Label: r.SuiteConfig.LabelFilter}
	index := map[string]int{}
	var suiteFailures []SpecFailure
	ran := 0
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			// Suite-level nodes (BeforeSuite, ReportAfterSuite, ...).
			if s.State.Is(types.SpecStateFailureStates) {
				suiteFailures = append(suiteFailures, failureOf(s))
			}
			continue
		}
		name := "(top level)"
		if len(s.ContainerHierarchyTexts) > 0 {
			name = s.ContainerHierarchyTexts[0]
		}
		i, ok := index[name]
		if !ok {
			i = len(st.Scenarios)
			index[name] = i
			st.Scenarios = append(st.Scenarios, ScenarioStatus{Name: name, Outcome: OutcomeSkipped})
		}
		sc := &st.Scenarios[i]
		sc.Duration += s.RunTime
		if s.State != types.SpecStateSkipped || s.RunTime > 0 {
			sc.Phases = append(sc.Phases, PhaseTime{Phase: s.LeafNodeText, Seconds: s.RunTime.Round(time.Millisecond).Seconds()})
		}
		switch {
		case s.State.Is(types.SpecStateFailureStates):
			f := failureOf(s)
			sc.Failures = append(sc.Failures, f)
			if f.Outcome == OutcomeHarness || sc.Outcome != OutcomeHarness {
				sc.Outcome = f.Outcome
			}
		case s.State == types.SpecStatePassed:
			if sc.Outcome == OutcomeSkipped || sc.Outcome == OutcomePending {
				sc.Outcome = OutcomePass
			}
		case s.State == types.SpecStatePending:
			if sc.Outcome == OutcomeSkipped {
				sc.Outcome = OutcomePending
			}
		case s.State == types.SpecStateSkipped:
			if reason, ok := strings.CutPrefix(s.Failure.Message, SkipPrefix); ok && sc.SkipReason == "" {
				sc.SkipReason = reason
			}
		}
		if s.State != types.SpecStateSkipped && s.State != types.SpecStatePending {
			ran++
		}
	}
	// Scenarios the filter did not select are not part of the run; those
	// the stack could not serve are, with their reason.
	kept := st.Scenarios[:0]
	for _, sc := range st.Scenarios {
		if sc.Outcome != OutcomeSkipped || sc.SkipReason != "" {
			kept = append(kept, sc)
		}
	}
	st.Scenarios = kept
	problem := ""
	if len(suiteFailures) > 0 {
		problem = fmt.Sprintf("suite node %s failed: %s", suiteFailures[0].Node, suiteFailures[0].Message)
	}
	st.Judge(problem, ran)
	if st.ExitCode == ExitPass && !r.SuiteSucceeded {
		// Ginkgo saw a failure this classification did not: never a pass.
		st.ExitCode, st.Outcome = ExitHarness, OutcomeHarness
		st.Reason = "suite failed: " + strings.Join(r.SpecialSuiteFailureReasons, "; ")
	}
	return st
}

// Judge sets st's exit code, outcome and reason from its scenarios. A gate
// failure outranks a harness failure: a definite finding about the system
// must not be hidden behind an exit code CI may treat as "retry the
// infrastructure". problem, when not "", is a harness failure of the run
// that no scenario shows (a suite node, a part of a parallel run that
// ended without its status); ran counts what ran at all (0: nothing did,
// never a pass).
func (st *Status) Judge(problem string, ran int) {
	var gates, harness, skipped []string
	for _, sc := range st.Scenarios {
		switch sc.Outcome {
		case OutcomeGate:
			gates = append(gates, sc.Name)
		case OutcomeHarness:
			harness = append(harness, sc.Name)
		case OutcomeSkipped:
			skipped = append(skipped, sc.Name+" ("+sc.SkipReason+")")
		}
	}
	switch {
	case len(gates) > 0:
		st.ExitCode, st.Outcome = ExitGate, OutcomeGate
		st.Reason = "gate failed in " + strings.Join(gates, ", ")
		if len(harness) > 0 {
			st.Reason += "; harness failed in " + strings.Join(harness, ", ")
		}
	case len(harness) > 0:
		st.ExitCode, st.Outcome = ExitHarness, OutcomeHarness
		st.Reason = "harness failed in " + strings.Join(harness, ", ")
	case problem != "":
		st.ExitCode, st.Outcome, st.Reason = ExitHarness, OutcomeHarness, problem
	case ran == 0 && len(skipped) > 0:
		st.ExitCode, st.Outcome = ExitHarness, OutcomeHarness
		st.Reason = "every selected scenario was skipped: the stack cannot serve them: " + strings.Join(skipped, "; ")
	case ran == 0:
		st.ExitCode, st.Outcome = ExitHarness, OutcomeHarness
		st.Reason = fmt.Sprintf("no scenario ran (label filter %q)", st.Label)
	default:
		st.ExitCode, st.Outcome, st.Reason = ExitPass, OutcomePass, ""
		if len(skipped) > 0 {
			st.Reason = "skipped: " + strings.Join(skipped, "; ")
		}
	}
}

func failureOf(s types.SpecReport) SpecFailure {
	msg := strings.TrimSpace(s.Failure.Message)
	if s.Failure.ForwardedPanic != "" {
		msg = "panic: " + s.Failure.ForwardedPanic
	}
	msg = summary(msg)
	node := s.Failure.FailureNodeType.String()
	if s.Failure.FailureNodeContext == types.FailureNodeIsLeafNode || node == "" || node == "INVALID NODE TYPE" {
		node = s.LeafNodeType.String()
	}
	return SpecFailure{
		Spec:     s.LeafNodeText,
		Outcome:  ClassifyFailure(s),
		State:    s.State.String(),
		Node:     node,
		Message:  msg,
		Location: s.Failure.Location.String(),
	}
}

// summary is the first two non-empty lines of a failure message, joined,
// at most 400 bytes: Gomega's first line ("Expected success, but got an
// error:") says little without the next.
func summary(msg string) string {
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
			if len(lines) == 2 {
				break
			}
		}
	}
	out := strings.Join(lines, " ")
	if len(out) > 400 {
		out = out[:400] + "..."
	}
	return out
}

// WriteStatus writes st as dir/status.json.
func WriteStatus(dir string, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	tmp := filepath.Join(dir, StatusFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, StatusFile))
}

// ReadStatus reads dir/status.json. A missing or unreadable status file
// means the suite never finished: callers treat it as ExitHarness. So does
// one that is not a single JSON object (json.Unmarshal refuses anything
// after it, and NaN, which JSON has not) or whose exit code is none a run
// ends with.
func ReadStatus(dir string) (Status, error) {
	p := filepath.Join(dir, StatusFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return Status{}, fmt.Errorf("read status: %w", err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("read status %s: %w", p, err)
	}
	switch st.ExitCode {
	case ExitPass, ExitGate, ExitHarness, ExitInterrupted:
	default:
		return Status{}, fmt.Errorf("read status %s: exit_code %d is none a run ends with (%d, %d, %d, %d)", p, st.ExitCode, ExitPass, ExitGate, ExitHarness, ExitInterrupted)
	}
	return st, nil
}
