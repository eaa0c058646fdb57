package check

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/loadgen/history"
)

// genHistory writes a synthetic history of n messages with their SMTP and
// IMAP operations and a final read, shaped like a real run: 50 SMTP
// clients, 1000 mailboxes, a message every 100 µs, 1% of sends retried
// after an indeterminate attempt, a fault every 100k messages with a burst
// of failed ops, and IMAP fetch ops, seen records and one final-read round.
func genHistory(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := func(r history.Record) {
		// encoding/json via the history writer's own encoding would be
		// slow for 4M lines; build the common lines by hand.
		bw.WriteString(line(r))
		bw.WriteByte('\n')
	}
	fmt.Fprintf(bw, `{"type":"header","version":%d,"run_id":"bench","seed":1,"scenario":"bench","start":0}`+"\n", history.SchemaVersion)
	const step = 100_000 // ns between messages
	uids := make([]uint32, 1000)
	type fin struct {
		id  string
		box int
		uid uint32
	}
	finals := make([]fin, 0, n)
	for i := range n {
		t := int64(i) * step
		box := i % 1000
		client := i % 50
		id := "bench.smtp-" + strconv.Itoa(client) + "." + strconv.Itoa(i)
		rcpt := fmt.Sprintf("user%04d@example.test", box+1)
		mbox := rcpt + "/INBOX"
		sum := fmt.Sprintf("%064x", i)
		if i%100_000 == 50_000 {
			enc(history.Record{Type: history.TypeEvent, Kind: history.KindFaultInject, Client: "nemesis", Name: "kill", Target: "mta-a", Start: history.Offset(t), End: history.Offset(t + 1000), Outcome: history.OK})
			for k := range 10 {
				enc(history.Record{Type: history.TypeOp, Client: "smtp-99", Kind: history.KindSMTPSend, Scope: history.ScopeAttempt, Attempt: 1, MsgID: id + ".f" + strconv.Itoa(k), Rcpt: []string{rcpt}, Start: history.Offset(t + int64(k)*1000), End: history.Offset(t + int64(k)*1000 + 500), Outcome: history.Fail, Class: "conn-refused", Stage: "connect"})
			}
			enc(history.Record{Type: history.TypeEvent, Kind: history.KindFaultHeal, Client: "nemesis", Name: "kill", Target: "mta-a", Start: history.Offset(t + 20_000), End: history.Offset(t + 30_000), Outcome: history.OK})
		}
		start, end := t, t+20_000_000
		attempts := 1
		if i%100 == 7 {
			enc(history.Record{Type: history.TypeOp, Client: "smtp-" + strconv.Itoa(client), Kind: history.KindSMTPSend, Scope: history.ScopeAttempt, Attempt: 1, MsgID: id, Rcpt: []string{rcpt}, BodySHA256: sum, Start: history.Offset(start), End: history.Offset(start + 5_000_000), Outcome: history.Indeterminate, Class: "timeout", Stage: "data-end"})
			enc(history.Record{Type: history.TypeOp, Client: "smtp-" + strconv.Itoa(client), Kind: history.KindSMTPSend, Scope: history.ScopeAttempt, Attempt: 2, MsgID: id, Rcpt: []string{rcpt}, BodySHA256: sum, Start: history.Offset(start + 6_000_000), End: history.Offset(end), Outcome: history.OK, Class: "smtp:250 2.0.0", Stage: "data-end"})
			attempts = 2
		}
		enc(history.Record{Type: history.TypeOp, Client: "smtp-" + strconv.Itoa(client), Kind: history.KindSMTPSend, Scope: history.ScopeOp, Attempt: attempts, MsgID: id, Rcpt: []string{rcpt}, BodySHA256: sum, Size: 20480, Start: history.Offset(start), End: history.Offset(end), Outcome: history.OK, Class: "smtp:250 2.0.0", Stage: "data-end"})
		uids[box]++
		uid := uids[box]
		seenAt := end + 30_000_000
		enc(history.Record{Type: history.TypeSeen, Client: "imap-idle-" + strconv.Itoa(box), MsgID: id, Mailbox: mbox, UIDValidity: 1700000000, UID: uid, Start: history.Offset(seenAt)})
		enc(history.Record{Type: history.TypeOp, Client: "imap-poll-" + strconv.Itoa(box%20), Kind: history.KindIMAPFetch, Scope: history.ScopeOp, Attempt: 1, MsgID: id, Mailbox: mbox, UIDValidity: 1700000000, UID: uid, BodySHA256: sum, Start: history.Offset(seenAt + 1_000_000), End: history.Offset(seenAt + 3_000_000), Outcome: history.OK, Stage: "fetch"})
		finals = append(finals, fin{id, box, uid})
	}
	t := int64(n)*step + 60e9
	enc(history.Record{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: history.PhaseFinalRead, Attempt: 1, Start: history.Offset(t), End: history.Offset(t)})
	for k, f := range finals {
		_ = k
		i, _ := strconv.Atoi(f.id[strings.LastIndexByte(f.id, '.')+1:])
		rcpt := fmt.Sprintf("user%04d@example.test", f.box+1)
		enc(history.Record{Type: history.TypeFinal, Client: "final-read", MsgID: f.id, Mailbox: rcpt + "/INBOX", UIDValidity: 1700000000, UID: f.uid, BodySHA256: fmt.Sprintf("%064x", i), Flags: []string{`\Seen`}, Attempt: 1, Start: history.Offset(t + int64(k)*1000)})
	}
	t += int64(n)*1000 + 1e9
	enc(history.Record{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: history.PhaseFinalReadDone, Attempt: 1, Start: history.Offset(t), End: history.Offset(t)})
	enc(history.Record{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: history.PhaseDone, Start: history.Offset(t), End: history.Offset(t)})
	return bw.Flush()
}

