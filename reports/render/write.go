package render

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/reports/evidence"
)

// File names of the reports in a run folder.
const (
	JUnitName   = "junit.xml"
	VerdictName = "verdict.json"
	IndexName   = "index.html"
	HistoryName = "history.jsonl"
	LogsDir     = "logs"
	LatestName  = "latest"
)

// Write writes the reports of run into outDir/<run id>/ (creating it; files
// the caller already put there, such as histories and logs/*.log, are kept
// and listed): verdict.json, junit.xml, index.html, then MANIFEST.sha256
// over every file, its signature when run.SignKey is set, and bundle.tar.gz
// last. It then points outDir/latest at the run folder. It returns the run
// folder's path.
func Write(outDir string, run RunReport) (string, error) {
	if run.RunID == "" || strings.ContainsAny(run.RunID, `/\`) || run.RunID == "." || run.RunID == ".." || run.RunID == LatestName {
		return "", fmt.Errorf("write report: run id %q cannot name a folder", run.RunID)
	}
	if run.Generated.IsZero() {
		run.Generated = time.Now()
	}
	dir := filepath.Join(outDir, run.RunID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("write report: %w", err)
	}
	// Stale evidence from an earlier Write, or the leftovers of one that
	// was interrupted, would be listed as artifacts.
	if err := evidence.RemoveStale(dir); err != nil {
		return "", fmt.Errorf("write report: %w", err)
	}

	histories, paths, err := placeHistories(dir, run)
	if err != nil {
		return "", err
	}

	var buf bytes.Buffer
	if err := WriteJSON(&buf, NewSummary(run, histories)); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, VerdictName), buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("write report: %w", err)
	}
	buf.Reset()
	if err := WriteJUnit(&buf, run); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, JUnitName), buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("write report: %w", err)
	}

	page := Page{RunID: run.RunID, Title: run.Title, Status: run.Status(), ExitCode: run.ExitCode(), Generated: run.Generated, Env: run.Env, Signed: run.SignKey != nil}
	for _, sc := range run.Scenarios {
		page.Scenarios = append(page.Scenarios, scenarioPage(sc, histories[sc.Name], paths[sc.Name]))
	}
	page.Logs, page.Artifacts, err = listRunFiles(dir, page.Signed)
	if err != nil {
		return "", fmt.Errorf("write report: %w", err)
	}
	buf.Reset()
	if err := WriteHTML(&buf, page); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, IndexName), buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("write report: %w", err)
	}

	if _, err := evidence.WriteManifest(dir); err != nil {
		return "", err
	}
	if run.SignKey != nil {
		if err := evidence.Sign(dir, run.SignKey); err != nil {
			return "", err
		}
	}
	if err := evidence.WriteBundle(dir); err != nil {
		return "", err
	}
	if err := UpdateLatest(outDir, run.RunID); err != nil {
		return "", err
	}
	return dir, nil
}

// UpdateLatest points outDir/latest at outDir/<runID> with a relative
// symlink, replacing the old one atomically.
func UpdateLatest(outDir, runID string) error {
	link := filepath.Join(outDir, LatestName)
	if st, err := os.Lstat(link); err == nil && st.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("update %s: exists and is not a symlink", link)
	}
	tmp := filepath.Join(outDir, fmt.Sprintf(".%s.%d", LatestName, os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(runID, tmp); err != nil {
		return fmt.Errorf("update %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("update %s: %w", link, err)
	}
	return nil
}

// placeHistories makes sure every scenario's history is inside the run
// folder, copying it there if needed, and returns the relative paths (for
// links and verdict.json) and the absolute ones (to read).
func placeHistories(dir string, run RunReport) (rel, abs map[string]string, err error) {
	rel, abs = map[string]string{}, map[string]string{}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("write report: %w", err)
	}
	names := map[string]bool{}
	for _, sc := range run.Scenarios {
		if names[sc.Name] || sc.Name == "" {
			return nil, nil, fmt.Errorf("write report: scenario name %q is empty or used twice", sc.Name)
		}
		names[sc.Name] = true
		if sc.History == "" {
			continue
		}
		src, err := filepath.Abs(sc.History)
		if err != nil {
			return nil, nil, fmt.Errorf("write report: %w", err)
		}
		if r, err := filepath.Rel(absDir, src); err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			rel[sc.Name], abs[sc.Name] = filepath.ToSlash(r), src
			continue
		}
		r := HistoryName
		if len(run.Scenarios) > 1 {
			r = anchor(sc.Name) + "/" + HistoryName
		}
		dst := filepath.Join(dir, filepath.FromSlash(r))
		if err := copyFile(src, dst); err != nil {
			return nil, nil, fmt.Errorf("write report: copy history of %s: %w", sc.Name, err)
		}
		rel[sc.Name], abs[sc.Name] = r, dst
	}
	return rel, abs, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// listRunFiles returns the container logs (logs/**/*.log) and every other
// file of the run folder, with the reports and evidence that Write is about
// to create, relative and sorted.
func listRunFiles(dir string, signed bool) (logs, other []string, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		r, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		r = filepath.ToSlash(r)
		if strings.HasPrefix(r, LogsDir+"/") && strings.HasSuffix(r, ".log") {
			logs = append(logs, r)
		} else {
			other = append(other, r)
		}
		return nil
	})
	coming := []string{IndexName, evidence.ManifestName, evidence.BundleName, evidence.BundleSumName}
	if signed {
		coming = append(coming, evidence.SignatureName)
	}
	for _, n := range coming {
		if !slices.Contains(other, n) {
			other = append(other, n)
		}
	}
	slices.Sort(logs)
	slices.Sort(other)
	return logs, other, err
}
