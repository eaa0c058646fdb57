package smtpload

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailchaos/mailchaos/loadgen/netx"
)

// Stage is one segment of an arrival-rate schedule: the rate moves linearly
// from the previous stage's end rate to Rate over Duration.
type Stage struct {
	Duration time.Duration
	Rate     float64 // messages per second at the end of the stage
}

// Schedule is an arrival rate over time: StartRate, then each stage in turn.
// A constant rate r for d is Schedule{StartRate: r, Stages: []Stage{{d, r}}}.
type Schedule struct {
	StartRate float64
	Stages    []Stage
}

// Constant returns a schedule of rate messages/s for d.
func Constant(rate float64, d time.Duration) Schedule {
	return Schedule{StartRate: rate, Stages: []Stage{{Duration: d, Rate: rate}}}
}

// Validate reports every problem with the schedule.
func (s Schedule) Validate() error {
	var errs []error
	if len(s.Stages) == 0 {
		errs = append(errs, errors.New("schedule: no stages"))
	}
	if why := rateProblem(s.StartRate); why != "" {
		errs = append(errs, fmt.Errorf("schedule: start rate %v: %s", s.StartRate, why))
	}
	for i, st := range s.Stages {
		if st.Duration <= 0 {
			errs = append(errs, fmt.Errorf("schedule: stage %d: duration %v, want > 0", i+1, st.Duration))
		}
		if why := rateProblem(st.Rate); why != "" {
			errs = append(errs, fmt.Errorf("schedule: stage %d: rate %v: %s", i+1, st.Rate, why))
		}
	}
	return errors.Join(errs...)
}

// rateProblem says why r is no rate a schedule can hold, or "": a
// negative rate, NaN (which passes every comparison) and +Inf (which makes
// every arrival due at once) are not.
func rateProblem(r float64) string {
	switch {
	case math.IsNaN(r) || math.IsInf(r, 0):
		return "not a finite number"
	case r < 0:
		return "negative"
	}
	return ""
}

// Duration returns the total length of the schedule.
func (s Schedule) Duration() time.Duration {
	var d time.Duration
	for _, st := range s.Stages {
		d += st.Duration
	}
	return d
}

// Count returns the expected number of arrivals in [0, t]: the integral of
// the rate.
func (s Schedule) Count(t time.Duration) float64 {
	from := s.StartRate
	n := 0.0
	for _, st := range s.Stages {
		d := st.Duration.Seconds()
		if t <= 0 {
			break
		}
		x := math.Min(t.Seconds(), d)
		// Rate at x into the stage: from + (to-from)*x/d.
		n += from*x + (st.Rate-from)*x*x/(2*d)
		t -= st.Duration
		from = st.Rate
	}
	return n
}

