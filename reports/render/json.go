package render

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/mailchaos/mailchaos/reports/check"
)

// Summary is the top-level form of verdict.json: the run, its environment,
// and each scenario with its check.Verdict (whose schema is
// reports/check's). Version is ReportVersion.
type Summary struct {
	Version     int               `json:"version"`
	RunID       string            `json:"run_id"`
	Title       string            `json:"title,omitempty"`
	Status      Status            `json:"status"`    // pass, fail, unknown or error (see RunReport.Status)
	ExitCode    int               `json:"exit_code"` // 0 pass, 1 a gate failed or is unknown, 2 harness error
	Generated   time.Time         `json:"generated"`
	Environment Environment       `json:"environment"`
	Scenarios   []ScenarioSummary `json:"scenarios"`
}

// ScenarioSummary is one scenario in verdict.json.
type ScenarioSummary struct {
	Name       string         `json:"name"`
	Status     Status         `json:"status"`
	Reason     string         `json:"reason"`
	Error      string         `json:"error,omitempty"`
	History    string         `json:"history,omitempty"` // path relative to the run folder
	Started    time.Time      `json:"started,omitzero"`
	DurationNS time.Duration  `json:"duration_ns"`
	Labels     []string       `json:"labels,omitempty"`
	Skipped    string         `json:"skipped,omitempty"` // why the stack could not serve it
	Targets    []string       `json:"targets,omitempty"` // what its fault selectors resolved to
	Verdict    *check.Verdict `json:"verdict"`           // null when not judged
}

// NewSummary builds verdict.json's content. histories maps scenario names
// to their history paths relative to the run folder.
func NewSummary(run RunReport, histories map[string]string) Summary {
	s := Summary{
		Version:     ReportVersion,
		RunID:       run.RunID,
		Title:       run.Title,
		Status:      run.Status(),
		ExitCode:    run.ExitCode(),
		Generated:   run.Generated.UTC(),
		Environment: run.Env,
		Scenarios:   []ScenarioSummary{},
	}
	for _, sc := range run.Scenarios {
		s.Scenarios = append(s.Scenarios, ScenarioSummary{
			Name: sc.Name, Status: sc.Status(), Reason: sc.Reason(), Error: sc.Err,
			History: histories[sc.Name], Started: sc.Started.UTC(), DurationNS: sc.Duration,
			Labels: sc.Labels, Skipped: sc.Skipped, Targets: sc.Targets, Verdict: sc.Verdict,
		})
	}
	return s
}

// WriteJSON writes s as indented JSON.
func WriteJSON(w io.Writer, s Summary) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("write verdict.json: %w", err)
	}
	return nil
}
