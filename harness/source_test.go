package harness

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writeTree writes files (slash paths relative to dir) and returns dir.
func writeTree(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// oneFile is a descriptor whose one service copies the file source.
func oneFile(source string) string {
	return "version: 1\nservices:\n  a:\n    image: i\n    role: mta\n    files:\n      - path: /etc/x\n        source: " + source + "\n"
}

// A files.source may name only a regular file inside the descriptor's
// folder: no absolute path elsewhere, no "..", no symlink that leads out,
// whatever the descriptor says. Each refusal names the source's line and
// the fix.
func TestSourceConfinedToTheDescriptorsFolder(t *testing.T) {
	root := t.TempDir()
	secret := writeTree(t, filepath.Join(root, "host"), map[string]string{"secret": "host secret\n"})
	stack := writeTree(t, filepath.Join(root, "stack"), map[string]string{
		"configs/ok.conf": "ok\n",
		"other/ok.conf":   "also ok\n",
	})
	symlink(t, filepath.Join(secret, "secret"), filepath.Join(stack, "configs", "leak.conf"))
	symlink(t, secret, filepath.Join(stack, "hostdir"))
	symlink(t, filepath.Join("..", "other", "ok.conf"), filepath.Join(stack, "configs", "inside.conf"))
	if err := os.Mkdir(filepath.Join(stack, "configs", "folder"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Reading a named pipe would wait for a writer for ever.
	if err := syscall.Mkfifo(filepath.Join(stack, "configs", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := "outside the descriptor's folder " + stack + ": copy the file into that folder"
	for _, tc := range []struct {
		source, want string // want "" = accepted
	}{
		{"configs/ok.conf", ""},
		{"./configs/../other/ok.conf", ""},
		{"configs/inside.conf", ""}, // a symlink that stays inside
		{filepath.Join(stack, "configs", "ok.conf"), ""},
		{"../host/secret", "source ../host/secret is " + outside},
		{"../../../../../../etc/passwd", "is " + outside},
		{filepath.Join(secret, "secret"), "is " + outside},
		{"/etc/passwd", "source /etc/passwd is " + outside},
		{"configs/leak.conf", "source configs/leak.conf leads through a symlink to " + filepath.Join(secret, "secret") + ", outside the descriptor's folder " + stack + ": copy the file into the folder instead of linking to it"},
		{"hostdir/secret", "leads through a symlink to " + filepath.Join(secret, "secret")},
		{"configs/folder", "source configs/folder is a folder: name a file in it"},
		{"configs/pipe", "source configs/pipe is not a regular file (mode p"},
		{"configs/none.conf", "source " + filepath.Join(stack, "configs", "none.conf") + " is missing"},
	} {
		t.Run(tc.source, func(t *testing.T) {
			name := filepath.Join(stack, "stack.yaml")
			d, err := Parse(name, []byte(oneFile(tc.source)))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				files, err := renderFiles(d, d.Services["a"], TemplateData{})
				if err != nil || !strings.Contains(string(files[0].Data), "ok") {
					t.Fatalf("render: %v %+v", err, files)
				}
				return
			}
			line := name + ":8: service \"a\": file /etc/x: source "
			if err == nil || !strings.Contains(err.Error(), line) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q and %q", err, line, tc.want)
			}
			if strings.Contains(err.Error(), "host secret") {
				t.Fatal("the error shows the file's content")
			}
		})
	}
}

// A folder reached through a symlink (a cache folder under a linked home,
// the extracted embedded stacks) is the descriptor's folder all the same.
func TestSourceUnderASymlinkedFolder(t *testing.T) {
	root := t.TempDir()
	writeTree(t, filepath.Join(root, "real"), map[string]string{"stack/configs/ok.conf": "ok\n"})
	symlink(t, filepath.Join(root, "real"), filepath.Join(root, "cache"))
	if _, err := Parse(filepath.Join(root, "cache", "stack", "stack.yaml"), []byte(oneFile("configs/ok.conf"))); err != nil {
		t.Fatal(err)
	}
}

// An overlay's sources are relative to its own folder and may name files
// of its base's folder (a variant reuses its base's configs), nothing
// beyond; its base's sources stay the base's.
func TestOverlaySourcesConfinedToItsAndItsBasesFolders(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"secret":                        "host secret\n",
		"stacks/base/stack.yaml":        oneFile("configs/base.conf"),
		"stacks/base/configs/base.conf": "base\n",
		"stacks/variants/v/own.conf":    "own\n",
	})
	overlay := func(source string) []byte {
		return []byte("version: 1\nbase: ../../base/stack.yaml\nservices:\n  a:\n    files:\n      - path: /etc/y\n        source: " + source + "\n")
	}
	name := filepath.Join(root, "stacks", "variants", "v", "stack.yaml")
	for _, source := range []string{"own.conf", "../../base/configs/base.conf"} {
		d, err := Parse(name, overlay(source))
		if err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		files, err := renderFiles(d, d.Services["a"], TemplateData{})
		if err != nil || len(files) != 2 || string(files[0].Data) != "base\n" {
			t.Fatalf("%s: render %v %+v", source, err, files)
		}
	}
	for _, source := range []string{"../../../secret", "../w/x.conf", filepath.Join(root, "secret")} {
		_, err := Parse(name, overlay(source))
		if err == nil || !strings.Contains(err.Error(), ":7: service \"a\": file /etc/y: source "+source+" is outside the folders of the descriptor and its bases") {
			t.Errorf("%s: err = %v", source, err)
		}
	}
}

// The folder may change between Parse and Up: a source replaced by a
// symlink that leads out afterwards is refused when the file is copied.
func TestSourceCheckedAgainWhenRendered(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"secret": "host secret\n", "stack/x.conf": "x\n"})
	d, err := Parse(filepath.Join(root, "stack", "stack.yaml"), []byte(oneFile("x.conf")))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "stack", "x.conf")); err != nil {
		t.Fatal(err)
	}
	symlink(t, filepath.Join(root, "secret"), filepath.Join(root, "stack", "x.conf"))
	files, err := renderFiles(d, d.Services["a"], TemplateData{})
	if err == nil || !strings.Contains(err.Error(), "leads through a symlink") {
		t.Fatalf("render: %v %+v", err, files)
	}
}
