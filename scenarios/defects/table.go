package defects

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/reports/render"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// Reference is the Variant column of the clean reference stack's rows.
const Reference = "reference"

// The results of a row.
const (
	// Caught: a variant's run reported its expected finding.
	Caught = "caught"
	// Missed: a variant's run passed, or failed without the expected finding.
	Missed = "missed"
	// Clean: a reference run passed every gate.
	Clean = "clean"
	// FalseAlarm: a reference run failed a gate.
	FalseAlarm = "false-alarm"
	// Error: the harness failed (exit code 2): the stack was not judged.
	Error = "error"
)

// Outcome is one row of the table: one scenario run against one stack.
type Outcome struct {
	// Variant is the variant's name, or Reference for the clean stack.
	Variant string `json:"variant"`
	// Scenario is the scenario that ran.
	Scenario string `json:"scenario"`
	// Expect is the expected finding class ("" for the reference: none).
	Expect string `json:"expected,omitempty"`
	// Models is the variant's one-line story ("" for the reference).
	Models string `json:"models,omitempty"`
	// Findings are the failing classes the run reported.
	Findings []Finding `json:"findings"`
	// Result is Caught, Missed, Clean, FalseAlarm or Error.
	Result string `json:"result"`
	// ExitCode is the run's exit code (0 pass, 1 a gate failed, 2 harness).
	ExitCode int `json:"exit_code"`
	// Err is the harness failure, when ExitCode is 2.
	Err string `json:"error,omitempty"`
	// RunID is the run's id; its reports are in <out>/<RunID>/.
	RunID string `json:"run_id"`
	// Duration is the run's wall time.
	Duration time.Duration `json:"duration_ns"`
}

// IsVariant says whether the row is a seeded defect (not the reference).
func (o Outcome) IsVariant() bool { return o.Variant != Reference }

// Judge fills o.Findings and o.Result from the run's exit code, its
// scenario's verdict (nil when not judged) and status. harnessErr is the
// reason of a harness failure ("" when none).
func Judge(o Outcome, exitCode int, v *check.Verdict, st *flow.ScenarioStatus, harnessErr string) Outcome {
	o.ExitCode, o.Err = exitCode, harnessErr
	o.Findings = Findings(v, st)
	if exitCode == flow.ExitGate && len(o.Findings) == 0 {
		o.Findings = []Finding{{Class: OtherGate, Detail: "exit code 1"}}
	}
	switch {
	case exitCode != flow.ExitPass && exitCode != flow.ExitGate:
		o.Result = Error
		if o.Err == "" {
			o.Err = fmt.Sprintf("exit code %d", exitCode)
		}
	case !o.IsVariant() && len(o.Findings) > 0:
		o.Result = FalseAlarm
	case !o.IsVariant():
		o.Result = Clean
	case slices.ContainsFunc(o.Findings, func(f Finding) bool { return f.Class == o.Expect }):
		o.Result = Caught
	default:
		o.Result = Missed
	}
	return o
}

// ReadRun reads the verdict and status of scenario from a run folder
// (out/<run id>): verdict.json and status.json. A missing verdict (the
// scenario was not judged) is nil with no error; reason is the harness
// failure the reports name, if any.
func ReadRun(runDir, scenario string) (v *check.Verdict, st *flow.ScenarioStatus, reason string, err error) {
	status, serr := flow.ReadStatus(runDir)
	if serr == nil {
		reason = status.Reason
		for i := range status.Scenarios {
			if status.Scenarios[i].Name == scenario {
				st = &status.Scenarios[i]
			}
		}
	}
	b, verr := os.ReadFile(filepath.Join(runDir, render.VerdictName))
	if verr != nil {
		if serr != nil {
			return nil, nil, "", errors.Join(serr, verr)
		}
		return nil, st, reason, nil
	}
	var sum render.Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		return nil, st, reason, fmt.Errorf("read %s: %w", filepath.Join(runDir, render.VerdictName), err)
	}
	for _, sc := range sum.Scenarios {
		if sc.Name == scenario {
			if sc.Error != "" && reason == "" {
				reason = sc.Error
			}
			return sc.Verdict, st, reason, nil
		}
	}
	return nil, st, reason, nil
}

// Summary counts the rows.
type Summary struct {
	// Detected is how many variants were caught with their expected finding.
	Detected int `json:"detected"`
	// Variants is how many variant rows there are.
	Variants int `json:"variants"`
	// FalseAlarms is how many reference runs failed a gate.
	FalseAlarms int `json:"false_alarms"`
	// CleanRuns is how many reference runs there are.
	CleanRuns int `json:"clean_runs"`
	// Errors is how many runs of either kind failed in the harness.
	Errors int `json:"errors"`
}

