package check

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailchaos/mailchaos/history"
)

// finish seals the model and judges it: the checks, each a function of
// the sealed model that returns its result with its evidence, then the
// figures (latencies, delivery, drain), the thresholds and the overall
// status.
func (md *model) finish(thresholds []Threshold) Verdict {
	v := md.newVerdict()
	md.seal()
	md.judge(&v)
	md.latencies(&v)
	md.delivery(&v)
	md.drain(&v)
	v.Thresholds = []ThresholdResult{}
	for _, t := range thresholds {
		v.Thresholds = append(v.Thresholds, t.Eval(v.Metrics))
	}
	v.Status, v.Reason = overall(v.Checks, v.Thresholds)
	v.Incomplete = md.missingPhases()
	v.Status, v.Reason = incomplete(v.Status, v.Reason, v.Incomplete)
	return v
}

// newVerdict is the verdict's frame: the header, the span and the faults.
func (md *model) newVerdict() Verdict {
	v := Verdict{
		Version:  VerdictVersion,
		RunID:    md.header.RunID,
		Scenario: md.header.Scenario,
		Seed:     md.header.Seed,
		BaseTime: md.header.BaseTime,
		Records:  md.records,
		Policy:   md.p,
		Metrics:  map[string]float64{},
		Faults:   []Fault{},
	}
	if md.haveSpan {
		v.Span = Span{Start: history.Offset(md.first), End: history.Offset(md.last)}
	}
	for i := range md.faults {
		f := md.faults[i]
		if !f.Healed {
			f.End = v.Span.End
		}
		v.Faults = append(v.Faults, f)
	}
	v.Metrics["faults"] = float64(len(v.Faults))
	return v
}

// A check judges one property of the run. It reads the sealed model,
// writes only its own part of the verdict (its summary and metrics) and
// returns its result, evidence included.
type check struct {
	name string
	run  func(md *model, v *Verdict) Result
	// applies says whether the run has anything to check; a check that
	// does not apply is absent from the verdict, never a success over
	// nothing. Nil means always.
	applies func(md *model) bool
}

// checks are the checks after availability, in verdict order. Adding a
// check is one entry here and one function (see the README).
var checks = []check{
	{name: CheckReplicas, run: (*model).replicaCheck, applies: func(md *model) bool { return len(md.replicas) > 0 }},
	{name: CheckFaultsHealed, run: (*model).healed, applies: func(md *model) bool { return len(md.faults) > 0 }},
}

// judge runs the checks in verdict order: the ledger, the IMAP
// invariants, availability, then checks. Availability reads only the op
// records, the interned stage and class names and the faults, so it runs
// beside the ledger and the IMAP invariants with metrics of its own,
// merged after them, so that later checks still win on a shared name.
func (md *model) judge(v *Verdict) {
	availMetrics := map[string]float64{}
	var pas []ProtocolAvailability
	var avail Result
	availDone := make(chan struct{})
	go func() {
		defer close(availDone)
		pas, avail = md.availability(v.Faults, availMetrics)
	}()
	v.Checks = []Result{md.ledger(v), md.imapInvariants(v)}
	<-availDone
	v.Availability = pas
	maps.Copy(v.Metrics, availMetrics)
	v.Checks = append(v.Checks, avail)
	for _, c := range checks {
		if c.applies == nil || c.applies(md) {
			r := c.run(md, v)
			r.Name = c.name
			v.Checks = append(v.Checks, r)
		}
	}
}

func overall(checks []Result, ths []ThresholdResult) (Status, string) {
	var fails, unknowns []string
	for _, r := range checks {
		switch r.Status {
		case Failure:
			fails = append(fails, r.Name+": "+r.Reason)
		case Unknown:
			unknowns = append(unknowns, r.Name+": "+r.Reason)
		}
	}
	for _, t := range ths {
		switch t.Status {
		case Failure:
			fails = append(fails, fmt.Sprintf("threshold %s failed (measured %s)", t.Expr, fmtFloat(*t.Measured)))
		case Unknown:
			unknowns = append(unknowns, fmt.Sprintf("threshold %s: %s not measured", t.Expr, t.Metric))
		}
	}
	switch {
	case len(fails) > 0:
		return Failure, strings.Join(fails, "; ")
	case len(unknowns) > 0:
		return Unknown, strings.Join(unknowns, "; ")
	}
	return Success, fmt.Sprintf("%d checks and %d thresholds passed", len(checks), len(ths))
}

func fmtFloat(f float64) string { return fmt.Sprintf("%g", f) }

func (md *model) maxEvidence() int {
	if md.p.MaxEvidence > 0 {
		return md.p.MaxEvidence
	}
	return 20
}

