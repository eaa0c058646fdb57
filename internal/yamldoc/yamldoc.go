// Package yamldoc reads a file that holds one YAML document: a descriptor,
// a scenario file, an images.yaml. yaml.Unmarshal decodes the first
// document of its input and drops the rest unread, so whatever follows a
// "---" (another file pasted in, a merge gone wrong, text that is no YAML
// at all) was silently ignored; Unmarshal here refuses it, with its line.
// It is no YAML parser and knows nothing of what the documents mean.
package yamldoc

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// ExtraError is a second document after the first.
type ExtraError struct {
	Line int // where the second document starts
}

func (e *ExtraError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Message())
}

// Message is the error without its line.
func (e *ExtraError) Message() string {
	return "a second YAML document (after ---): the file holds one; remove the --- and what follows it"
}

// Unmarshal decodes data's one YAML document into root as yaml.Unmarshal
// does (no document at all leaves root as it is), and refuses anything
// after it: a second document is an *ExtraError, text that does not parse
// the yaml package's error with its line, as an error in the first is.
func Unmarshal(data []byte, root *yaml.Node) error {
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
	return &ExtraError{Line: next.Line}
}
