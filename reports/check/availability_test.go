package check

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/history"
)

func smtpOp(out history.Outcome, start, end int) history.Record {
	r := send("x", out, start, end)
	r.MsgID = "x" + time.Duration(start).String() + time.Duration(end).String()
	if out != ok {
		r.Stage, r.Class = "connect", "conn-refused"
	}
	return r
}

func smtpAtt(out history.Outcome, start, end int) history.Record {
	r := smtpOp(out, start, end)
	r.Scope = history.ScopeAttempt
	return r
}

func TestAvailabilityWindows(t *testing.T) {
	tests := []struct {
		name    string
		recs    []history.Record
		windows []Span // client-visible, smtp
		open    bool
		status  Status
	}{
		{"no failures", mkHist(smtpOp(ok, 0, 10), smtpOp(ok, 10, 20)), nil, false, Success},
		{"one failure, closed by the next success", mkHist(smtpOp(ok, 0, 10), smtpOp(fail, 100, 200), smtpOp(ok, 250, 300)),
			[]Span{{ms(100), ms(300)}}, false, Failure},
		{"a success that began before the failure does not close it", mkHist(smtpOp(fail, 100, 200), smtpOp(ok, 50, 210), smtpOp(ok, 220, 230)),
			[]Span{{ms(100), ms(230)}}, false, Failure},
		{"overlapping failures make one window", mkHist(smtpOp(fail, 100, 200), smtpOp(fail, 150, 400), smtpOp(ok, 160, 450), smtpOp(ok, 410, 420)),
			[]Span{{ms(100), ms(420)}}, false, Failure},
		{"two separate windows", mkHist(smtpOp(fail, 100, 200), smtpOp(ok, 200, 210), smtpOp(fail, 500, 600), smtpOp(ok, 600, 700)),
			[]Span{{ms(100), ms(210)}, {ms(500), ms(700)}}, false, Failure},
		{"never recovered: open until the end of the history", mkHist(smtpOp(fail, 100, 200), phase(history.PhaseDone, 0, 900)),
			[]Span{{ms(100), ms(900)}}, true, Failure},
		{"failed attempts retried successfully are raw errors only", mkHist(smtpAtt(fail, 100, 200), smtpAtt(ok, 300, 400), smtpOp(ok, 100, 400)),
			nil, false, Success},
		{"records out of order in the file", mkHist(smtpOp(ok, 250, 300), smtpOp(fail, 100, 200)),
			[]Span{{ms(100), ms(300)}}, false, Failure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustRun(t, tc.recs, Policy{})
			var smtp *ProtocolAvailability
			for i := range v.Availability {
				if v.Availability[i].Protocol == "smtp" {
					smtp = &v.Availability[i]
				}
			}
			if smtp == nil {
				t.Fatal("no smtp availability")
			}
			ws := smtp.ClientVisible.Windows
			if len(ws) != len(tc.windows) {
				t.Fatalf("windows = %+v, want %v", ws, tc.windows)
			}
			var longest, total time.Duration
			for i, w := range ws {
				if w.Start != tc.windows[i].Start || w.End != tc.windows[i].End {
					t.Errorf("window %d = %s..%s, want %s..%s", i, w.Start, w.End, tc.windows[i].Start, tc.windows[i].End)
				}
				if w.Open != (tc.open && i == len(ws)-1) {
					t.Errorf("window %d open = %v", i, w.Open)
				}
				longest, total = max(longest, w.Duration), total+w.Duration
			}
			if v.Metrics["client_visible_downtime_max_s"] != longest.Seconds() || v.Metrics["smtp_client_visible_downtime_total_s"] != total.Seconds() {
				t.Errorf("metrics max %v total %v, want %v %v", v.Metrics["client_visible_downtime_max_s"], v.Metrics["smtp_client_visible_downtime_total_s"], longest.Seconds(), total.Seconds())
			}
			if r := result(v, CheckAvailability); r.Status != tc.status {
				t.Errorf("availability = %s (%s), want %s", r.Status, r.Reason, tc.status)
			}
			if len(smtp.Raw.Windows) < len(ws) {
				t.Errorf("fewer raw windows (%d) than client-visible ones (%d)", len(smtp.Raw.Windows), len(ws))
			}
		})
	}
}