func (md *model) maxWindows() int {
	if md.p.MaxWindows > 0 {
		return md.p.MaxWindows
	}
	return 50
}

// classify returns the ledger class of delivery d of message m; "" means
// the pair is not judged (never sent to this user and absent).
func classify(m *msgState, d *delivState, multiRound bool) Class {
	n := int(d.copiesLast)
	if !m.sent() || !d.sent {
		if n > 0 {
			return ClassUnexpected
		}
		return ""
	}
	accepted := m.accepted()
	indet := m.indetCopies()
	if n == 0 {
		switch {
		case d.expunged:
			return ClassExpunged
		case accepted:
			return ClassLost
		}
		return ClassNotDelivered
	}
	if !accepted && indet == 0 {
		return ClassUnexpected // delivered although every attempt failed
	}
	if d.corruptLast > 0 {
		return ClassCorrupted
	}
	if n > 1 {
		if indet > 0 && n <= m.okCopies()+indet {
			return ClassRecoveredDuplicate
		}
		return ClassDuplicated
	}
	if multiRound && d.copiesFirst == 0 {
		return ClassLate
	}
	if accepted {
		return ClassOK
	}
	return ClassRecovered
}

func (md *model) failingClass(cl Class) bool {
	switch cl {
	case ClassLost, ClassDuplicated, ClassCorrupted, ClassUnexpected:
		return true
	case ClassLate:
		return !md.p.AllowLate
	case ClassRecoveredDuplicate:
		return md.p.RejectRecoveredDuplicates
	}
	return false
}

func (md *model) sendFacts(m *msgState) string {
	state := "failed"
	switch {
	case !m.sent():
		return "never sent"
	case m.accepted():
		state = "accepted"
	case m.indeterminate():
		state = "indeterminate"
	}
	return fmt.Sprintf("%s (%d accepted, %d indeterminate, %d failed attempts; %d ok, %d indeterminate, %d failed ops)",
		state, m.okAtt, m.indetAtt, m.failAtt, m.okOps, m.indetOps, m.failOps)
}

func metricName(cl Class) string { return strings.ReplaceAll(string(cl), "-", "_") }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sat16(n uint16) uint16 {
	if n == 0xffff {
		return n
	}
	return n + 1
}

func fmtOffset(ns int64) string {
	if ns < 0 {
		return "never"
	}
	return "at " + time.Duration(ns).String()
}

// resolve finds the message an IMAP action targets: its MsgID, or the
// message observed at its UID (under its UIDVALIDITY, or any one).
func (md *model) resolve(a imapAction) uint32 {
	if a.msg != none {
		return a.msg
	}
	if i, ok := md.uidLookup(a.mbox, a.uidv, a.uid); ok {
		return md.uidList[i].msg
	}
	if a.uidv == 0 {
		for p, k := range md.pairKeys {
			if k.mbox != a.mbox || !md.uidvObs[p].observed {
				continue
			}
			if j, ok := md.uidFind(uint32(p), a.uid); ok {
				return md.uidList[j].msg
			}
		}
	}
	return none
}

// cmpOps orders op records by end, then start: the order sweep needs.
func cmpOps(a, b opRec) int { return cmp.Or(cmp.Compare(a.end, b.end), cmp.Compare(a.start, b.start)) }

// sortOps sorts ops by cmpOps into exactly the order slices.SortFunc gives
// (pdqsort, which decides the order of ops with equal times its own way),
// in about linear time when the ops are nearly sorted, as a history's are:
// written as they end, or in start order with durations alike. The ops
// already in order stay in place, the few others are sorted apart and
// merged in. A sorted order is unique unless two ops have equal times, so
// when some do, or when too many ops are out of order for this to pay, the
// original order is put back and slices.SortFunc sorts it as before.
func sortOps(ops []opRec) {
	type straggler struct {
		op opRec
		at int // index in the original order
	}
	var rest []straggler
	n := 0    // ops[:n]: the ops kept, ascending, in their original order
	read := 0 // ops[read:] are untouched
	for read < len(ops) {
		o := ops[read]
		read++
		if n == 0 || cmpOps(ops[n-1], o) < 0 {
			ops[n] = o
			n++
			continue
		}
		rest = append(rest, straggler{o, read - 1})
		if len(rest) > len(ops)/8+64 {
			break // too many out of order for this to pay
		}
	}
	kept := ops[:n]
	restore := func() {
		// Refill ops[:read] from the back: a straggler where it was, else
		// the last kept op not yet put back (never ahead of its place).
		k, m := len(rest)-1, n-1
		for pos := read - 1; pos >= 0; pos-- {
			if k >= 0 && rest[k].at == pos {
				ops[pos] = rest[k].op
				k--
			} else {
				ops[pos] = ops[m]
				m--
			}
		}
		slices.SortFunc(ops, cmpOps)
	}
	if read < len(ops) {
		restore()
		return
	}
	sorted := make([]opRec, len(rest))
	for i := range rest {
		sorted[i] = rest[i].op
	}
	slices.SortFunc(sorted, cmpOps)
	for i := 1; i < len(sorted); i++ {
		if cmpOps(sorted[i-1], sorted[i]) == 0 {
			restore()
			return
		}
	}
	for _, o := range sorted {
		if _, tie := slices.BinarySearchFunc(kept, o, cmpOps); tie {
			restore()
			return
		}
	}
	// Merge from the back: the write index never passes the kept one.
	i, j := n-1, len(sorted)-1
	for w := len(ops) - 1; j >= 0; w-- {
		if i >= 0 && cmpOps(ops[i], sorted[j]) > 0 {
			ops[w] = ops[i]
			i--
		} else {
			ops[w] = sorted[j]
			j--
		}
	}
}

