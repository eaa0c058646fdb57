package render

import (
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/history"
)

// Bounds on what the charts keep from a history, however long the run.
const (
	// MaxBuckets is the number of time buckets of the over-time charts: the
	// bucket width doubles (adjacent buckets merge) whenever the run
	// outgrows it.
	MaxBuckets = 480
	// displayBuckets is the most buckets a chart shows: Finish coarsens
	// to it, so a short run is not drawn as noise.
	displayBuckets = 100
	// initialWidth is the first bucket width: fine enough for a smoke run.
	initialWidth = 250 * time.Millisecond
	// maxProtocols bounds the protocols tracked per bucket; ops of further
	// protocols are counted in the totals only.
	maxProtocols = 6
	// maxPending bounds the accepted deliveries waiting for their first IMAP
	// observation; beyond it, new ones are not tracked and the delivery
	// chart says so.
	maxPending = 1_000_000
	// maxIntervals bounds the failed-op intervals kept per protocol.
	maxIntervals = 2000
	// maxFaults bounds the fault intervals kept.
	maxFaults = 1000
)

// logHist is a small mergeable histogram of durations: bins are a quarter
// octave wide from 1µs up, so any bin's bounds are within 19% of its values.
type logHist struct {
	bins  [logBins]uint32
	count uint64
}

const (
	logBinsPerOctave = 4
	logBins          = 40 * logBinsPerOctave // 1µs .. 2^40µs (12 days)
)

func logBin(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	i := int(math.Log2(us) * logBinsPerOctave)
	return min(i, logBins-1)
}

// binBounds returns the lower and upper bound of bin i.
func binBounds(i int) (lo, hi time.Duration) {
	f := func(i int) time.Duration {
		return time.Duration(math.Exp2(float64(i)/logBinsPerOctave) * float64(time.Microsecond))
	}
	return f(i), f(i + 1)
}

func (h *logHist) add(d time.Duration) {
	i := logBin(d)
	if h.bins[i] < math.MaxUint32 {
		h.bins[i]++
	}
	h.count++
}

func (h *logHist) merge(o *logHist) {
	for i, n := range o.bins {
		h.bins[i] = uint32(min(uint64(h.bins[i])+uint64(n), math.MaxUint32))
	}
	h.count += o.count
}

// quantile returns the upper bound of the bin holding quantile q.
func (h *logHist) quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(h.count)))
	var seen uint64
	for i, n := range h.bins {
		seen += uint64(n)
		if seen >= want && n > 0 {
			_, hi := binBounds(i)
			return hi
		}
	}
	_, hi := binBounds(logBins - 1)
	return hi
}

// protoBucket is what one protocol did in one time bucket.
type protoBucket struct {
	OpsOK, OpsFail uint32 // scope op records by outcome (indeterminate counts as fail)
	AttemptsFail   uint32 // scope attempt records that did not succeed
	Accepted       uint32 // smtp.send ops accepted (ok)
	latency        *logHist
}

// Interval is a span of offsets on the history's clock.
type Interval struct {
	Start, End history.Offset
}

// FaultSpan is one fault interval taken from the history's events: from the
// inject call to the heal's observed effect.
type FaultSpan struct {
	Name, Target string
	Start, End   history.Offset
	Healed       bool
	Failed       bool
}

// PhaseMark is a phase event of the run.
type PhaseMark struct {
	Name string
	At   history.Offset
}

// Stats is what the charts need from a history, gathered in one streaming
// pass in bounded memory (see MaxBuckets and the other limits).
type Stats struct {
	Header    history.Record
	Records   int64
	End       history.Offset // the latest offset seen
	Width     time.Duration  // bucket width
	Protocols []string       // in order of first appearance, at most maxProtocols
	buckets   [][]protoBucket

	Faults []FaultSpan
	Phases []PhaseMark

	// FailedOps is, per protocol, the merged intervals of failed scope-op
	// records: the client-visible failures, for when no verdict is given.
	FailedOps map[string][]Interval

	// Delivery is accept -> first IMAP observation per (message, mailbox).
	delivery        logHist
	pending         map[uint64]history.Offset // accepted, not yet seen: accept time (fnv-64 of message and mailbox)
	early           map[uint64]history.Offset // seen before its send record: first seen time
	PendingDropped  int64                     // deliveries not tracked because maxPending was reached
	DeliveryUnseen  int64                     // accepted deliveries never observed
	openFaults      map[string][]int          // name\x00target -> indexes into Faults, FIFO
	FaultsDropped   int64
	IntervalsCapped bool
}