func TestAvailabilityRawAndStages(t *testing.T) {
	v := mustRun(t, mkHist(smtpAtt(fail, 100, 200), smtpAtt(ok, 300, 400), smtpOp(ok, 100, 400)), Policy{})
	a := v.Availability[0]
	if a.Raw.Count != 1 || a.Raw.Windows[0].Start != ms(100) || a.Raw.Windows[0].End != ms(400) {
		t.Fatalf("raw = %+v", a.Raw)
	}
	if len(a.Stages) != 1 || a.Stages[0].Stage != "connect" || a.Stages[0].FailedAttempts != 1 || a.Stages[0].Classes["conn-refused"] != 1 {
		t.Fatalf("stages = %+v", a.Stages)
	}
	if v.Metrics["raw_error_windows"] != 1 || v.Metrics["client_visible_windows"] != 0 {
		t.Fatalf("metrics = %v", v.Metrics)
	}
}

func TestAvailabilityFaultOverlap(t *testing.T) {
	v := mustRun(t, mkHist(
		fault(history.KindFaultInject, "partition", "edge", 90, 95),
		smtpOp(fail, 100, 200), smtpOp(ok, 200, 300),
		fault(history.KindFaultHeal, "partition", "edge", 250, 260),
		fault(history.KindFaultInject, "kill", "mta-a", 1000, 1001),
		smtpOp(fail, 5000, 5100), smtpOp(ok, 5100, 5200),
	), Policy{AllowClientDowntime: true})
	if len(v.Faults) != 2 || !v.Faults[0].Healed || v.Faults[0].End != ms(260) || v.Faults[1].Healed || v.Faults[1].End != v.Span.End {
		t.Fatalf("faults = %+v", v.Faults)
	}
	cv := v.Availability[0].ClientVisible
	if cv.Count != 2 || cv.ByFault[0].Windows != 1 || cv.ByFault[0].Downtime != 200*time.Millisecond || cv.ByFault[1].Windows != 1 || cv.Unattributed != 0 {
		t.Fatalf("client visible = %+v", cv)
	}
	if got := cv.Windows[0].Faults; len(got) != 1 || got[0] != 0 {
		t.Fatalf("window 0 faults = %v", got)
	}
	if r := result(v, CheckAvailability); r.Status != Success || len(r.Evidence) != 2 {
		t.Fatalf("allowed downtime: %+v", r)
	}
}

func TestMaxWindowsKeepsLongest(t *testing.T) {
	var recs []history.Record
	for i := range 10 {
		s := i * 1000
		recs = append(recs, smtpOp(fail, s, s+10+i), smtpOp(ok, s+10+i, s+20+i))
	}
	v := mustRun(t, mkHist(recs...), Policy{MaxWindows: 3})
	cv := v.Availability[0].ClientVisible
	if cv.Count != 10 || len(cv.Windows) != 3 || cv.Windows[0].Start != ms(7000) || cv.Windows[2].Start != ms(9000) {
		t.Fatalf("windows = %+v", cv.Windows)
	}
}

func TestLatencyDeliveryDrain(t *testing.T) {
	recs := mkHist(
		send("m1", ok, 0, 10), seen("m1", inbox1, 1, 110),
		fault(history.KindFaultInject, "kill", "store-a", 15, 16),
		send("m2", ok, 20, 40), send("m3", ok, 30, 50), send("m4", ok, 2000, 2010),
		fault(history.KindFaultHeal, "kill", "store-a", 1000, 1005),
		seen("m2", inbox1, 2, 1500), seen("m3", inbox1, 3, 3000), seen("m4", inbox1, 4, 2020),
		fin("m1", inbox1, 1, 1), fin("m2", inbox1, 2, 1), fin("m3", inbox1, 3, 1), fin("m4", inbox1, 4, 1), done(1),
	)
	v := mustRun(t, recs, Policy{Thresholds: []string{"delivery_latency_max < 3s", "queue_drain_max_s == 1.995", "latency_smtp.send_count == 4"}})
	if len(v.Latency) != 1 || v.Latency[0].Kind != "smtp.send" || v.Latency[0].Count != 4 || v.Latency[0].Max != 20*time.Millisecond {
		t.Fatalf("latency = %+v", v.Latency)
	}
	d := v.DeliveryLatency
	if d.Count != 4 || d.Unseen != 0 || d.Max < 2949*time.Millisecond || d.Max > 2951*time.Millisecond || d.P50 > 101*time.Millisecond {
		t.Fatalf("delivery = %+v", d)
	}
	if len(v.QueueDrain) != 1 {
		t.Fatalf("drain = %+v", v.QueueDrain)
	}
	dr := v.QueueDrain[0]
	if dr.Fault != 0 || dr.At != ms(1005) || dr.Duration != 1995*time.Millisecond || dr.Pending != 2 || !dr.Complete {
		t.Fatalf("drain = %+v", dr)
	}
	for _, th := range v.Thresholds {
		if th.Status != Success {
			t.Errorf("threshold %s = %s (measured %v)", th.Expr, th.Status, *th.Measured)
		}
	}
}

