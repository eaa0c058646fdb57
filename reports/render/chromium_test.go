package render

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromium finds Debian's chromium, installing it with apt-get when it is
// missing and the test runs as root (as `make tools-report` does). It skips
// the test only when chromium cannot be had.
func chromium(t *testing.T) string {
	t.Helper()
	find := func() string {
		if p := os.Getenv("CHROMIUM"); p != "" {
			return p
		}
		for _, n := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	apt, err := exec.LookPath("apt-get")
	if os.Geteuid() != 0 || err != nil {
		t.Skip("chromium is not installed and cannot be installed here (needs root and apt-get); run `make tools-report` as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	install := func(args ...string) error {
		cmd := exec.CommandContext(ctx, apt, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("apt-get %s: %v\n%s", strings.Join(args, " "), err, tail(out))
		}
		return err
	}
	t.Log("chromium missing: apt-get install -y chromium")
	if install("install", "-y", "chromium") != nil {
		if install("update") != nil || install("install", "-y", "chromium") != nil {
			t.Skip("chromium could not be installed with apt-get (see the log above)")
		}
	}
	if p := find(); p != "" {
		return p
	}
	t.Skip("chromium installed but not found on PATH")
	return ""
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// runChromium runs headless chromium on a local file with every network
// route closed: no name resolves, and everything else goes to a proxy on
// the discard port, which refuses. It records a NetLog of every request.
func runChromium(t *testing.T, bin, page, netlog string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{
		"--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
		"--user-data-dir=" + t.TempDir(),
		"--host-resolver-rules=MAP * ~NOTFOUND",
		"--proxy-server=http://127.0.0.1:9",
		"--log-net-log=" + netlog,
	}
	args = append(args, extra...)
	args = append(args, "file://"+page)
	cmd := exec.CommandContext(ctx, bin, args...)
	// chromium forks helpers; end the whole group on timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(extra, " "), err, tail(stderr.Bytes()))
	}
	return stdout.Bytes()
}

// pageRequests returns the URLs the page itself asked for over the network,
// from a chromium NetLog. Chromium's own background requests (update
// checks, account probes; they fail here too, nothing resolves) carry the
// initiator "not an origin"; requests made by a page carry its origin
// ("null" for a file:// page).
func pageRequests(t *testing.T, netlog string) []string {
	t.Helper()
	b, err := os.ReadFile(netlog)
	if err != nil {
		t.Fatal(err)
	}
	var log struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int `json:"type"`
			Params struct {
				URL       string `json:"url"`
				Initiator string `json:"initiator"`
			} `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(b, &log); err != nil {
		// A NetLog cut short at exit lacks its closing brackets.
		fixed := append(bytes.TrimRight(bytes.TrimSpace(b), ","), []byte("]}")...)
		if err2 := json.Unmarshal(fixed, &log); err2 != nil {
			t.Fatalf("read netlog: %v", err)
		}
	}
	start, ok := log.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	if !ok {
		t.Fatal("netlog has no URL_REQUEST_START_JOB event type")
	}
	var urls []string
	for _, e := range log.Events {
		u := e.Params.URL
		if e.Type != start || u == "" || e.Params.Initiator == "not an origin" {
			continue
		}
		if strings.HasPrefix(u, "file:") || strings.HasPrefix(u, "data:") || strings.HasPrefix(u, "about:") {
			continue
		}
		urls = append(urls, u)
	}
	return urls
}

// The detector must see a page that does load from the network, or a clean
// result would prove nothing.
func TestChromiumDetectsExternalLoads(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "canary.html")
	os.WriteFile(page, []byte(`<!DOCTYPE html><html><head><link rel="stylesheet" href="https://fonts.example.invalid/x.css"></head>
<body><img src="http://203.0.113.7/pixel.png"><p>canary</p></body></html>`), 0o644)
	netlog := filepath.Join(dir, "netlog.json")
	runChromium(t, bin, page, netlog, "--dump-dom")
	urls := pageRequests(t, netlog)
	joined := strings.Join(urls, " ")
	if !strings.Contains(joined, "203.0.113.7") || !strings.Contains(joined, "fonts.example.invalid") {
		t.Fatalf("the canary's external loads were not detected; saw %v", urls)
	}
}

func TestChromiumRendersReport(t *testing.T) {
	bin := chromium(t)
	_, dir, _ := writeSample(t, fixture{scenario: "region-loss"}, fixture{scenario: "mta-crash", lose: 3})
	page := filepath.Join(dir, IndexName)
	work := t.TempDir()

	// The DOM as chromium built it: the verdict and every chart.
	dom := string(runChromium(t, bin, page, filepath.Join(work, "dom-netlog.json"), "--dump-dom"))
	if !strings.Contains(dom, `<p class="big">FAIL</p>`) {
		t.Errorf("the rendered DOM does not show the FAIL verdict")
	}
	if n := strings.Count(dom, "<svg"); n != 10 {
		t.Errorf("the rendered DOM has %d <svg> charts, want 10", n)
	}
	for _, want := range []string{"Throughput (successful operations per second)", "Delivery latency", "Downtime windows", "3 accepted messages lost"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered DOM lacks %q", want)
		}
	}
	if urls := pageRequests(t, filepath.Join(work, "dom-netlog.json")); len(urls) > 0 {
		t.Errorf("index.html made network requests: %v", urls)
	}

	// The screenshot: exists, decodes, and is not blank.
	shot := filepath.Join(work, "report.png")
	runChromium(t, bin, page, filepath.Join(work, "shot-netlog.json"), "--screenshot="+shot, "--window-size=1280,2400")
	if urls := pageRequests(t, filepath.Join(work, "shot-netlog.json")); len(urls) > 0 {
		t.Errorf("index.html made network requests: %v", urls)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	checkScreenshot(t, img)
	if keep := os.Getenv("MAILCHAOS_SCREENSHOT"); keep != "" {
		b, _ := os.ReadFile(shot)
		os.WriteFile(keep, b, 0o644)
		t.Log("screenshot kept at", keep)
	}
}

// checkScreenshot asserts the page rendered: the FAIL banner's red at the
// top, and enough ink and colours below it for tables and charts.
func checkScreenshot(t *testing.T, img image.Image) {
	t.Helper()
	b := img.Bounds()
	if b.Dx() != 1280 || b.Dy() != 2400 {
		t.Errorf("screenshot is %dx%d, want 1280x2400", b.Dx(), b.Dy())
	}
	r, g, bl, _ := img.At(b.Min.X+10, b.Min.Y+10).RGBA()
	if r>>8 < 0xb0 || g>>8 > 0x50 || bl>>8 > 0x60 {
		t.Errorf("top-left pixel is #%02x%02x%02x, want the FAIL banner's red", r>>8, g>>8, bl>>8)
	}
	colours := map[uint32]bool{}
	ink := 0
	total := 0
	for y := b.Min.Y + 250; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[(r>>8)<<16|(g>>8)<<8|bl>>8] = true
			if r>>8 < 0xf0 || g>>8 < 0xf0 || bl>>8 < 0xf0 {
				ink++
			}
			total++
		}
	}
	if len(colours) < 50 {
		t.Errorf("screenshot has %d colours below the banner: blank or unstyled", len(colours))
	}
	if frac := float64(ink) / float64(total); frac < 0.03 {
		t.Errorf("only %.1f%% of the page below the banner has ink", 100*frac)
	}
}
