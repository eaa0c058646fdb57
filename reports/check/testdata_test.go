package check

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/history"
)

var update = flag.Bool("update", false, "rewrite reports/check/testdata from the histories below")

// want is the expected outcome stored beside each testdata history.
type want struct {
	Policy  Policy             `json:"policy"`
	Status  Status             `json:"status"`
	Checks  map[string]Status  `json:"checks"`
	Metrics map[string]float64 `json:"metrics"`
}

// regressions are histories that must fail (or stay unknown). They are
// written to testdata/ with -update; a history found failing in a real run
// is saved there by hand with its .want.json, and TestTestdata keeps it
// failing.
func regressions() map[string]struct {
	recs []history.Record
	want want
} {
	exp := imapOp(history.KindIMAPExpunge, ok, 40, 41, "expunge")
	exp.UID, exp.UIDValidity = 1, 1
	store := imapOp(history.KindIMAPStore, ok, 30, 31, "store")
	store.UID, store.UIDValidity, store.Flags = 1, 1, []string{`\Flagged`}
	corrupt := fin("m1", inbox1, 1, 1)
	corrupt.BodySHA256 = "deadbeef"
	type R = struct {
		recs []history.Record
		want want
	}
	f := func(status Status, checks map[string]Status, metrics map[string]float64, recs ...history.Record) R {
		return R{recs: mkHist(recs...), want: want{Status: status, Checks: checks, Metrics: metrics}}
	}
	led := func(s Status) map[string]Status { return map[string]Status{CheckLedger: s} }
	im := map[string]Status{CheckIMAP: Failure}
	return map[string]R{
		"lost":          f(Failure, led(Failure), map[string]float64{"lost": 1}, send("m1", ok, 0, 10), done(1)),
		"duplicated":    f(Failure, led(Failure), map[string]float64{"duplicated": 1}, send("m1", ok, 0, 10), fin("m1", inbox1, 1, 1), fin("m1", inbox1, 2, 1), done(1)),
		"corrupted":     f(Failure, led(Failure), map[string]float64{"corrupted": 1}, send("m1", ok, 0, 10), corrupt, done(1)),
		"unexpected":    f(Failure, led(Failure), map[string]float64{"unexpected": 1}, fin("ghost", inbox1, 1, 1), done(1)),
		"late":          f(Failure, led(Failure), map[string]float64{"late": 1}, send("m1", ok, 0, 10), done(1), fin("m1", inbox1, 1, 2), done(2)),
		"no-final-read": f(Unknown, led(Unknown), map[string]float64{"accepted": 1}, send("m1", ok, 0, 10), fin("m1", inbox1, 1, 1)),
		"empty-run":     f(Unknown, led(Unknown), map[string]float64{"messages": 0}),
		"duplicate-after-failed-retry": f(Failure, led(Failure), map[string]float64{"duplicated": 1},
			att("m1", 1, fail, 0, 10), withAttempts(send("m1", ok, 0, 30), 2), fin("m1", inbox1, 1, 1), fin("m1", inbox1, 2, 1), done(1)),
		"uidvalidity-changed": f(Failure, im, map[string]float64{"uidvalidity_changes": 1},
			send("m1", ok, 0, 10), seen("m1", inbox1, 1, 20), withUIDV(fin("m1", inbox1, 1, 1), 5), done(1)),
		"uid-reused": f(Failure, im, map[string]float64{"uid_reused": 1},
			send("m1", ok, 0, 10), send("m2", ok, 50, 60), seen("m1", inbox1, 1, 20), seen("m2", inbox1, 1, 70), fin("m1", inbox1, 2, 1), fin("m2", inbox1, 1, 1), done(1)),
		"uid-order": f(Failure, im, map[string]float64{"uid_order": 1},
			send("m1", ok, 0, 10), send("m2", ok, 50, 60), seen("m1", inbox1, 5, 20), seen("m2", inbox1, 3, 70), fin("m1", inbox1, 5, 1), fin("m2", inbox1, 3, 1), done(1)),
		"expunged-reappeared": f(Failure, im, map[string]float64{"reappeared": 1},
			send("m1", ok, 0, 10), seen("m1", inbox1, 1, 20), exp, fin("m1", inbox1, 1, 1), done(1)),
		"flags-lost": f(Failure, im, map[string]float64{"flags_lost": 1},
			send("m1", ok, 0, 10), seen("m1", inbox1, 1, 20), store, fin("m1", inbox1, 1, 1), done(1)),
		"client-visible-downtime": f(Failure, map[string]Status{CheckAvailability: Failure}, map[string]float64{"client_visible_downtime_max_s": 0.2},
			fault(history.KindFaultInject, "partition", "edge", 90, 95), smtpOp(fail, 100, 200), smtpOp(ok, 250, 300), fault(history.KindFaultHeal, "partition", "edge", 260, 270),
			send("m1", ok, 0, 10), fin("m1", inbox1, 1, 1), done(1)),
		// replication off: the final read (through the edge) finds both
		// messages, the replica in region b only the one delivered there.
		"replica-missing": f(Failure, map[string]Status{CheckLedger: Success, CheckReplicas: Failure}, map[string]float64{"lost": 0, "replica_missing": 1, "replicas_read": 2},
			send("m1", ok, 0, 10), send("m2", ok, 20, 30), fin("m1", inbox1, 1, 1), fin("m2", inbox1, 2, 1), done(1),
			rread("store-a", 1), rfin("store-a", "m1", inbox1, 1), rfin("store-a", "m2", inbox1, 2), rdone("store-a", 1),
			rread("store-b", 1), rfin("store-b", "m2", inbox1, 1), rdone("store-b", 1)),
		"replica-read-incomplete": f(Unknown, map[string]Status{CheckLedger: Success, CheckReplicas: Unknown}, map[string]float64{"lost": 0, "replicas_read": 1},
			send("m1", ok, 0, 10), fin("m1", inbox1, 1, 1), done(1),
			rread("store-a", 1), rfin("store-a", "m1", inbox1, 1), rdone("store-a", 1), rread("store-b", 1)),
	}
}

