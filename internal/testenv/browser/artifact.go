package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/chromedp/chromedp"
)

// EnvArtifacts names the directory under which screenshots are saved, one subdirectory per test.
const EnvArtifacts = "ATODENE_ARTIFACTS"

// ArtifactDir returns the directory where the test's screenshots go, creating it:
// $ATODENE_ARTIFACTS/<TestName>, or <os.TempDir()>/atodene-artifacts/<TestName> where the variable
// is not set. A subtest's directory is nested in its parent's. The directory is not removed when
// the test ends. It fails the test if the directory cannot be created.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir, err := artifactDir(t)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return dir
}

func artifactDir(t testing.TB) (string, error) {
	root := os.Getenv(EnvArtifacts)
	if root == "" {
		root = filepath.Join(os.TempDir(), "atodene-artifacts")
	}
	dir := filepath.Join(root, filepath.Join(sanitizePath(t.Name())...))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("artifacts directory: %w", err)
	}
	return dir, nil
}

// Screenshot saves a PNG of the whole page, not only the window, as <name>.png in ArtifactDir,
// logs its path and returns it. A file of the same name is replaced. It fails the test if the
// screenshot cannot be taken in the action time limit or saved.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	path, err := b.saveScreenshot(ctx, name)
	if err != nil {
		b.t.Fatalf("browser: screenshot %q: %v", name, err)
	}
	return path
}

func (b *Browser) saveScreenshot(ctx context.Context, name string) (string, error) {
	b.t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		return "", err
	}
	dir, err := artifactDir(b.t)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, sanitize(strings.TrimSuffix(name, ".png"))+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", fmt.Errorf("saving: %w", err)
	}
	b.t.Logf("browser: screenshot %s", path)
	return path, nil
}

// sanitizePath turns a test name ("TestConsole/受注 一覧") into safe path elements, one per level.
func sanitizePath(name string) []string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = sanitize(p)
	}
	return parts
}

// sanitize keeps letters (of any script), digits, '-', '_' and '.', replaces anything else with
// '_', and never returns "", "." or "..".
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
	if strings.Trim(s, ".") == "" {
		return strings.Repeat("_", max(len(s), 1))
	}
	return s
}
