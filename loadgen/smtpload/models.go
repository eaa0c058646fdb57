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
	if s.StartRate < 0 {
		errs = append(errs, fmt.Errorf("schedule: negative start rate %v", s.StartRate))
	}
	for i, st := range s.Stages {
		if st.Duration <= 0 {
			errs = append(errs, fmt.Errorf("schedule: stage %d: duration %v, want > 0", i+1, st.Duration))
		}
		if st.Rate < 0 {
			errs = append(errs, fmt.Errorf("schedule: stage %d: negative rate %v", i+1, st.Rate))
		}
	}
	return errors.Join(errs...)
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
	Elapsed    time.Duration // from the first arrival to the end of dispatching
	Warmup     time.Duration // open model: time spent opening sessions before the first arrival
	Warm       int           // open model: senders with an open session when the schedule started
	Dispatched int64         // sends started
	Dropped    int64         // open model: arrivals that found no idle sender
	Ticks      int64         // open model: arrivals scheduled
}

// RunOpen runs the open model: arrivals follow the schedule whatever the
// server does; each goes to an idle sender, and an arrival that finds none
// is counted as dropped, never queued (no coordinated omission). Sessions are
// opened before the first arrival (see OpenConfig.WarmTimeout). It returns
// when the schedule ends or MaxMessages have been dispatched, and every
// started send has finished. Senders are closed (QUIT) at the end.
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
	stats := senders[0].cfg.Stats
	warmFor := cfg.WarmTimeout
	if warmFor == 0 {
		warmFor = 10 * time.Second
	}
	work := make(chan int) // unbuffered: a send succeeds only if a sender is idle
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
			for seq := range work {
				s.Send(ctx, stream, seq)
			}
		}()
	}
	var res LoadResult
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
		res.Warmup, res.Warm = time.Since(warmStart), int(warm.Load())
	}

	d := dispatch(ctx, cfg.Schedule, cfg.MaxMessages, work, stats)
	res.Elapsed, res.Ticks, res.Dispatched, res.Dropped = d.Elapsed, d.Ticks, d.Dispatched, d.Dropped
	close(work)
	wg.Wait()
	return res, ctx.Err()
}

// dispatch issues the arrivals of sched on work, which must be unbuffered:
// an arrival is handed to a worker already waiting on it, or dropped. It
// stops at the schedule's end, after maxMsgs dispatches (0: no bound) or
// when ctx ends, and does not close work.
func dispatch(ctx context.Context, sched Schedule, maxMsgs int, work chan<- int, stats *Stats) LoadResult {
	var res LoadResult
	total := sched.Duration()
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	issued := 0
loop:
	for {
		el := time.Since(start)
		due := int(sched.Count(min(el, total)))
		for issued < due {
			issued++
			res.Ticks++
			stats.Ticks.Add(1)
			select {
			case work <- issued:
				res.Dispatched++
			default:
				res.Dropped++
				stats.Dropped.Add(1)
			}
			if maxMsgs > 0 && res.Dispatched >= int64(maxMsgs) {
				break loop
			}
		}
		if el >= total {
			break
		}
		next := sched.TimeOf(issued + 1)
		timer.Reset(max(next-time.Since(start), 0))
		select {
		case <-ctx.Done():
			break loop
		case <-timer.C:
		}
	}
	res.Elapsed = time.Since(start)
	return res
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
