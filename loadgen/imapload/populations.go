package imapload

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/textproto"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/loadgen/netx"
)

// The identity and integrity headers (the corpus writes them).
const (
	headerID   = "X-Mailchaos-Id"
	headerHash = "X-Mailchaos-Body-Sha256"
)

// msgInfo is what a FETCH learnt about one message.
type msgInfo struct {
	UID        uint32
	MsgID      string
	HeaderHash string // the X-Mailchaos-Body-Sha256 header
	BodySHA256 string // hash of BODY[TEXT] as read; "" if not fetched
	Flags      []string
	Size       int64
}

// fetch streams a UID FETCH of set: UID, FLAGS, size, the identifying
// headers and, with body, BODY.PEEK[TEXT] hashed as it arrives (never held
// in memory). The deadline is re-armed per message, so a long fetch that
// progresses survives and a stuck one does not.
func fetch(s *session, set imap.UIDSet, body bool, perMsg time.Duration) ([]msgInfo, error) {
	opts := &imap.FetchOptions{
		UID: true, Flags: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{headerID, headerHash}, Peek: true}},
	}
	if body {
		opts.BodySection = append(opts.BodySection, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true})
	}
	cmd := s.c.Fetch(set, opts)
	var out []msgInfo
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var info msgInfo
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				info.UID = uint32(it.UID)
			case imapclient.FetchItemDataFlags:
				for _, f := range it.Flags {
					info.Flags = append(info.Flags, string(f))
				}
			case imapclient.FetchItemDataRFC822Size:
				info.Size = it.Size
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				if it.Section.Specifier == imap.PartSpecifierText {
					h := sha256.New()
					if _, err := io.Copy(h, it.Literal); err != nil {
						cmd.Close()
						return nil, wrapf(err, "read body of uid %d", info.UID)
					}
					info.BodySHA256 = hex.EncodeToString(h.Sum(nil))
				} else {
					hdr, err := textproto.ReadHeader(bufio.NewReader(it.Literal))
					if err == nil {
						info.MsgID, info.HeaderHash = hdr.Get(headerID), hdr.Get(headerHash)
					}
				}
			}
		}
		s.nc.ArmFor(perMsg)
		if body && info.BodySHA256 == "" && info.UID != 0 {
			cmd.Close()
			return nil, wrapf(errBodyless, "uid %d", info.UID)
		}
		if info.UID != 0 {
			out = append(out, info)
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, wrapf(err, "uid fetch")
	}
	slices.SortFunc(out, func(a, b msgInfo) int { return int(a.UID) - int(b.UID) })
	return out, nil
}

// newMessage is a message above the tracker's last UID: its UID and its
// sequence number when it was listed.
type newMessage struct {
	uid, seq uint32
}

// listNew returns the messages above last in UID order (UID FETCH last+1:*
// (UID)): a FETCH response carries the sequence number with the UID, which
// tells whether a message was counted by an earlier EXISTS.
func listNew(s *session, last uint32) ([]newMessage, error) {
	var set imap.UIDSet
	set.AddRange(imap.UID(last+1), 0)
	msgs, err := s.c.Fetch(set, &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		return nil, wrapf(err, "uid fetch new")
	}
	var out []newMessage
	for _, m := range msgs {
		// "n:*" always matches the last message, even below n.
		if uint32(m.UID) > last {
			out = append(out, newMessage{uid: uint32(m.UID), seq: m.SeqNum})
		}
	}
	slices.SortFunc(out, func(a, b newMessage) int { return cmp.Compare(a.uid, b.uid) })
	return out, nil
}

// visibleSince is when a listed message is known to have been in the
// mailbox: the instant of the EXISTS that counted it, when the announcement
// covers its sequence number and nothing was expunged since; otherwise the
// instant the listing returned. A message that arrived during the look must
// not be stamped with an EXISTS that came before it: its UID would seem to
// have been observed before lower UIDs were sent.
func visibleSince(m newMessage, a announcement, noticed, listed time.Time) time.Time {
	// Sequence number 0 is a message the server listed before announcing
	// it to this session: not counted by any EXISTS yet.
	if !noticed.IsZero() && a.set && !a.expunged && m.seq >= 1 && m.seq <= a.count {
		return noticed
	}
	return listed
}