// NewStats returns an empty Stats ready for Add.
func NewStats(h history.Record) *Stats {
	return &Stats{
		Header:     h,
		Width:      initialWidth,
		FailedOps:  map[string][]Interval{},
		pending:    map[uint64]history.Offset{},
		early:      map[uint64]history.Offset{},
		openFaults: map[string][]int{},
	}
}

// ReadStats reads the history file at path in one pass.
func ReadStats(path string) (*Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer f.Close()
	return ReadStatsFrom(path, f)
}

// ReadStatsFrom reads a history from r in one pass; name is used in errors.
func ReadStatsFrom(name string, r io.Reader) (*Stats, error) {
	rd, err := history.NewReader(name, r)
	if err != nil {
		return nil, err
	}
	s := NewStats(rd.Header())
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		s.Add(rec)
	}
	s.Finish()
	return s, nil
}

func deliveryKey(msgID, mailbox string) uint64 {
	addr, _, _ := strings.Cut(mailbox, "/")
	h := fnv.New64a()
	h.Write([]byte(msgID))
	h.Write([]byte{0})
	h.Write([]byte(strings.ToLower(addr)))
	return h.Sum64()
}

// bucket returns the bucket for protocol p at offset at, growing and
// coarsening the buckets as needed; nil if p is beyond maxProtocols.
func (s *Stats) bucket(p string, at history.Offset) *protoBucket {
	pi := slices.Index(s.Protocols, p)
	if pi < 0 {
		if len(s.Protocols) >= maxProtocols {
			return nil
		}
		s.Protocols = append(s.Protocols, p)
		pi = len(s.Protocols) - 1
	}
	if at < 0 {
		at = 0
	}
	for time.Duration(at) >= s.Width*MaxBuckets {
		s.coarsen()
	}
	bi := int(time.Duration(at) / s.Width)
	for len(s.buckets) <= bi {
		s.buckets = append(s.buckets, make([]protoBucket, maxProtocols))
	}
	return &s.buckets[bi][pi]
}

// coarsen doubles the bucket width, merging adjacent buckets.
func (s *Stats) coarsen() {
	n := (len(s.buckets) + 1) / 2
	out := make([][]protoBucket, n)
	for i := range out {
		out[i] = s.buckets[2*i]
		if 2*i+1 < len(s.buckets) {
			for p := range out[i] {
				a, b := &out[i][p], &s.buckets[2*i+1][p]
				a.OpsOK += b.OpsOK
				a.OpsFail += b.OpsFail
				a.AttemptsFail += b.AttemptsFail
				a.Accepted += b.Accepted
				if b.latency != nil {
					if a.latency == nil {
						a.latency = new(logHist)
					}
					a.latency.merge(b.latency)
				}
			}
		}
	}
	s.buckets = out
	s.Width *= 2
}

// Add folds one record into the stats.
func (s *Stats) Add(r history.Record) {
	s.Records++
	s.End = max(s.End, r.Start, r.End)
	switch r.Type {
	case history.TypeOp:
		s.addOp(r)
	case history.TypeEvent:
		s.addEvent(r)
	case history.TypeSeen:
		if r.MsgID == "" {
			return
		}
		k := deliveryKey(r.MsgID, r.Mailbox)
		if at, ok := s.pending[k]; ok {
			s.delivery.add(time.Duration(max(r.Start-at, 0)))
			delete(s.pending, k)
			return
		}
		// Seen before its send record was written (the reply raced the
		// delivery), or seen again: keep the first sighting, bounded.
		if _, ok := s.early[k]; !ok && len(s.early) < maxPending {
			s.early[k] = r.Start
		}
	}
}

