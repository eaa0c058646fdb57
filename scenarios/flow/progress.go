package flow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"golang.org/x/term"
)

// Tally is a running count over a history file, read incrementally while
// the run writes it. It sees what the producers flushed (at most a second
// behind), and needs nothing from them but the file.
type Tally struct {
	path    string
	off     int64
	partial []byte

	// Accepted counts SMTP sends that ended ok (the server took the message).
	Accepted int
	// Failed counts SMTP sends that failed after the client's retry budget.
	Failed int
	// Indeterminate counts SMTP sends whose outcome is unknown.
	Indeterminate int
	// Errors counts failed attempts of any operation (raw errors).
	Errors int
	// Seen counts distinct messages observed over IMAP (seen or final).
	Seen int
	// Phase is the last phase event.
	Phase string
	// Faults are the faults injected and not yet healed ("kind:target").
	Faults map[string]bool

	seen map[string]struct{}
}

// NewTally returns a Tally of the history at path (which may not exist yet).
func NewTally(path string) *Tally {
	return &Tally{path: path, Faults: map[string]bool{}, seen: map[string]struct{}{}}
}

// Update reads the records appended since the last call.
func (t *Tally) Update() error {
	f, err := os.Open(t.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		return err
	}
	t.off += int64(len(data))
	data = append(t.partial, data...)
	last := bytes.LastIndexByte(data, '\n')
	if last < 0 {
		t.partial = data
		return nil
	}
	t.partial = append([]byte(nil), data[last+1:]...)
	for _, line := range bytes.Split(data[:last], []byte{'\n'}) {
		var r history.Record
		if json.Unmarshal(line, &r) != nil {
			continue // the checkers judge malformed lines; progress only counts
		}
		t.add(r)
	}
	return nil
}

func (t *Tally) add(r history.Record) {
	switch r.Type {
	case history.TypeOp:
		if r.Scope == history.ScopeAttempt && r.Outcome == history.Fail {
			t.Errors++
		}
		if r.Kind == history.KindSMTPSend && r.Scope == history.ScopeOp {
			switch r.Outcome {
			case history.OK:
				t.Accepted++
			case history.Fail:
				t.Failed++
			case history.Indeterminate:
				t.Indeterminate++
			}
		}
	case history.TypeSeen, history.TypeFinal:
		if r.MsgID != "" {
			if _, ok := t.seen[r.MsgID]; !ok {
				t.seen[r.MsgID] = struct{}{}
				t.Seen++
			}
		}
	case history.TypeEvent:
		key := r.Name
		if r.Target != "" {
			key += ":" + r.Target
		}
		switch r.Kind {
		case history.KindPhase:
			t.Phase = r.Name
		case history.KindFaultInject:
			t.Faults[key] = true
		case history.KindFaultHeal:
			delete(t.Faults, key)
		}
	}
}

// FaultList returns the active faults, sorted, joined by commas ("-" if none).
func (t *Tally) FaultList() string {
	if len(t.Faults) == 0 {
		return "-"
	}
	l := make([]string, 0, len(t.Faults))
	for k := range t.Faults {
		l = append(l, k)
	}
	sort.Strings(l)
	return strings.Join(l, ",")
}

// Progress shows how a run is going: a live line on a terminal, a log line
// every LogEvery otherwise (CI logs), nothing when off.
type Progress struct {
	out      io.Writer
	live     bool
	off      bool
	logEvery time.Duration

	mu       sync.Mutex
	scenario string
	phase    string
	total    time.Duration
	start    time.Time
	tally    *Tally
	lastAcc  int
	lastAt   time.Time
	stop     chan struct{}
	done     chan struct{}
}

// NewProgress returns a Progress writing to out in the given mode (auto,
// line, log or off); auto is a live line when out is a terminal.
func NewProgress(out *os.File, mode string) *Progress {
	p := &Progress{out: out, logEvery: 10 * time.Second}
	switch mode {
	case "off":
		p.off = true
	case "line":
		p.live = true
	case "log":
	default:
		p.live = out != nil && term.IsTerminal(int(out.Fd()))
	}
	return p
}

// Begin starts showing the progress of a scenario whose history is at
// historyPath and whose planned wall time is total.
func (p *Progress) Begin(scenario, historyPath string, total time.Duration) {
	if p == nil || p.off {
		return
	}
	p.End()
	p.mu.Lock()
	p.scenario, p.total, p.start = scenario, total, time.Now()
	p.phase = string(StepUp)
	p.tally = NewTally(historyPath)
	p.lastAcc, p.lastAt = 0, p.start
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	p.mu.Unlock()
	go p.loop(p.stop, p.done)
}

// SetPhase names the phase the scenario is in.
func (p *Progress) SetPhase(phase string) {
	if p == nil || p.off {
		return
	}
	p.mu.Lock()
	p.phase = phase
	p.mu.Unlock()
}

// End stops showing the scenario's progress and prints its last line.
func (p *Progress) End() {
	if p == nil || p.off {
		return
	}
	p.mu.Lock()
	stop, done := p.stop, p.done
	p.stop = nil
	p.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
	line := p.line()
	if p.live {
		fmt.Fprintf(p.out, "\r\033[K%s\n", line)
	} else {
		fmt.Fprintln(p.out, line)
	}
}

func (p *Progress) loop(stop, done chan struct{}) {
	defer close(done)
	every := p.logEvery
	if p.live {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			line := p.line()
			if p.live {
				fmt.Fprintf(p.out, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(p.out, line)
			}
		}
	}
}

// line updates the tally and formats one progress line.
func (p *Progress) line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.tally.Update()
	now := time.Now()
	rate := 0.0
	if dt := now.Sub(p.lastAt).Seconds(); dt > 0 {
		rate = float64(p.tally.Accepted-p.lastAcc) / dt
	}
	p.lastAcc, p.lastAt = p.tally.Accepted, now
	return FormatLine(p.scenario, p.phase, now.Sub(p.start), p.total, rate, p.tally)
}

// FormatLine formats one progress line.
func FormatLine(scenario, phase string, elapsed, total time.Duration, rate float64, t *Tally) string {
	return fmt.Sprintf("[%s] %s/%s phase=%s fault=%s %.1f msg/s errors=%d accepted=%d seen=%d failed=%d indeterminate=%d",
		scenario, elapsed.Truncate(time.Second), total.Truncate(time.Second), phase, t.FaultList(),
		rate, t.Errors, t.Accepted, t.Seen, t.Failed, t.Indeterminate)
}
