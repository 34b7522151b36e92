package worker

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/config"
)

// TestStreamTableMatchesTheStreams: the stream table of docs/architecture.md has one row per
// stream the worker creates, with its subjects and its share of -stream-bytes.
func TestStreamTableMatchesTheStreams(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(string(doc), "\n") {
		if name, _, ok := strings.Cut(strings.TrimPrefix(l, "| `"), "`"); ok && strings.HasPrefix(l, "| `") {
			rows[name] = l
		}
	}
	s := config.DefaultSettings()
	for i, sc := range streamConfigs(s, 1<<20) {
		row, ok := rows[sc.Name]
		if !ok {
			t.Errorf("stream %s has no row", sc.Name)
			continue
		}
		if share := fmt.Sprintf("%d%% of `-stream-bytes`", streamShares[i]); !strings.Contains(row, share) {
			t.Errorf("row of %s does not say %s", sc.Name, share)
		}
		for _, subj := range sc.Subjects {
			if strings.HasPrefix(subj, maxDeliveriesTopic) {
				continue // written with the ORDERS stream's name as a placeholder
			}
			if !strings.Contains(row, "`"+subj+"`") {
				t.Errorf("row of %s does not list subject %s", sc.Name, subj)
			}
		}
	}
	var sum int64
	for _, p := range streamShares {
		sum += p
	}
	if sum != 100 || len(streamShares) != len(streamConfigs(s, 1<<20)) {
		t.Errorf("shares %v: want one per stream, 100%% in all", streamShares)
	}
}