func TestTestdata(t *testing.T) {
	if *update {
		for name, r := range regressions() {
			var buf bytes.Buffer
			for _, rec := range r.recs {
				b, err := json.Marshal(rec)
				if err != nil {
					t.Fatal(err)
				}
				buf.Write(b)
				buf.WriteByte('\n')
			}
			w, _ := json.MarshalIndent(r.want, "", "  ")
			if err := os.WriteFile(filepath.Join("testdata", name+".jsonl"), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("testdata", name+".want.json"), append(w, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.jsonl"))
	if len(files) < len(regressions()) {
		t.Fatalf("%d testdata histories, want at least %d (run with -update)", len(files), len(regressions()))
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".jsonl")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(strings.TrimSuffix(path, ".jsonl") + ".want.json")
			if err != nil {
				t.Fatal(err)
			}
			var w want
			if err := json.Unmarshal(b, &w); err != nil {
				t.Fatal(err)
			}
			if w.Status == Success {
				t.Fatalf("testdata histories are for failures; %s expects success", name)
			}
			v, err := Run(context.Background(), path, w.Policy)
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != w.Status {
				t.Errorf("status = %s (%s), want %s", v.Status, v.Reason, w.Status)
			}
			for name, st := range w.Checks {
				if got := result(v, name).Status; got != st {
					t.Errorf("%s = %s (%s), want %s", name, got, result(v, name).Reason, st)
				}
			}
			for m, val := range w.Metrics {
				if got, ok := v.Metrics[m]; !ok || got != val {
					t.Errorf("%s = %v (measured %v), want %v", m, got, ok, val)
				}
			}
		})
	}
}
