package corpus

import "testing"

// BenchmarkMessage measures building one message of the default mix.
func BenchmarkMessage(b *testing.B) {
	g := newGen(b, Options{Seed: 1})
	b.ReportAllocs()
	for i := range b.N {
		m, err := g.Message("s", i, "a@example.test", true)
		if err != nil {
			b.Fatal(err)
		}
		m.Release() // as the sender does once a message is sent
	}
}

// BenchmarkMessageFixed10K measures the benchmark's fixed-size messages.
func BenchmarkMessageFixed10K(b *testing.B) {
	g := newGen(b, Options{Seed: 1, Sigma: -1, MedianSize: 10440, MinSize: 1024, MaxSize: 10440, MaxRecipients: 1})
	b.ReportAllocs()
	var n int
	for i := range b.N {
		m, err := g.Message("s", i, "a@example.test", true)
		if err != nil {
			b.Fatal(err)
		}
		n += m.Size()
		m.Release()
	}
	b.SetBytes(int64(n / b.N))
}