func TestDrainUnseenIsIncomplete(t *testing.T) {
	v := mustRun(t, mkHist(send("m1", ok, 0, 10), phase(history.PhaseHeal, 0, 100)), Policy{})
	if len(v.QueueDrain) != 1 || v.QueueDrain[0].Complete || v.QueueDrain[0].Unseen != 1 || v.QueueDrain[0].Name != "phase:heal" {
		t.Fatalf("drain = %+v", v.QueueDrain)
	}
	if _, ok := v.Metrics["delivery_latency_p99_s"]; ok {
		t.Fatal("delivery latency measured without any seen record")
	}
}

// sortOps gives exactly slices.SortFunc's order, ties included, on nearly
// sorted ops (its fast path), on ops with equal times and on ops too out
// of order (where it falls back), and leaves no op behind.
func TestSortOpsMatchesSortFunc(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := map[string]func(i, n int) opRec{
		"sorted":   func(i, n int) opRec { return opRec{start: int64(i), end: int64(i) + 100} },
		"reversed": func(i, n int) opRec { return opRec{start: int64(n - i), end: int64(n-i) + 100} },
		"history": func(i, n int) opRec { // attempts end before the op of the message before
			if i%50 == 7 {
				return opRec{start: int64(i) * 10, end: int64(i)*10 + 5, attempt: true}
			}
			return opRec{start: int64(i) * 10, end: int64(i)*10 + 200 + rng.Int64N(3)}
		},
		"stragglers": func(i, n int) opRec {
			if rng.IntN(20) == 0 {
				t := rng.Int64N(int64(n))
				return opRec{start: t, end: t + 1, stage: uint16(i)}
			}
			return opRec{start: int64(i) * 4, end: int64(i)*4 + 2, stage: uint16(i)}
		},
		"ties": func(i, n int) opRec { // equal times, told apart by other fields
			t := int64(i / 3)
			if rng.IntN(10) == 0 {
				t = rng.Int64N(int64(n))
			}
			return opRec{start: t, end: t + 1, ok: i%2 == 0, stage: uint16(i), class: uint16(i % 7)}
		},
		"one tie": func(i, n int) opRec {
			if i == n/2 {
				return opRec{start: int64(i-1) * 4, end: int64(i-1)*4 + 2, ok: true}
			}
			return opRec{start: int64(i) * 4, end: int64(i)*4 + 2}
		},
		"stragglers tied to earlier ops": func(i, n int) opRec {
			if i > 100 && i%37 == 0 {
				j := int64(i - 1 - rng.IntN(100))
				return opRec{start: j * 4, end: j*4 + 2, ok: true, stage: uint16(i)}
			}
			return opRec{start: int64(i) * 4, end: int64(i)*4 + 2, stage: uint16(i)}
		},
		"stragglers tied together": func(i, n int) opRec {
			if i > 0 && i%29 == 0 {
				t := int64(rng.IntN(8))
				return opRec{start: t, end: t + 1, ok: true, stage: uint16(i)}
			}
			return opRec{start: int64(i) * 4, end: int64(i)*4 + 2, stage: uint16(i)}
		},
		"random": func(i, n int) opRec {
			t := rng.Int64N(1000)
			return opRec{start: t, end: t + rng.Int64N(50), stage: uint16(i)}
		},
		"late first": func(i, n int) opRec {
			if i == 0 {
				return opRec{start: 0, end: 1 << 40}
			}
			return opRec{start: int64(i), end: int64(i) + 10}
		},
	}
	for name, gen := range shapes {
		for _, n := range []int{0, 1, 2, 3, 10, 100, 1000, 20000} {
			ops := make([]opRec, n)
			for i := range ops {
				ops[i] = gen(i, n)
			}
			want := slices.Clone(ops)
			slices.SortFunc(want, cmpOps)
			sortOps(ops)
			if !slices.Equal(ops, want) {
				t.Fatalf("%s, %d ops: order differs from slices.SortFunc", name, n)
			}
		}
	}
}
