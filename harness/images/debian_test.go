package images

import (
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

// TestMakeRootfsDir: the tree's root is 0755 even under a umask of 077 (it
// is "/" inside the chroot, where maintainer scripts that drop root
// privileges must still read /etc/passwd), inside a private temporary
// folder. A 0700 root made exim4-config's post-install fail with "user mail
// was not found".
func TestMakeRootfsDir(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	work := filepath.Join(t.TempDir(), "work")
	tmp, root, err := makeRootfsDir(work, "bookworm")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(root) != tmp {
		t.Errorf("root %s is not inside the temporary folder %s", root, tmp)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{root, 0o755}, {tmp, 0o700}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s: mode %o, want %o", c.path, got, c.want)
		}
	}
	if err := removeRootfs(tmp); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", tmp, err)
	}
}

// TestDebootstrapArgs: the debootstrap run is the plain one (minbase, the
// packages, suite, target, mirror), with the cache only when there is one.
func TestDebootstrapArgs(t *testing.T) {
	im := &Image{Tag: "t/base:1", Kind: KindDebian, Suite: "bookworm", Packages: []string{"exim4-daemon-light", "cyrus-imapd"}}
	got := debootstrapArgs(im, "/var/tmp/x/rootfs", "http://deb.debian.org/debian", "/cache/bookworm")
	want := []string{"--variant=minbase", "--include=exim4-daemon-light,cyrus-imapd", "--cache-dir=/cache/bookworm",
		"bookworm", "/var/tmp/x/rootfs", "http://deb.debian.org/debian"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
	got = debootstrapArgs(&Image{Suite: "trixie"}, "/r", "http://m", "")
	want = []string{"--variant=minbase", "trixie", "/r", "http://m"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
}