// line encodes r as the history writer does (encoding/json field order).
func line(r history.Record) string {
	var b strings.Builder
	b.WriteString(`{"type":"` + string(r.Type) + `"`)
	str := func(k, v string) {
		if v != "" {
			b.WriteString(`,"` + k + `":"` + v + `"`)
		}
	}
	num := func(k string, v int64, always bool) {
		if v != 0 || always {
			b.WriteString(`,"` + k + `":` + strconv.FormatInt(v, 10))
		}
	}
	str("client", r.Client)
	str("kind", r.Kind)
	str("name", r.Name)
	str("target", r.Target)
	num("start", int64(r.Start), true)
	num("end", int64(r.End), false)
	str("scope", string(r.Scope))
	num("attempt", int64(r.Attempt), false)
	str("outcome", string(r.Outcome))
	str("class", r.Class)
	str("stage", r.Stage)
	str("msg_id", r.MsgID)
	if len(r.Rcpt) > 0 {
		b.WriteString(`,"rcpt":["` + strings.Join(r.Rcpt, `","`) + `"]`)
	}
	str("body_sha256", r.BodySHA256)
	num("size", int64(r.Size), false)
	str("mailbox", r.Mailbox)
	num("uidvalidity", int64(r.UIDValidity), false)
	num("uid", int64(r.UID), false)
	if len(r.Flags) > 0 {
		b.WriteString(`,"flags":["` + strings.ReplaceAll(strings.Join(r.Flags, `","`), `\`, `\\`) + `"]`)
	}
	b.WriteString("}")
	return b.String()
}

var (
	benchMu    sync.Mutex
	benchFiles = map[int]string{}
	benchDir   string
)

// benchHistory generates the n-message history once per test binary.
func benchHistory(tb testing.TB, n int) string {
	benchMu.Lock()
	defer benchMu.Unlock()
	if p, ok := benchFiles[n]; ok {
		return p
	}
	if benchDir == "" {
		d, err := os.MkdirTemp("", "mailchaos-check-bench-")
		if err != nil {
			tb.Fatal(err)
		}
		benchDir = d
	}
	p := filepath.Join(benchDir, fmt.Sprintf("history-%d.jsonl", n))
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	if err := genHistory(f, n); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	benchFiles[n] = p
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// cpuSeconds is this process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// peakRSS returns VmHWM in bytes after resetting it with clear_refs (Linux).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkCheckMillion checks generated histories of 100k and 1M messages
// (run it with -benchmem; sizes side by side show the growth).
func BenchmarkCheckMillion(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			p := benchHistory(b, n)
			st, _ := os.Stat(p)
			runtime.GC()
			resetPeakRSS()
			b.ReportAllocs()
			cpu0 := cpuSeconds()
			b.ResetTimer()
			var v Verdict
			for range b.N {
				var err error
				v, err = Run(context.Background(), p, Policy{Thresholds: []string{"lost == 0", "delivery_latency_p99 < 30s"}})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// The machine is shared: CPU seconds per op tell the cost when
			// the wall clock (ns/op) is inflated by other load.
			b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
			if v.Status != Success || v.Ledger.Counts[ClassOK]+v.Ledger.Counts[ClassRecovered] != int64(n) {
				b.Fatalf("verdict %s: %s; counts %v", v.Status, v.Reason, v.Ledger.Counts)
			}
			b.ReportMetric(peakRSS()/(1<<20), "peakRSS-MiB")
			b.ReportMetric(float64(v.Records), "records")
			b.ReportMetric(float64(st.Size())/(1<<20), "file-MiB")
		})
	}
}

// BenchmarkDecode decodes the lines of a generated history with the fast
// decoder, as a worker does (-benchmem; MB/s is history bytes).
func BenchmarkDecode(b *testing.B) {
	var buf strings.Builder
	if err := genHistory(&buf, 2000); err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")[1:] // no header: it takes encoding/json
	raw := make([][]byte, len(lines))
	for i, l := range lines {
		raw[i] = []byte(l)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	d := fastDecoder{keep: true}
	var rec history.Record
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for range b.N {
		d.scratch, d.strs = d.scratch[:0], d.strs[:0]
		for _, l := range raw {
			if err := d.decode(l, &rec); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric((cpuSeconds()-cpu0)*1e9/float64(b.N*len(raw)), "cpu-ns/line")
}