// Summarize counts outcomes.
func Summarize(outcomes []Outcome) Summary {
	var s Summary
	for _, o := range outcomes {
		if o.IsVariant() {
			s.Variants++
		} else {
			s.CleanRuns++
		}
		switch o.Result {
		case Caught:
			s.Detected++
		case FalseAlarm:
			s.FalseAlarms++
		case Error:
			s.Errors++
		}
	}
	return s
}

// String is the table's last line.
func (s Summary) String() string {
	return fmt.Sprintf("detected %d/%d, false alarms %d/%d", s.Detected, s.Variants, s.FalseAlarms, s.CleanRuns)
}

// Perfect says whether every defect was caught and the reference passed
// everything, with no harness error.
func (s Summary) Perfect() bool {
	return s.Detected == s.Variants && s.FalseAlarms == 0 && s.Errors == 0
}

// Report is the defects run as written to defects.json.
type Report struct {
	// ID names the report folder (defects-<id>).
	ID string `json:"id"`
	// Started and Finished bound the whole run.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Params are the scenario parameters every run shared (duration, seed, ...).
	Params map[string]string `json:"params"`
	// Outcomes are the rows, in run order.
	Outcomes []Outcome `json:"outcomes"`
	// Summary counts them.
	Summary Summary `json:"summary"`
}

// caughtColumn is the table's "caught" cell.
func caughtColumn(o Outcome) string {
	switch o.Result {
	case Caught:
		return "yes"
	case Missed:
		return "no"
	case FalseAlarm:
		return "FALSE ALARM"
	}
	return o.Result // clean, error
}

func expectColumn(o Outcome) string {
	if o.Expect == "" {
		return "none"
	}
	return o.Expect
}

func actualColumn(o Outcome) string {
	if o.Result == Error {
		return "error: " + firstLine(o.Err)
	}
	if len(o.Findings) == 0 {
		return "none"
	}
	parts := make([]string, len(o.Findings))
	for i, f := range o.Findings {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

// WriteText writes the table for a terminal, then a line on harness errors
// (if any), then the summary as the last line.
func WriteText(w io.Writer, outcomes []Outcome) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIANT\tSCENARIO\tEXPECTED\tACTUAL\tCAUGHT")
	for _, o := range outcomes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Variant, o.Scenario, expectColumn(o), actualColumn(o), caughtColumn(o))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s := Summarize(outcomes)
	if s.Errors > 0 {
		fmt.Fprintf(w, "harness errors: %d run(s) not judged (rows marked error); they count as not detected\n", s.Errors)
	}
	_, err := fmt.Fprintln(w, s)
	return err
}

// WriteMarkdown writes the report for people: the table with the story of
// each variant and a link to each run's report, and the summary.
func WriteMarkdown(w io.Writer, r Report, runLink func(runID string) string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# What the harness is shown to catch (defects %s)\n\n", r.ID)
	fmt.Fprintf(&b, "Each variant is the reference stack with one seeded defect (`fixtures/stacks/defects/<variant>/`), run against the scenario that must expose it; the clean reference stack runs the same scenarios, where any finding is a false alarm. A harness failure (exit code 2) is shown as `error` and counts as not detected.\n\n")
	fmt.Fprintf(&b, "Started %s, finished %s.", r.Started.UTC().Format(time.RFC3339), r.Finished.UTC().Format(time.RFC3339))
	if len(r.Params) > 0 {
		keys := make([]string, 0, len(r.Params))
		for k := range r.Params {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var ps []string
		for _, k := range keys {
			ps = append(ps, fmt.Sprintf("%s `%s`", k, r.Params[k]))
		}
		fmt.Fprintf(&b, " Parameters: %s.", strings.Join(ps, ", "))
	}
	b.WriteString("\n\n| variant | scenario | expected finding | actual finding | caught | what it models | run |\n|---|---|---|---|---|---|---|\n")
	for _, o := range r.Outcomes {
		models := o.Models
		if !o.IsVariant() {
			models = "the clean reference stack"
		}
		run := o.RunID
		if runLink != nil {
			run = fmt.Sprintf("[%s](%s)", o.RunID, runLink(o.RunID))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", mdCell(o.Variant), mdCell(o.Scenario), mdCell(expectColumn(o)),
			mdCell(actualColumn(o)), mdCell(caughtColumn(o)), mdCell(models), run)
	}
	s := Summarize(r.Outcomes)
	if s.Errors > 0 {
		fmt.Fprintf(&b, "\nHarness errors: %d run(s) not judged; they count as not detected.\n", s.Errors)
	}
	fmt.Fprintf(&b, "\n%s\n", s)
	_, err := io.WriteString(w, b.String())
	return err
}

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write defects.json: %w", err)
	}
	return nil
}