func uidSet(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	return set
}

// tracker remembers the last UID a client has seen under one UIDVALIDITY.
type tracker struct {
	validity uint32
	last     uint32
	baseline bool // the first look only takes a baseline: messages sent before the run are not "seen"
}

func (t *tracker) sync(s *session) {
	if t.validity != s.uidValidity {
		t.baseline = t.validity == 0
		t.validity, t.last = s.uidValidity, 0
	}
}

// Kind of a population member.
const (
	RoleWatcher  = "idle"
	RolePoller   = "poll"
	RoleVerifier = "verify"
	RoleFlagger  = "flag"
)

// Member is one client of a population with its role and interval.
type Member struct {
	Client   *Client
	Role     string
	Interval time.Duration // pause between two rounds (pollers, verifiers, flag setters)
	// MaxPerRound bounds the messages a verifier or poller fetches per round.
	MaxPerRound int

	loop context.Context // ends at the graceful stop
}

// NewMember returns a population member named "imap-<role>-<i>" for acct.
func NewMember(role string, i int, acct Account, interval time.Duration, o Options) *Member {
	cl := NewClient(fmt.Sprintf("imap-%s-%d", role, i), acct, o)
	cl.keep = max(interval, cl.o.Timeouts.Idle) + 2*cl.o.Timeouts.Command
	return &Member{Client: cl, Role: role, Interval: interval, MaxPerRound: 200, loop: context.Background()}
}

// Run runs the member until stop is closed (a graceful end: the current
// operation completes, IDLE is ended, LOGOUT) or ctx ends (a hard bound:
// connections are closed). Give ctx a deadline: every loop is bounded by it.
func (m *Member) Run(ctx context.Context, stop <-chan struct{}) {
	loop, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-loop.Done():
		}
	}()
	m.loop = loop
	defer m.Client.Close()
	var t tracker
	for loop.Err() == nil {
		switch m.Role {
		case RoleWatcher:
			m.watchRound(ctx, &t)
		case RolePoller, RoleVerifier:
			m.pollRound(ctx, &t, m.Role == RoleVerifier)
			_ = netx.Sleep(loop, m.Interval)
		case RoleFlagger:
			m.flagRound(ctx)
			_ = netx.Sleep(loop, m.Interval)
		default:
			return
		}
	}
}

// look records every message above the tracker's last UID as seen now (or
// takes the baseline on the first look).
func (m *Member) look(ctx context.Context, t *tracker, verify bool, noticed time.Time) {
	cl := m.Client
	to := cl.o.Timeouts
	var (
		found  []newMessage
		listed time.Time
		ann    announcement
	)
	_, err := cl.do(ctx, history.KindIMAPSearch, StageSearch, to.Command, func(ctx context.Context, s *session, rec *history.Record) error {
		t.sync(s)
		var err error
		found, err = listNew(s, t.last)
		listed = time.Now()
		// Taken after the listing: an EXPUNGE that came with it counts.
		ann = s.takeAnnouncement()
		return err
	})
	if err != nil {
		return
	}
	if t.baseline {
		t.baseline = false
		if len(found) > 0 {
			t.last = found[len(found)-1].uid
		}
		return
	}
	if len(found) > m.MaxPerRound {
		found = found[:m.MaxPerRound]
	}
	for _, nm := range found {
		u := nm.uid
		if m.loop.Err() != nil {
			return
		}
		info, err := m.fetchOne(ctx, t, u, verify)
		if err != nil {
			return
		}
		t.last = u
		if info.UID == 0 {
			continue
		}
		stats := cl.o.Stats
		stats.Seen.Add(1)
		if verify {
			stats.Verified.Add(1)
			if info.HeaderHash != info.BodySHA256 {
				stats.HashMismatches.Add(1)
			}
		}
		clock := cl.o.Recorder.Clock()
		_ = cl.o.Recorder.Seen(history.Record{
			Client: cl.name, Kind: history.KindIMAPFetch, Start: clock.At(visibleSince(nm, ann, noticed, listed)), End: clock.Now(),
			Mailbox: cl.acct.Mailbox(), UIDValidity: t.validity, UID: u, MsgID: info.MsgID,
			BodySHA256: info.BodySHA256, Flags: info.Flags, Size: int(info.Size),
		})
	}
}

