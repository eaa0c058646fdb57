// Package history is the old import path of the history format, kept only
// for loadgen/imapload until its imports move to
// github.com/mailchaos/mailchaos/history (the one definition of the
// records): every name here is an alias of that package's, nothing is
// defined twice. Do not import it in new code; delete it with the last
// importer.
//
// Deprecated: import github.com/mailchaos/mailchaos/history.
package history

import (
	"io"

	"github.com/mailchaos/mailchaos/history"
)

// Aliases of the types of package history.
type (
	// Record is history.Record.
	Record = history.Record
	// Writer is history.Writer.
	Writer = history.Writer
	// Reader is history.Reader.
	Reader = history.Reader
	// Clock is history.Clock.
	Clock = history.Clock
	// Header is history.Header.
	Header = history.Header
)

// The record types, outcomes and scopes of package history.
const (
	TypeOp        = history.TypeOp
	TypeSeen      = history.TypeSeen
	TypeFinal     = history.TypeFinal
	OK            = history.OK
	Fail          = history.Fail
	Indeterminate = history.Indeterminate
	ScopeAttempt  = history.ScopeAttempt
	ScopeOp       = history.ScopeOp
)

// The kinds and phases of package history.
const (
	KindIMAPFetch        = history.KindIMAPFetch
	KindIMAPIdle         = history.KindIMAPIdle
	KindIMAPSearch       = history.KindIMAPSearch
	KindIMAPStore        = history.KindIMAPStore
	KindPhase            = history.KindPhase
	PhaseFinalRead       = history.PhaseFinalRead
	PhaseFinalReadDone   = history.PhaseFinalReadDone
	PhaseReplicaRead     = history.PhaseReplicaRead
	PhaseReplicaReadDone = history.PhaseReplicaReadDone
)

// NewClock is history.NewClock.
func NewClock() Clock { return history.NewClock() }

// NewWriter is history.NewWriter.
func NewWriter(out io.Writer, clock Clock, h Header) (*Writer, error) {
	return history.NewWriter(out, clock, h)
}

// NewReader is history.NewReader.
func NewReader(name string, r io.Reader) (*Reader, error) { return history.NewReader(name, r) }
