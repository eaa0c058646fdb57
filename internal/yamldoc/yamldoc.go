// Package yamldoc reads a file that holds one YAML document: a descriptor,
// a scenario file, an images.yaml. yaml.Unmarshal decodes the first
// document of its input and drops the rest unread, so whatever follows a
// "---" (another file pasted in, a merge gone wrong, text that is no YAML
// at all) was silently ignored; Unmarshal here refuses it, with its line.
// It also refuses the line breaks YAML counts and editors do not agree on,
// so that a line number in a message is the line every editor shows.
// It is no YAML parser and knows nothing of what the documents mean.
package yamldoc

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// Error is a problem Unmarshal finds around the YAML itself: a second
// document, or a line break it refuses.
type Error struct {
	Line    int // 1-based, counting "\n"
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Message) }

// oddBreaks are the line breaks the yaml package counts besides "\n" and
// "\r\n": a carriage return alone (classic Mac OS), NEL, LS and PS. A
// line number after one of them is not the line an editor that splits at
// "\n" shows; none has a place in a descriptor or a scenario.
var oddBreaks = []struct{ seq, name string }{
	{"\r", "a carriage return (\\r) not followed by a newline"},
	{"\u0085", "a next-line character (U+0085)"},
	{"\u2028", "a line separator (U+2028)"},
	{"\u2029", "a paragraph separator (U+2029)"},
}

// checkBreaks returns an *Error at the first odd line break in data.
func checkBreaks(data []byte) error {
	first, name := -1, ""
	for _, b := range oddBreaks {
		from := 0
		for {
			i := bytes.Index(data[from:], []byte(b.seq))
			if i < 0 {
				break
			}
			i += from
			if b.seq == "\r" && i+1 < len(data) && data[i+1] == '\n' {
				from = i + 1 // \r\n is a newline
				continue
			}
			if first < 0 || i < first {
				first, name = i, b.name
			}
			break
		}
	}
	if first < 0 {
		return nil
	}
	return &Error{Line: bytes.Count(data[:first], []byte("\n")) + 1,
		Message: name + ": YAML counts it as a line break and editors do not agree; end lines with \\n or \\r\\n"}
}

// Unmarshal decodes data's one YAML document into root as yaml.Unmarshal
// does (no document at all leaves root as it is). It refuses, as an
// *Error, an odd line break (a carriage return alone, NEL, LS, PS) and a
// second document; text that does not parse, before or after the first
// document, is the yaml package's error with its line.
func Unmarshal(data []byte, root *yaml.Node) error {
	if err := checkBreaks(data); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return err
	}
	return &Error{Line: next.Line, Message: "a second YAML document (after ---): the file holds one; remove the --- and what follows it"}
}
