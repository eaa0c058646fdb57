package history

import "io"

// Hooks for the external tests (package history_test), which use
// history/synth and so cannot be in this package.
var (
	ScanN       = scanN
	DecodeSeeds = decodeSeeds
)

// ChunkBytes is the scanner's usual chunk size.
const ChunkBytes = chunkBytes

// NewSlowReader is NewReader decoding every line with encoding/json
// (DecodeLine) alone: the reference the fast decoder is held to.
func NewSlowReader(name string, r io.Reader) (*Reader, error) {
	rd, err := NewReader(name, r)
	if rd != nil {
		rd.slow = true
	}
	return rd, err
}

// FastDecoder is the decoder a scan worker uses.
type FastDecoder struct{ d fastDecoder }

// NewFastDecoder returns a decoder that keeps the strings of every line
// until Reset, as a worker's does.
func NewFastDecoder() *FastDecoder { return &FastDecoder{fastDecoder{keep: true}} }

// Decode decodes one trimmed line.
func (f *FastDecoder) Decode(line []byte, rec *Record) error { return f.d.decode(line, rec) }

// Reset forgets the strings of the lines decoded so far.
func (f *FastDecoder) Reset() { f.d.scratch, f.d.strs = f.d.scratch[:0], f.d.strs[:0] }
