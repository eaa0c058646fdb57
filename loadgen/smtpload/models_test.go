package smtpload

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/loadgen/internal/testsrv"
)

// TestOpenModelWarmsSessions checks that every sender has its session before
// the first arrival, so start-up connects cost no ticks.
func TestOpenModelWarmsSessions(t *testing.T) {
	srv := testsrv.StartSMTP(t, testsrv.SMTPOptions{})
	rec := newRec(t)
	stats := &Stats{}
	var senders []*Sender
	for i := range 16 {
		senders = append(senders, NewSender(SenderConfig{Name: fmt.Sprintf("smtp-%d", i+1), Endpoint: Endpoint{Addr: srv.Addr},
			User: User{Address: "user0001@example.test"}, Corpus: gen(t), Recorder: rec, Stats: stats, MsgsPerSession: 1000}))
	}
	res, err := RunOpen(context.Background(), OpenConfig{Schedule: Constant(100, 200*time.Millisecond)}, senders)
	if err != nil {
		t.Fatal(err)
	}
	if res.Warm != 16 || res.Warmup <= 0 {
		t.Errorf("warm-up: %+v", res)
	}
	if n := stats.Sessions.Load(); n != 16 {
		t.Errorf("%d sessions, want 16 (one each, opened before the first arrival)", n)
	}
}

// TestOpenModelWarmTimeout checks that a server that never greets delays the
// schedule by no more than the warm-up bound, and that the senders still
// connecting are busy: their ticks are dropped.
func TestOpenModelWarmTimeout(t *testing.T) {
	addr := testsrv.StartRaw(t, func(c net.Conn) { time.Sleep(2 * time.Second); c.Close() })
	s := NewSender(SenderConfig{Name: "smtp-1", Endpoint: Endpoint{Addr: addr}, User: User{Address: "user0001@example.test"},
		Corpus: gen(t), Recorder: newRec(t), Timeouts: Timeouts{Command: time.Second}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	res, _ := RunOpen(ctx, OpenConfig{Schedule: Constant(100, 300*time.Millisecond), WarmTimeout: 200 * time.Millisecond}, []*Sender{s})
	if res.Warm != 0 || res.Warmup < 200*time.Millisecond || res.Warmup > time.Second {
		t.Errorf("warm-up: %+v", res)
	}
	if res.Dropped < 25 {
		t.Errorf("ticks while the only sender was connecting: %+v", res)
	}
	if el := time.Since(start); el > 8*time.Second {
		t.Errorf("took %v", el)
	}
}

// BenchmarkDispatch measures the open model's hand-out of arrivals alone,
// with senders that do no I/O: the cost of an arrival and the rate error it
// adds on its own.
func BenchmarkDispatch(b *testing.B) {
	for _, workers := range []int{8, 256} {
		b.Run(fmt.Sprint(workers), func(b *testing.B) {
			for range b.N {
				a := newArrivals(Constant(2000, time.Second), 0, &Stats{})
				a.start = time.Now()
				var wg sync.WaitGroup
				for range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						a.serve(context.Background(), func(int) {}, nil)
					}()
				}
				wg.Wait()
				res := a.result()
				b.ReportMetric(float64(res.Dropped), "dropped")
				b.ReportMetric(float64(res.Dispatched)/float64(res.Ticks), "dispatched/tick")
				b.ReportMetric(float64(res.Elapsed.Milliseconds()), "window-ms")
				b.ReportMetric(float64(res.MaxLag.Microseconds()), "max-lag-µs")
			}
		})
	}
}

// TestArrivalTakenAheadIsSentLate checks the open model's accounting when a
// sender runs late: the arrival it had taken before its due time is sent,
// late, not dropped; the arrivals that came due while no sender was free to
// take them are dropped; every arrival is counted once.
func TestArrivalTakenAheadIsSentLate(t *testing.T) {
	stats := &Stats{}
	a := newArrivals(Constant(1000, time.Second), 0, stats)
	a.start = time.Now()
	seq, due, ok := a.take()
	if !ok || seq != 1 || due > 2*time.Millisecond {
		t.Fatalf("first take: %d %v %v", seq, due, ok)
	}
	time.Sleep(30 * time.Millisecond) // the sender's goroutine runs late
	if !a.dispatch(due) {
		t.Fatal("dispatch refused")
	}
	seq, _, ok = a.take()
	res := a.result()
	if !ok || res.Dispatched != 1 || res.Late != 1 || res.MaxLag < 25*time.Millisecond {
		t.Errorf("late send: %+v", res)
	}
	if res.Dropped < 25 || int64(seq) != res.Dropped+2 || res.Ticks != res.Dispatched+res.Dropped {
		t.Errorf("arrivals due while the only sender was late: next %d, %+v", seq, res)
	}
	if s := stats.Snapshot(); s.Ticks != res.Ticks || s.Dropped != res.Dropped {
		t.Errorf("stats %+v vs result %+v", s, res)
	}
}

// TestArrivalsStopAtMaxMessages checks that the open model dispatches no more
// than MaxMessages however many senders are free.
func TestArrivalsStopAtMaxMessages(t *testing.T) {
	a := newArrivals(Constant(2000, time.Second), 25, &Stats{})
	a.start = time.Now()
	var wg sync.WaitGroup
	var sent atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.serve(context.Background(), func(int) { sent.Add(1) }, nil)
		}()
	}
	wg.Wait()
	if res := a.result(); res.Dispatched != 25 || sent.Load() != 25 || res.Elapsed > 500*time.Millisecond {
		t.Errorf("sent %d, %+v; want 25 sends, stopping early", sent.Load(), res)
	}
}
