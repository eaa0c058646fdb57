package harness

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A descriptor with a top-level `base:` key is an overlay: it names another
// descriptor (relative to its own folder) and says only what differs, so a
// stack variant (e.g. the seeded defects in fixtures/stacks/defects) is a
// few lines, not a copy that drifts from the stack it varies. The base is
// loaded and validated on its own first; the overlay is then merged into it
// key by key and the result is validated as one descriptor:
//
//   - a mapping merges key by key, the overlay's value winning; a key whose
//     overlay value is null is removed (e.g. `volumes: {queue: null}`);
//   - `links` merge by name and a service's `files` by path: an item with
//     the same key merges into the base's item as a mapping, a new one is
//     appended;
//   - any other list, and every scalar, is replaced;
//   - `name` is never inherited: the overlay names itself, or is named
//     after its folder;
//   - a base file's relative `source:` stays relative to the base's folder;
//     the overlay's own sources are relative to its folder and may name
//     files in its own folder or in a base's (source.go).
//
// Problems found in the merged descriptor carry the overlay's line numbers
// where the overlay wrote the key, and none where the key came from the base.

// maxBaseDepth bounds a chain of overlays (a cycle is reported before this).
const maxBaseDepth = 8

// listKeys names the key that identifies the items of the lists merged item
// by item, by the path of the list (services.* for any service).
var listKeys = map[string]string{
	"links":            "name",
	"services.*.files": "path",
}

// resolveBase merges the descriptor doc (a document's mapping node, read
// from name) into the base it names, and returns the merged node. Without
// a base key, doc is returned as is. chain holds the files being resolved,
// to report a cycle.
func (p *parser) resolveBase(doc *yaml.Node, name string, chain []string) *yaml.Node {
	bn := mapValue(doc, "base")
	if bn == nil {
		return doc
	}
	if bn.Kind != yaml.ScalarNode || bn.Tag == "!!null" || bn.Value == "" {
		p.add(bn.Line, "base must be the path of another stack descriptor, relative to this file's folder (e.g. ../../reference/stack.yaml)")
		return doc
	}
	path := bn.Value
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(name), path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		p.add(bn.Line, "base %s: %v", bn.Value, err)
		return doc
	}
	for _, c := range chain {
		if c == abs {
			p.add(bn.Line, "base %s: the descriptors name each other as base (%s): break the cycle", bn.Value, strings.Join(append(chain, abs), " -> "))
			return doc
		}
	}
	if len(chain) >= maxBaseDepth {
		p.add(bn.Line, "base %s: more than %d descriptors deep: overlay the stack you vary directly", bn.Value, maxBaseDepth)
		return doc
	}
	data, err := readBase(path)
	if err != nil {
		p.add(bn.Line, "base %s: %v", bn.Value, err)
		return doc
	}
	// The base must stand on its own: its mistakes are reported with its
	// own file and lines, not as mysteries of the overlay.
	bd, baseDoc, err := parse(path, data, append(chain, abs))
	if err != nil {
		p.add(bn.Line, "base %s is not a valid stack descriptor:\n%v", bn.Value, err)
		return doc
	}
	p.baseRoots = bd.sourceRoots()
	base := cloneBase(baseDoc, filepath.Dir(abs))
	deleteKey(base, "name")
	deleteKey(base, "base")
	return mergeNode(base, doc, nil)
}

// maxBaseBytes bounds a base descriptor (the reference stack is 12 KB).
const maxBaseBytes = 1 << 20

// readBase reads the descriptor a base names. A base may live outside
// the overlay's folder (../../reference/stack.yaml), so what it may name
// is bounded otherwise: a regular .yaml file of at most maxBaseBytes.
// Problems of a base are reported with their lines, so a base that could
// be any file (/etc/shadow) would show its content; /dev/zero or a named
// pipe would never finish reading.
func readBase(path string) ([]byte, error) {
	if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
		return nil, fmt.Errorf("a base is a stack descriptor, a .yaml file: name one")
	}
	// Stat before opening: opening a named pipe waits for a writer.
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w (the base is relative to this descriptor's folder)", err)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("not a regular file (mode %s): name a stack descriptor", st.Mode())
	case st.Size() > maxBaseBytes:
		return nil, fmt.Errorf("%d bytes, more than a stack descriptor's %d", st.Size(), maxBaseBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBaseBytes+1))
	if err == nil && len(data) > maxBaseBytes {
		err = fmt.Errorf("more than a stack descriptor's %d bytes", maxBaseBytes)
	}
	return data, err
}