type window struct {
	start, end   int64
	lastFailFrom int64
	failures     int
	stages       []uint16
	classes      []uint16
	open         bool
}

// sweep computes the windows of ops sorted by (end, start), taking the ops
// that want(op) selects; see Window for the definition.
func sweep(ops []opRec, want func(*opRec) bool, last int64) []window {
	var out []window
	var cur *window
	for i := range ops {
		o := &ops[i]
		if !want(o) {
			continue
		}
		if !o.ok {
			if cur == nil {
				out = append(out, window{start: o.start, end: o.end, lastFailFrom: o.start})
				cur = &out[len(out)-1]
			}
			cur.failures++
			cur.end = max(cur.end, o.end)
			cur.lastFailFrom = max(cur.lastFailFrom, o.start)
			if !slices.Contains(cur.stages, o.stage) {
				cur.stages = append(cur.stages, o.stage)
			}
			if !slices.Contains(cur.classes, o.class) {
				cur.classes = append(cur.classes, o.class)
			}
			continue
		}
		if cur != nil && o.start >= cur.lastFailFrom {
			cur.end = max(cur.end, o.end)
			cur = nil
		}
	}
	if cur != nil {
		cur.end = max(cur.end, last)
		cur.open = true
	}
	return out
}

func (md *model) windows(ws []window, faults []Fault) Windows {
	out := Windows{Windows: []Window{}, ByFault: []FaultOverlap{}}
	for i := range faults {
		out.ByFault = append(out.ByFault, FaultOverlap{Fault: i})
	}
	all := make([]Window, 0, len(ws))
	for _, w := range ws {
		W := Window{Start: history.Offset(w.start), End: history.Offset(w.end), Duration: time.Duration(w.end - w.start), Failures: w.failures, Open: w.open, Stages: []string{}, Classes: []string{}}
		for _, s := range w.stages {
			W.Stages = append(W.Stages, md.strs.names[s])
		}
		for _, s := range w.classes {
			W.Classes = append(W.Classes, md.strs.names[s])
		}
		sort.Strings(W.Stages)
		sort.Strings(W.Classes)
		for i, f := range faults {
			if w.start <= int64(f.End) && w.end >= int64(f.Start) {
				W.Faults = append(W.Faults, i)
				o := &out.ByFault[i]
				o.Windows++
				o.Longest = max(o.Longest, W.Duration)
				o.Downtime += W.Duration
			}
		}
		if len(W.Faults) == 0 {
			out.Unattributed++
		}
		out.Count++
		out.Total += W.Duration
		out.Longest = max(out.Longest, W.Duration)
		all = append(all, W)
	}
	if len(all) > md.maxWindows() {
		slices.SortStableFunc(all, func(a, b Window) int { return cmp.Compare(b.Duration, a.Duration) })
		all = all[:md.maxWindows()]
		slices.SortFunc(all, func(a, b Window) int { return cmp.Compare(a.Start, b.Start) })
	}
	out.Windows = all
	return out
}

