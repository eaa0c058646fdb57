package render

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/reports/check"
)

// A verdict with a failed replicas check renders like any other check: its
// JUnit case and its threshold carry the replica's evidence, and the HTML
// lists the check and its offending messages.
func TestRenderReplicaCheck(t *testing.T) {
	out := t.TempDir()
	runID := "20260102-030405-d00d"
	p := filepath.Join(out, "h", HistoryName)
	os.MkdirAll(filepath.Dir(p), 0o755)
	fixture{runID: runID, scenario: "region-loss"}.writeHistory(t, p)

	// store-a holds every message the final read found, store-b all but
	// the last two.
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := history.NewReader(p, f)
	if err != nil {
		t.Fatal(err)
	}
	var finals []history.Record
	for r, err := rd.Next(); err == nil; r, err = rd.Next() {
		if r.Type == history.TypeFinal {
			finals = append(finals, r)
		}
	}
	f.Close()
	var lines []string
	add := func(r history.Record) {
		b, _ := json.Marshal(r)
		lines = append(lines, string(b))
	}
	at := finals[len(finals)-1].Start + 10*sec
	for _, rep := range []string{"store-a", "store-b"} {
		add(history.Record{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: string(history.PhaseReplicaRead), Target: rep, Attempt: 1, Start: at, End: at})
		n := len(finals)
		if rep == "store-b" {
			n -= 2
		}
		for _, r := range finals[:n] {
			r.Target, r.Client, r.UIDValidity, r.Start = rep, "final-1", 77, at
			add(r)
		}
		add(history.Record{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: string(history.PhaseReplicaReadDone), Target: rep, Attempt: 1, Start: at, End: at})
	}
	hf, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	hf.WriteString(strings.Join(lines, "\n") + "\n")
	hf.Close()

	v, err := check.Run(context.Background(), p, check.Policy{AllowClientDowntime: true, Thresholds: []string{"replica_missing == 0"}})
	if err != nil {
		t.Fatal(err)
	}
	var r check.Result
	for _, c := range v.Checks {
		if c.Name == check.CheckReplicas {
			r = c
		}
	}
	if r.Name != check.CheckReplicas || r.Status != check.Failure || len(r.Evidence) != 2 {
		t.Fatalf("replicas check %+v", r)
	}
	run := RunReport{RunID: runID, Generated: time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC), Scenarios: []Scenario{{Name: "region-loss", History: p, Verdict: &v}}}
	doc := JUnit(run)
	cases := map[string]JUnitCase{}
	for _, c := range doc.Suites[0].Cases {
		cases[c.Name] = c
	}
	for _, name := range []string{"check replicas", "threshold replica_missing == 0"} {
		c, ok := cases[name]
		if !ok || c.Failure == nil {
			t.Errorf("%s: no failing case", name)
			continue
		}
		for _, want := range []string{"replica store-b has no copy", r.Evidence[0].MsgID, "of replica store-a"} {
			if !strings.Contains(c.Failure.Body, want) {
				t.Errorf("%s: body lacks %q:\n%s", name, want, c.Failure.Body)
			}
		}
	}
	dir, err := Write(out, run)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, IndexName))
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, want := range []string{"<td>replicas</td>", "Offending items — replicas", r.Evidence[1].MsgID, "store-b lacks 2 of"} {
		if !strings.Contains(html, want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
}