// cloneBase deep-copies a base descriptor's node tree for merging: aliases
// are expanded (a merge must not change every user of an anchor), line
// numbers are cleared (they belong to another file), and relative file
// sources are made absolute against the base's folder.
func cloneBase(n *yaml.Node, dir string) *yaml.Node {
	c := cloneNode(n)
	if files := pathNode(c, "services"); files != nil && files.Kind == yaml.MappingNode {
		for i := 1; i < len(files.Content); i += 2 {
			fl := mapValue(files.Content[i], "files")
			if fl == nil || fl.Kind != yaml.SequenceNode {
				continue
			}
			for _, f := range fl.Content {
				if src := mapValue(f, "source"); src != nil && src.Kind == yaml.ScalarNode && src.Value != "" && !filepath.IsAbs(src.Value) {
					src.Value = filepath.Join(dir, src.Value)
				}
			}
		}
	}
	return c
}

// cloneNode copies n and everything under it, expanding aliases and
// clearing positions.
func cloneNode(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	c := *n
	c.Anchor, c.Line, c.Column = "", 0, 0
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, sub := range n.Content {
		c.Content[i] = cloneNode(sub)
	}
	return &c
}

// mergeNode merges overlay into base (which it may modify) at path and
// returns the result.
func mergeNode(base, overlay *yaml.Node, path []string) *yaml.Node {
	for overlay.Kind == yaml.AliasNode && overlay.Alias != nil {
		overlay = overlay.Alias
	}
	switch {
	case base.Kind == yaml.MappingNode && overlay.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(overlay.Content); i += 2 {
			k, v := overlay.Content[i], overlay.Content[i+1]
			if isNull(v) {
				deleteKey(base, k.Value)
				continue
			}
			if j := keyIndex(base, k.Value); j >= 0 {
				base.Content[j] = k // the overlay's key carries the overlay's line
				base.Content[j+1] = mergeNode(base.Content[j+1], v, subPath(path, k.Value))
			} else {
				base.Content = append(base.Content, k, v)
			}
		}
		return base
	case base.Kind == yaml.SequenceNode && overlay.Kind == yaml.SequenceNode && listKey(path) != "":
		key := listKey(path)
		for _, item := range overlay.Content {
			id := mapValue(item, key)
			j := -1
			if id != nil && id.Kind == yaml.ScalarNode {
				for bi, b := range base.Content {
					if bid := mapValue(b, key); bid != nil && bid.Value == id.Value {
						j = bi
						break
					}
				}
			}
			if j < 0 {
				base.Content = append(base.Content, item)
				continue
			}
			base.Content[j] = mergeNode(base.Content[j], item, subPath(path, "*"))
		}
		return base
	}
	return overlay
}

func subPath(path []string, key string) []string {
	return append(append(make([]string, 0, len(path)+1), path...), key)
}

// listKey returns the identifying key of the list at path, or "".
func listKey(path []string) string {
	generic := append([]string(nil), path...)
	if len(generic) >= 2 && generic[0] == "services" {
		generic[1] = "*"
	}
	return listKeys[strings.Join(generic, ".")]
}

func isNull(n *yaml.Node) bool {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// keyIndex returns the index of key's key node in mapping m, or -1.
func keyIndex(m *yaml.Node, key string) int {
	if m == nil || m.Kind != yaml.MappingNode {
		return -1
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

// mapValue returns the value of key in mapping m (aliases expanded), or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	for m != nil && m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	i := keyIndex(m, key)
	if i < 0 {
		return nil
	}
	v := m.Content[i+1]
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	return v
}

// pathNode follows keys from m.
func pathNode(m *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if m = mapValue(m, k); m == nil {
			return nil
		}
	}
	return m
}

func deleteKey(m *yaml.Node, key string) {
	if i := keyIndex(m, key); i >= 0 {
		m.Content = append(m.Content[:i], m.Content[i+2:]...)
	}
}

// Edit is applied to a file's text (a source or a template) before it is
// rendered: every match of the regular expression Match is replaced by
// Replace, in which $1 or ${name} stand for submatches. An edit that
// matches nothing is an error, so a variant cannot silently lose its change
// when the file it edits changes.
type Edit struct {
	// Match is a Go regular expression (RE2; (?m) makes ^ and $ match at line ends).
	Match string `yaml:"match" json:"match"`
	// Replace is the replacement, with $1 / ${name} for submatches.
	Replace string `yaml:"replace" json:"replace"`
}

// edited returns text with f's edits applied and f.Append appended.
func (f FileSpec) edited(text string) (string, error) {
	for i, e := range f.Edits {
		re, err := regexp.Compile(e.Match)
		if err != nil {
			return "", fmt.Errorf("edit #%d: match is not a regexp: %w", i+1, err)
		}
		if !re.MatchString(text) {
			return "", fmt.Errorf("edit #%d: %q matches nothing in the file: fix the edit or the file it edits", i+1, e.Match)
		}
		text = re.ReplaceAllString(text, e.Replace)
	}
	if f.Append != "" {
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += f.Append
	}
	return text, nil
}