// availability computes the windows of every protocol from its op records
// and the faults, writing its metrics to m.
func (md *model) availability(faults []Fault, m map[string]float64) ([]ProtocolAvailability, Result) {
	names := make([]string, 0, len(md.protos))
	for n := range md.protos {
		names = append(names, n)
	}
	sort.Strings(names)
	// Sorting a million ops is most of the work: one goroutine per
	// protocol.
	var wg sync.WaitGroup
	for _, ps := range md.protos {
		wg.Go(func() { sortOps(ps.ops) })
	}
	wg.Wait()
	var nOps, fOps, nAtt, fAtt int64
	var cvMax, cvTot, rawMax, rawTot time.Duration
	var cvN, rawN int
	all := []ProtocolAvailability{}
	var worst []string
	for _, n := range names {
		ps := md.protos[n]
		pa := ProtocolAvailability{Protocol: n, Ops: ps.nOps, FailedOps: ps.failedOps, Attempts: ps.nAtt, FailedAttempts: ps.failedAttempt, Stages: []StageErrors{}}
		pa.Raw = md.windows(sweep(ps.ops, func(*opRec) bool { return true }, md.last), faults)
		pa.ClientVisible = md.windows(sweep(ps.ops, func(o *opRec) bool { return !o.attempt }, md.last), faults)
		for _, st := range ps.stages {
			pa.Stages = append(pa.Stages, *st)
		}
		slices.SortFunc(pa.Stages, func(a, b StageErrors) int { return cmp.Compare(a.Stage, b.Stage) })
		all = append(all, pa)
		nOps, fOps, nAtt, fAtt = nOps+ps.nOps, fOps+ps.failedOps, nAtt+ps.nAtt, fAtt+ps.failedAttempt
		cvMax, cvTot, cvN = max(cvMax, pa.ClientVisible.Longest), cvTot+pa.ClientVisible.Total, cvN+pa.ClientVisible.Count
		rawMax, rawTot, rawN = max(rawMax, pa.Raw.Longest), rawTot+pa.Raw.Total, rawN+pa.Raw.Count
		m[n+"_ops"], m[n+"_failed_ops"], m[n+"_attempts"], m[n+"_failed_attempts"] = float64(ps.nOps), float64(ps.failedOps), float64(ps.nAtt), float64(ps.failedAttempt)
		m[n+"_client_visible_windows"] = float64(pa.ClientVisible.Count)
		m[n+"_client_visible_downtime_max_s"] = pa.ClientVisible.Longest.Seconds()
		m[n+"_client_visible_downtime_total_s"] = pa.ClientVisible.Total.Seconds()
		m[n+"_raw_error_windows"] = float64(pa.Raw.Count)
		m[n+"_raw_error_downtime_max_s"] = pa.Raw.Longest.Seconds()
		m[n+"_raw_error_downtime_total_s"] = pa.Raw.Total.Seconds()
		if pa.ClientVisible.Count > 0 {
			worst = append(worst, fmt.Sprintf("%s: %d windows, longest %s, total %s, %d failed ops", n, pa.ClientVisible.Count, pa.ClientVisible.Longest, pa.ClientVisible.Total, ps.failedOps))
		}
	}
	m["ops"], m["failed_ops"], m["attempts"], m["failed_attempts"] = float64(nOps), float64(fOps), float64(nAtt), float64(fAtt)
	m["client_visible_windows"] = float64(cvN)
	m["client_visible_downtime_max_s"] = cvMax.Seconds()
	m["client_visible_downtime_total_s"] = cvTot.Seconds()
	m["raw_error_windows"] = float64(rawN)
	m["raw_error_downtime_max_s"] = rawMax.Seconds()
	m["raw_error_downtime_total_s"] = rawTot.Seconds()

	res := Result{Name: CheckAvailability}
	limit := md.maxEvidence()
	for _, pa := range all {
		for _, w := range pa.ClientVisible.Windows {
			if len(res.Evidence) >= limit {
				res.EvidenceOmitted++
				continue
			}
			var fs []string
			for _, i := range w.Faults {
				fs = append(fs, fmt.Sprintf("%s(%s)", faults[i].Name, faults[i].Target))
			}
			res.Evidence = append(res.Evidence, Evidence{Problem: "client-visible-downtime", At: w.Start,
				Detail: fmt.Sprintf("%s down %s from %s to %s: %d failed ops at %s (%s); faults: %s", pa.Protocol, w.Duration, w.Start, w.End, w.Failures,
					strings.Join(w.Stages, ","), strings.Join(w.Classes, ","), orNone(fs))})
		}
	}
	switch {
	case nOps == 0 && nAtt == 0:
		res.Status = Unknown
		res.Reason = "no client operations in the history"
	case cvN > 0 && !md.p.AllowClientDowntime:
		res.Status = Failure
		res.Reason = "client-visible downtime: " + strings.Join(worst, "; ")
	default:
		res.Status = Success
		res.Reason = fmt.Sprintf("%d ops, %d failed after retries (%d client-visible windows, longest %s); %d raw error windows from %d failed attempts", nOps, fOps, cvN, cvMax, rawN, fAtt)
	}
	return all, res
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// percentiles reads the HDR quantiles (each the upper bound of its bucket,
// never above the exact maximum).
func percentiles(x *hist) Percentiles {
	mx := time.Duration(x.max)
	q := func(p float64) time.Duration { return min(time.Duration(x.h.ValueAtQuantile(p))*time.Microsecond, mx) }
	return Percentiles{Count: x.h.TotalCount(), P50: q(50), P90: q(90), P99: q(99), P999: q(99.9), Max: mx}
}

func setPercentileMetrics(m map[string]float64, prefix string, p Percentiles) {
	m[prefix+"_p50_s"] = p.P50.Seconds()
	m[prefix+"_p90_s"] = p.P90.Seconds()
	m[prefix+"_p99_s"] = p.P99.Seconds()
	m[prefix+"_p999_s"] = p.P999.Seconds()
	m[prefix+"_max_s"] = p.Max.Seconds()
}

func (md *model) latencies(v *Verdict) {
	v.Latency = []OpLatency{}
	for k, h := range md.latency {
		p := percentiles(h)
		v.Latency = append(v.Latency, OpLatency{Kind: k, Percentiles: p})
		setPercentileMetrics(v.Metrics, "latency_"+k, p)
		v.Metrics["latency_"+k+"_count"] = float64(p.Count)
	}
	slices.SortFunc(v.Latency, func(a, b OpLatency) int { return cmp.Compare(a.Kind, b.Kind) })
}

func (md *model) delivery(v *Verdict) {
	h := newHist()
	var unseen int64
	for mi := range md.msgs {
		m := &md.msgs[mi]
		if m.acceptEnd < 0 {
			continue
		}
		for di := m.firstDeliv; di >= 0; di = md.delivs[di].next {
			d := &md.delivs[di]
			if !d.sent {
				continue
			}
			if d.firstSeen < 0 {
				unseen++
				continue
			}
			h.record(d.firstSeen - m.acceptEnd)
		}
	}
	v.DeliveryLatency = DeliveryLatency{Unseen: unseen}
	v.Metrics["delivery_unseen"] = float64(unseen)
	if h.h.TotalCount() > 0 {
		v.DeliveryLatency.Percentiles = percentiles(h)
		setPercentileMetrics(v.Metrics, "delivery_latency", v.DeliveryLatency.Percentiles)
	}
}

// drain: for each heal at time H, the deliveries accepted at or before H
// are owed; the drain time is the last first-observation among them minus
// H (zero if all were observed before H).
func (md *model) drain(v *Verdict) {
	v.QueueDrain = []Drain{}
	if len(md.heals) == 0 {
		return
	}
	hs := slices.Clone(md.heals)
	slices.SortStableFunc(hs, func(a, b heal) int { return cmp.Compare(a.at, b.at) })
	n := len(hs)
	maxObs := make([]int64, n)
	for i := range maxObs {
		maxObs[i] = -1
	}
	pending := make([]int64, n+1)
	unseen := make([]int64, n+1)
	firstHealAtOrAfter := func(t int64) int {
		return sort.Search(n, func(i int) bool { return hs[i].at >= t })
	}
	for mi := range md.msgs {
		m := &md.msgs[mi]
		if m.acceptEnd < 0 {
			continue
		}
		k := firstHealAtOrAfter(m.acceptEnd)
		if k == n {
			continue
		}
		for di := m.firstDeliv; di >= 0; di = md.delivs[di].next {
			d := &md.delivs[di]
			if !d.sent {
				continue
			}
			if d.firstObs < 0 {
				unseen[k]++
				continue
			}
			maxObs[k] = max(maxObs[k], d.firstObs)
			// Pending for heals k..p-1: those before its first observation.
			p := firstHealAtOrAfter(d.firstObs)
			if p > k {
				pending[k]++
				pending[p]--
			}
		}
	}
	var run, pend, uns int64 = -1, 0, 0
	var maxDrain float64
	var totalUnseen int64
	for i, h := range hs {
		run = max(run, maxObs[i])
		pend += pending[i]
		uns += unseen[i]
		d := Drain{Fault: h.fault, Name: h.name, At: history.Offset(h.at), Pending: pend, Unseen: uns, Complete: uns == 0}
		if run > h.at {
			d.Duration = time.Duration(run - h.at)
		}
		maxDrain = max(maxDrain, d.Duration.Seconds())
		totalUnseen = max(totalUnseen, uns)
		v.QueueDrain = append(v.QueueDrain, d)
	}
	v.Metrics["queue_drain_max_s"] = maxDrain
	v.Metrics["queue_drain_unseen"] = float64(totalUnseen)
}
