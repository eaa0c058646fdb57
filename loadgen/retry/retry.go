// Package retry is the documented client policy of mailchaos: how a client
// that meets an error reconnects and retries, and when it gives up. The
// policy is what defines client-visible downtime: an operation that still
// fails after the policy's budget is a window in which a well-behaved client
// could not get its work done.
//
// The policy is deliberately that of a patient, real client (an MTA for
// SMTP, a mail app for IMAP): exponential backoff with jitter between
// attempts, bounded both by a number of attempts and by a total time budget
// measured from the first attempt. The jitter comes from a seeded source so
// a run is reproducible.
//
// The package decides nothing about which errors are worth retrying: the
// protocol packages do (SMTP 4xx and connection loss: yes; 5xx: no).
package retry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy bounds the retries of one logical operation.
type Policy struct {
	// MaxAttempts is the most tries of one operation, the first included.
	MaxAttempts int
	// Budget is the most time from the first attempt's start after which no
	// new attempt starts.
	Budget time.Duration
	// BaseBackoff is the wait before the second attempt; each later wait
	// doubles, up to MaxBackoff. Waits are jittered to [w/2, w].
	BaseBackoff, MaxBackoff time.Duration
}

// Default is the policy used when none is configured: up to 8 attempts
// within 60 s, backoff 250 ms doubling to 5 s. An outage shorter than about
// a minute is therefore invisible to clients; a longer one is a
// client-visible window.
var Default = Policy{MaxAttempts: 8, Budget: 60 * time.Second, BaseBackoff: 250 * time.Millisecond, MaxBackoff: 5 * time.Second}

// WithDefaults returns p with zero fields taken from Default.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = Default.MaxAttempts
	}
	if p.Budget == 0 {
		p.Budget = Default.Budget
	}
	if p.BaseBackoff == 0 {
		p.BaseBackoff = Default.BaseBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = Default.MaxBackoff
	}
	return p
}

// Validate reports every problem with p at once.
func (p Policy) Validate() error {
	var errs []error
	if p.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("retry: max attempts %d, want at least 1", p.MaxAttempts))
	}
	if p.Budget <= 0 {
		errs = append(errs, fmt.Errorf("retry: budget %v, want > 0", p.Budget))
	}
	if p.BaseBackoff < 0 || p.MaxBackoff < p.BaseBackoff {
		errs = append(errs, fmt.Errorf("retry: backoff %v..%v is not a range", p.BaseBackoff, p.MaxBackoff))
	}
	return errors.Join(errs...)
}

// Backoff returns the wait after the given failed attempt (1-based).
func (p Policy) Backoff(attempt int, r *rand.Rand) time.Duration {
	w := p.BaseBackoff
	for i := 1; i < attempt && w < p.MaxBackoff; i++ {
		w *= 2
	}
	w = min(w, p.MaxBackoff)
	if w <= 0 {
		return 0
	}
	half := w / 2
	return half + time.Duration(r.Int64N(int64(w-half)+1))
}

// Next decides after a failed attempt whether another attempt may start:
// it returns the wait before it and true, or false once the attempts or the
// budget (counted from first, the first attempt's start) are spent.
func (p Policy) Next(attempt int, first, now time.Time, r *rand.Rand) (time.Duration, bool) {
	if attempt >= p.MaxAttempts {
		return 0, false
	}
	w := p.Backoff(attempt, r)
	if now.Add(w).Sub(first) >= p.Budget {
		return 0, false
	}
	return w, true
}

// Deadline returns the instant after which no attempt of an operation that
// started at first may start.
func (p Policy) Deadline(first time.Time) time.Time { return first.Add(p.Budget) }