// TimeOf returns when arrival n (1-based) is due, or the schedule's end if
// it never is.
func (s Schedule) TimeOf(n int) time.Duration {
	lo, hi := time.Duration(0), s.Duration()
	if s.Count(hi) < float64(n) {
		return hi
	}
	for hi-lo > time.Microsecond {
		mid := lo + (hi-lo)/2
		if s.Count(mid) >= float64(n) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// OpenConfig configures an open-model run.
type OpenConfig struct {
	Schedule    Schedule
	MaxMessages int    // stop dispatching after this many (0: no count bound beyond the schedule)
	Stream      string // message ID stream (default "open"); seq is the arrival number
	// WarmTimeout bounds the warm-up: before the first arrival every sender
	// opens its session (see Sender.Warm), so that start-up connects are not
	// counted as dropped ticks. The schedule starts when all are open or
	// after WarmTimeout (default 10s); a sender still connecting then is
	// busy, and ticks that find no idle sender are dropped as usual.
	// Negative: no warm-up, sessions open at the first sends.
	WarmTimeout time.Duration
}

// LoadResult summarises a run of a load model.
type LoadResult struct {
	// Elapsed is, in the open model, from the schedule's start to the last
	// arrival's due time or the last send's start, whichever is later; in
	// the closed model, from the start to the end of the last send.
	Elapsed    time.Duration
	Warmup     time.Duration // open model: time spent opening sessions before the first arrival
	Warm       int           // open model: senders with an open session when the schedule started
	Dispatched int64         // sends started
	Dropped    int64         // open model: arrivals that found no idle sender
	Ticks      int64         // open model: arrivals decided (Dispatched + Dropped)
	// Open model: how long after their due time sends started. Late counts
	// those that started more than LateAfter after it, MaxLag is the worst.
	// A late start is not a drop: the sender was free and had taken the
	// arrival before it was due.
	Late   int64
	MaxLag time.Duration
}

// LateAfter is how long after its due time a send may start before it
// counts as late: well above the timer's usual slack, well below the time a
// send takes.
const LateAfter = 2 * time.Millisecond

// RunOpen runs the open model: arrivals follow the schedule whatever the
// server does. Every sender that is free takes the next arrival nobody has
// taken and waits for its due time; an arrival whose time comes before any
// sender took it found every sender busy and is counted as dropped, never
// queued (no coordinated omission). Because free senders take arrivals ahead
// of time, an arrival is never dropped just because a timer or goroutine ran
// late: a late wake-up delays that send (see LoadResult.Late) but does not
// lose it. Sessions are opened before the first arrival (see
// OpenConfig.WarmTimeout). It returns when the schedule ends or MaxMessages
// have been dispatched, and every started send has finished. Senders are
// closed (QUIT) at the end.
func RunOpen(ctx context.Context, cfg OpenConfig, senders []*Sender) (LoadResult, error) {
	if err := cfg.Schedule.Validate(); err != nil {
		return LoadResult{}, err
	}
	if len(senders) == 0 {
		return LoadResult{}, errors.New("open model: no senders")
	}
	stream := cfg.Stream
	if stream == "" {
		stream = "open"
	}
	warmFor := cfg.WarmTimeout
	if warmFor == 0 {
		warmFor = 10 * time.Second
	}
	a := newArrivals(cfg.Schedule, cfg.MaxMessages, senders[0].cfg.Stats)
	begin := make(chan struct{}) // closed when the schedule starts
	var (
		wg, warming sync.WaitGroup
		warm        atomic.Int64
	)
	warmStart := time.Now()
	for _, s := range senders {
		wg.Add(1)
		warming.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			if warmFor > 0 && s.Warm(ctx) {
				warm.Add(1)
			}
			warming.Done()
			select {
			case <-begin:
			case <-ctx.Done():
				return
			}
			a.serve(ctx, func(seq int) { s.Send(ctx, stream, seq) }, s.Idle)
		}()
	}
	var warmup time.Duration
	if warmFor > 0 {
		warmed := make(chan struct{})
		go func() { warming.Wait(); close(warmed) }()
		t := time.NewTimer(warmFor)
		select {
		case <-warmed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		warmup = time.Since(warmStart)
	}
	a.start = time.Now()
	close(begin)
	wg.Wait()
	res := a.result()
	res.Warmup, res.Warm = warmup, int(warm.Load())
	return res, ctx.Err()
}

// arrivals hands the arrivals of an open-model schedule to free senders.
type arrivals struct {
	sched   Schedule
	total   int64 // arrivals in the schedule
	maxMsgs int64 // 0: no bound
	stats   *Stats
	start   time.Time // set before any sender serves

	next                atomic.Int64 // the last arrival taken
	dispatched, dropped atomic.Int64
	late                atomic.Int64
	maxLag, end         atomic.Int64 // nanoseconds; end: see LoadResult.Elapsed
}

func newArrivals(sched Schedule, maxMsgs int, stats *Stats) *arrivals {
	// A hair over the count, so that floating-point error in a ramp's
	// integral cannot lose its last arrival.
	return &arrivals{sched: sched, total: int64(sched.Count(sched.Duration()) + 1e-6), maxMsgs: int64(maxMsgs), stats: stats}
}

// serve is one free sender's loop: take the next arrival, tell idle how
// long the sender will wait for it (nil: nobody to tell), wait for its due
// time, send it with send; until no arrival is left or ctx ends.
func (a *arrivals) serve(ctx context.Context, send func(seq int), idle func(wait time.Duration)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		seq, due, ok := a.take()
		if !ok {
			return
		}
		if wait := due - time.Since(a.start); wait > 0 {
			if idle != nil {
				idle(wait)
			}
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if !a.dispatch(due) {
			return
		}
		send(seq)
	}
}

// take gives a free sender the next arrival nobody has taken, with its due
// time. Arrivals already due were not taken in time because every sender
// was busy: they are dropped on the way. ok is false when none is left.
func (a *arrivals) take() (seq int, due time.Duration, ok bool) {
	for {
		if a.maxMsgs > 0 && a.dispatched.Load() >= a.maxMsgs {
			return 0, 0, false
		}
		n := a.next.Add(1)
		if n > a.total {
			return 0, 0, false
		}
		due := a.sched.TimeOf(int(n))
		if time.Since(a.start) <= due {
			return int(n), due, true
		}
		a.dropped.Add(1)
		a.stats.Ticks.Add(1)
		a.stats.Dropped.Add(1)
		atomicMax(&a.end, int64(due))
	}
}

// dispatch records the start of the send of an arrival due at due, or
// reports false if MaxMessages have been dispatched already.
func (a *arrivals) dispatch(due time.Duration) bool {
	if n := a.dispatched.Add(1); a.maxMsgs > 0 && n > a.maxMsgs {
		a.dispatched.Add(-1)
		return false
	}
	a.stats.Ticks.Add(1)
	now := time.Since(a.start)
	if now-due > LateAfter {
		a.late.Add(1)
	}
	atomicMax(&a.maxLag, int64(now-due))
	atomicMax(&a.end, int64(now))
	return true
}

func atomicMax(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

func (a *arrivals) result() LoadResult {
	d, dr := a.dispatched.Load(), a.dropped.Load()
	return LoadResult{
		Elapsed: time.Duration(a.end.Load()), Dispatched: d, Dropped: dr, Ticks: d + dr,
		Late: a.late.Load(), MaxLag: time.Duration(a.maxLag.Load()),
	}
}

// ClosedConfig configures a closed-model run.
type ClosedConfig struct {
	Duration    time.Duration // stop starting sends after this long
	MaxMessages int           // stop after this many sends in all (0: bounded by Duration only)
	Think       time.Duration // pause between two sends of one sender
}

// RunClosed runs the closed model: every sender sends back to back (with
// Think between sends), each under its own name as the message stream, until
// Duration passes or MaxMessages sends have started. It returns when every
// started send has finished; senders are closed (QUIT) at the end.
func RunClosed(ctx context.Context, cfg ClosedConfig, senders []*Sender) (LoadResult, error) {
	if cfg.Duration <= 0 {
		return LoadResult{}, fmt.Errorf("closed model: duration %v, want > 0", cfg.Duration)
	}
	if len(senders) == 0 {
		return LoadResult{}, errors.New("closed model: no senders")
	}
	var started atomic.Int64
	start := time.Now()
	stopAt := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			for seq := 1; ctx.Err() == nil && time.Now().Before(stopAt); seq++ {
				if n := started.Add(1); cfg.MaxMessages > 0 && n > int64(cfg.MaxMessages) {
					started.Add(-1)
					return
				}
				s.Send(ctx, s.Name(), seq)
				if cfg.Think > 0 && netx.Sleep(ctx, cfg.Think) != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return LoadResult{Elapsed: time.Since(start), Dispatched: started.Load()}, ctx.Err()
}