// fetchOne fetches one new message for look and records the FETCH; info.UID
// is 0 when the message went before it was fetched or the mailbox was
// renumbered.
func (m *Member) fetchOne(ctx context.Context, t *tracker, u uint32, verify bool) (msgInfo, error) {
	cl := m.Client
	to := cl.o.Timeouts
	var info msgInfo
	_, err := cl.do(ctx, history.KindIMAPFetch, StageFetch, to.Command, func(ctx context.Context, s *session, rec *history.Record) error {
		if s.uidValidity != t.validity {
			return nil // renumbered: the next round starts over
		}
		got, err := fetch(s, uidSet([]uint32{u}), verify, to.Command)
		if err != nil {
			return err
		}
		rec.UID = u
		if len(got) == 0 {
			rec.Detail = "expunged before fetch"
			return nil
		}
		info = got[0]
		rec.MsgID, rec.Size = info.MsgID, int(info.Size)
		if verify {
			rec.BodySHA256 = info.BodySHA256
			if info.HeaderHash != info.BodySHA256 {
				rec.Class = ClassHashMismatch
				rec.Detail = fmt.Sprintf("body hashes to %s, header says %q", info.BodySHA256, info.HeaderHash)
			}
		}
		return nil
	})
	return info, err
}

func (m *Member) pollRound(ctx context.Context, t *tracker, verify bool) {
	m.look(ctx, t, verify, time.Time{})
}

// watchRound looks for new messages, then IDLEs until the server announces
// one (EXISTS), the IDLE period ends or ctx ends. The instant of the EXISTS
// is when the messages became visible.
func (m *Member) watchRound(ctx context.Context, t *tracker) {
	cl := m.Client
	to := cl.o.Timeouts
	m.look(ctx, t, false, time.Time{})
	if m.loop.Err() != nil {
		return
	}
	var noticed time.Time
	_, err := cl.do(ctx, history.KindIMAPIdle, StageIdle, to.Idle+2*to.Command, func(ctx context.Context, s *session, rec *history.Record) error {
		select { // an EXISTS that came before IDLE started is news already
		case <-s.exists:
			noticed = time.Now()
			return nil
		default:
		}
		idle, err := s.c.Idle()
		if err != nil {
			return wrapf(err, "idle")
		}
		timer := time.NewTimer(to.Idle)
		defer timer.Stop()
		select {
		case <-s.exists:
			noticed = time.Now()
			rec.Detail = "exists"
		case <-timer.C:
		case <-m.loop.Done():
		case <-s.c.Closed():
		}
		s.nc.ArmFor(to.Command)
		if err := idle.Close(); err != nil {
			return wrapf(err, "stop idle")
		}
		return wrapf(idle.Wait(), "idle")
	})
	if err == nil && !noticed.IsZero() {
		m.look(ctx, t, false, noticed)
	}
}

// flagRound marks the oldest unseen message \Seen and records it.
func (m *Member) flagRound(ctx context.Context) {
	cl := m.Client
	to := cl.o.Timeouts
	var uid uint32
	_, err := cl.do(ctx, history.KindIMAPSearch, StageSearch, to.Command, func(ctx context.Context, s *session, rec *history.Record) error {
		data, err := s.c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
		if err != nil {
			return wrapf(err, "uid search unseen")
		}
		if all := data.AllUIDs(); len(all) > 0 {
			uid = uint32(slices.Min(all))
		}
		return nil
	})
	if err != nil || uid == 0 {
		return
	}
	_, err = cl.do(ctx, history.KindIMAPStore, StageStore, to.Command, func(ctx context.Context, s *session, rec *history.Record) error {
		rec.UID, rec.Flags = uid, []string{string(imap.FlagSeen)}
		got, err := s.c.Store(uidSet([]uint32{uid}), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
		if err != nil {
			return wrapf(err, "uid store")
		}
		_ = got
		return nil
	})
	if err == nil {
		cl.o.Stats.Stores.Add(1)
	}
}