func (s *Stats) addOp(r history.Record) {
	p := r.Kind.Protocol()
	b := s.bucket(p, r.End)
	ok := r.Outcome == history.OK
	if r.Scope == history.ScopeAttempt {
		if !ok && b != nil {
			b.AttemptsFail++
		}
		return
	}
	// Scope op: the outcome under the client policy.
	if b != nil {
		if ok {
			b.OpsOK++
			if b.latency == nil {
				b.latency = new(logHist)
			}
			b.latency.add(time.Duration(r.End - r.Start))
		} else {
			b.OpsFail++
		}
	}
	if !ok {
		s.addFailed(p, Interval{r.Start, r.End})
	}
	if r.Kind == history.KindSMTPSend && ok {
		if b != nil {
			b.Accepted++
		}
		for _, rc := range r.Rcpt {
			k := deliveryKey(r.MsgID, rc)
			if seen, ok := s.early[k]; ok {
				s.delivery.add(time.Duration(max(seen-r.End, 0)))
				delete(s.early, k)
				continue
			}
			if len(s.pending) >= maxPending {
				s.PendingDropped++
				continue
			}
			s.pending[k] = r.End
		}
	}
}

// addFailed merges a failed op's interval into the protocol's list. Ops
// arrive roughly in end order, so merging with the last interval suffices
// for all but stragglers, which are appended and merged in Finish.
func (s *Stats) addFailed(p string, iv Interval) {
	list := s.FailedOps[p]
	if n := len(list); n > 0 && iv.Start <= list[n-1].End && iv.End >= list[n-1].Start {
		list[n-1].Start = min(list[n-1].Start, iv.Start)
		list[n-1].End = max(list[n-1].End, iv.End)
		s.FailedOps[p] = list
		return
	}
	if len(list) >= maxIntervals {
		s.IntervalsCapped = true
		return
	}
	s.FailedOps[p] = append(list, iv)
}

func (s *Stats) addEvent(r history.Record) {
	switch r.Kind {
	case history.KindPhase:
		if len(s.Phases) < maxFaults {
			name := r.Name
			if r.Target != "" { // a replica read names its replica
				name += " " + r.Target
			}
			s.Phases = append(s.Phases, PhaseMark{Name: name, At: r.Start})
		}
	case history.KindFaultInject:
		if len(s.Faults) >= maxFaults {
			s.FaultsDropped++
			return
		}
		key := r.Name + "\x00" + r.Target
		s.Faults = append(s.Faults, FaultSpan{Name: r.Name, Target: r.Target, Start: r.Start, End: -1, Failed: r.Outcome == history.Fail})
		s.openFaults[key] = append(s.openFaults[key], len(s.Faults)-1)
	case history.KindFaultHeal:
		key := r.Name + "\x00" + r.Target
		q := s.openFaults[key]
		if len(q) == 0 {
			return
		}
		f := &s.Faults[q[0]]
		s.openFaults[key] = q[1:]
		f.End = max(r.End, r.Start)
		f.Healed = true
		f.Failed = f.Failed || r.Outcome == history.Fail
	}
}

// Finish closes what is still open at the end of the history: unhealed
// faults end at the last offset, merged intervals are sorted, and accepted
// deliveries never seen are counted.
func (s *Stats) Finish() {
	for i := range s.Faults {
		if s.Faults[i].End < 0 {
			s.Faults[i].End = s.End
		}
	}
	for p, list := range s.FailedOps {
		slices.SortFunc(list, func(a, b Interval) int { return int(a.Start - b.Start) })
		var out []Interval
		for _, iv := range list {
			if n := len(out); n > 0 && iv.Start <= out[n-1].End {
				out[n-1].End = max(out[n-1].End, iv.End)
				continue
			}
			out = append(out, iv)
		}
		s.FailedOps[p] = out
	}
	s.DeliveryUnseen = int64(len(s.pending))
	for len(s.buckets) > displayBuckets {
		s.coarsen()
	}
	s.pending, s.early = nil, nil
}

// Buckets returns the number of time buckets in use.
func (s *Stats) Buckets() int { return len(s.buckets) }
