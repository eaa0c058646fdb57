package scenarios

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/reports/evidence"
	"github.com/mailchaos/mailchaos/reports/render"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// results are the scenarios of the run that started, in run order, as the
// report shows them.
var results struct {
	list  []render.Scenario
	facts []*flow.Run
}

// record adds a finished scenario to the run's report. Called once per
// scenario, after its stack is torn down (so its logs are in its folder).
func record(r *flow.Run) {
	if r == nil {
		return
	}
	err := r.Err()
	if reason, ok := interruptedAt.Load(r); ok {
		// What failed after the interrupt failed because of it.
		err = reason.(string)
	}
	if r.Partial && err != "" {
		err += "; the verdict is partial: judged on the history recorded until then"
	}
	sc := render.Scenario{
		Name:     r.S.Name,
		History:  r.HistoryPath(),
		Err:      err,
		Started:  r.Started,
		Duration: time.Since(r.Started),
		Labels:   r.S.Labels,
	}
	if r.Judged {
		v := r.Verdict
		sc.Verdict = &v
	}
	if r.Plan != nil {
		sc.Targets = r.Plan.Describe()
	}
	suite.mu.Lock()
	results.list = append(results.list, sc)
	results.facts = append(results.facts, r)
	suite.mu.Unlock()
}

// recordSkip adds a scenario the stack cannot serve to the run's report,
// with the reason and no history.
func recordSkip(r *flow.Run) {
	sc := render.Scenario{Name: r.S.Name, Skipped: r.Skipped, Started: r.Started, Labels: r.S.Labels}
	suite.mu.Lock()
	results.list = append(results.list, sc)
	suite.mu.Unlock()
}

// renderRun writes the run-level reports into the run folder: verdict.json,
// junit.xml, index.html, MANIFEST.sha256, its signature when --sign-key is
// given, and bundle.tar.gz (package reports/render), and points out/latest
// at the run.
func renderRun(p flow.Params, part Part) error {
	st, scs := part.Status, part.Scenarios
	if len(scs) == 0 {
		return fmt.Errorf("no scenario started: nothing to report")
	}
	run := render.RunReport{RunID: p.RunID, Title: "label " + p.Label, Env: environment(p, part), Scenarios: scs}
	if p.SignKey != "" {
		key, err := evidence.LoadPrivateKey(p.SignKey)
		if err != nil {
			return fmt.Errorf("sign the report: --sign-key %w", err)
		}
		run.SignKey = key
		run.Env.Extra = append(run.Env.Extra, render.KV{Name: "signed by", Value: evidence.Fingerprint(key.Public().(ed25519.PublicKey))})
	}
	if _, err := render.Write(p.Out, run); err != nil {
		return err
	}
	// The report's own exit code is computed from the final verdicts; the
	// status file's from every gate (the steady state's included). The
	// process exits with the status file's; say so when they differ.
	if got := run.ExitCode(); got != st.ExitCode {
		fmt.Fprintf(os.Stderr, "mailchaos: note: the report's verdicts give exit code %d (%s); the run's gates give %d (%s), which is the exit code\n",
			got, run.Status(), st.ExitCode, st.Reason)
	}
	return nil
}

func environment(p flow.Params, part Part) render.Environment {
	env := render.Environment{
		Seed:      p.Seed,
		Command:   strings.Join(os.Args, " "),
		Stack:     p.Stack,
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
	}
	env.Host, _ = os.Hostname()
	if bi, ok := debug.ReadBuildInfo(); ok {
		env.MailchaosVersion = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				env.Commit = s.Value
			}
		}
	}
	env.Extra = []render.KV{
		{Name: "duration", Value: p.Duration.String()}, {Name: "steady", Value: p.Steady.String()},
		{Name: "converge (bound)", Value: p.Converge.String()}, {Name: "rate", Value: fmt.Sprintf("%g msg/s", p.Rate)},
		{Name: "users", Value: fmt.Sprint(p.Users)}, {Name: "label filter", Value: p.Label},
	}
	if p.From != "" {
		env.Extra = append(env.Extra, render.KV{Name: "rehearsal", Value: p.From + " → " + p.To})
	}
	if p.Parallel > 1 {
		env.Extra = append(env.Extra, render.KV{Name: "parallel", Value: fmt.Sprintf("%d scenarios at once", p.Parallel)})
	}
	seen := map[string]bool{}
	for _, im := range part.Images {
		if key := im.Service + im.Ref; !seen[key] {
			seen[key] = true
			env.Images = append(env.Images, render.Image{Service: im.Service, Ref: im.Ref, ID: im.ID})
		}
	}
	for _, f := range part.Software {
		if key := f.Name + f.Value; !seen[key] {
			seen[key] = true
			env.Software = append(env.Software, render.KV{Name: f.Name, Value: f.Value})
		}
	}
	return env
}
