// Package deploy_test keeps the deployment examples true to the product: every setting they
// give names a flag the program has, and every file parses.
package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/redisconn"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// files are the examples: the compose stack, its Sentinel, Cluster and tracing overrides and the
// Kubernetes manifests.
var files = []string{"../docker-compose.yml", "compose.sentinel.yaml", "compose.cluster.yaml", "compose.tracing.yaml", "kubernetes/worker.yaml", "kubernetes/console.yaml"}

// TestSettingsExist: each ATODENE_WORKER_*, ATODENE_CONSOLE_* and ATODENE_PUBLISHER_* variable the
// examples set is one the program reads.
func TestSettingsExist(t *testing.T) {
	known := map[string]bool{}
	var help bytes.Buffer
	if _, err := config.ParseSettings([]string{"-h"}, func(string) string { return "" }, &help); err == nil {
		t.Fatal("worker -h did not print the settings")
	}
	for _, m := range regexp.MustCompile(`\[\$(ATODENE_WORKER_[A-Z_]+)\]`).FindAllStringSubmatch(help.String(), -1) {
		known[m[1]] = true
	}
	addFromSource(t, known, "../cmd/console/run.go", `fs\.\w*Var\([^"]*"([a-z-]+)"`, func(f string) string {
		return "ATODENE_CONSOLE_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
	})
	addFromSource(t, known, "../internal/publisher/app.go", `a\.env\("([A-Z_]+)"`, func(v string) string { return "ATODENE_PUBLISHER_" + v })
	addFromSource(t, known, "../internal/publisher/order.go", `a\.env\("([A-Z_]+)"`, func(v string) string { return "ATODENE_PUBLISHER_" + v })
	if !known["ATODENE_WORKER_REDIS_URL"] || !known["ATODENE_CONSOLE_REDIS_URL"] || !known["ATODENE_PUBLISHER_REDIS_URL"] {
		t.Fatalf("the settings were not read: %v", known)
	}
	used := 0
	for _, f := range files {
		for _, doc := range documents(t, f) {
			walk(doc, func(s string) {
				if strings.HasPrefix(s, "ATODENE_WORKER_") || strings.HasPrefix(s, "ATODENE_CONSOLE_") || strings.HasPrefix(s, "ATODENE_PUBLISHER_") {
					used++
					if !known[s] {
						t.Errorf("%s sets %s, which no program reads", f, s)
					}
				}
			})
		}
	}
	if used < 10 {
		t.Errorf("only %d settings found in the examples: the walk misses them", used)
	}
}

// TestProbesAndRedisURLs: the Kubernetes probes ask the worker's and the console's health
// endpoints, and the Sentinel and Cluster overrides give Redis URLs of a form the worker takes.
func TestProbesAndRedisURLs(t *testing.T) {
	paths := map[string]bool{}
	for _, f := range []string{"kubernetes/worker.yaml", "kubernetes/console.yaml"} {
		for _, doc := range documents(t, f) {
			walkMap(doc, func(k string, v any) {
				if k == "path" {
					paths[v.(string)] = true
				}
			})
		}
	}
	for p := range paths {
		if p != "/healthz" && p != "/readyz" {
			t.Errorf("a probe asks %s, which neither program serves", p)
		}
	}
	for file, url := range map[string]string{
		"compose.sentinel.yaml": "redis-sentinel://sentinel-1:26379/0?master_name=atodene&addr=sentinel-2:26379&addr=sentinel-3:26379",
		"compose.cluster.yaml":  "redis-cluster://redis:6379?addr=redis-2:6379&addr=redis-3:6379",
	} {
		raw, _ := os.ReadFile(file)
		if !strings.Contains(string(raw), "ATODENE_WORKER_REDIS_URL: "+url) {
			t.Fatalf("%s gives another Redis URL than this test checks", file)
		}
		getenv := func(k string) string {
			return map[string]string{"ATODENE_WORKER_NATS_URL": "nats://n:4222", "ATODENE_WORKER_REDIS_URL": url}[k]
		}
		if _, err := config.ParseSettings(nil, getenv, io.Discard); err != nil {
			t.Errorf("the worker refuses %s's Redis URL: %v", file, err)
		}
		if _, err := redisconn.Open("-redis-url", url, transport.RedisFiles{}); err != nil {
			t.Errorf("%s's Redis URL does not open: %v", file, err)
		}
	}
}

func addFromSource(t *testing.T, known map[string]bool, file, pattern string, name func(string) string) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(pattern).FindAllStringSubmatch(string(src), -1) {
		known[name(m[1])] = true
	}
}

// documents parses every YAML document of file.
func documents(t *testing.T, file string) []any {
	t.Helper()
	raw, err := os.ReadFile(filepath.FromSlash(file))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []any
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		docs = append(docs, doc)
	}
}

// walk calls f with every string in v, keys included.
func walk(v any, f func(string)) {
	switch v := v.(type) {
	case string:
		f(v)
	case map[string]any:
		for k, x := range v {
			f(k)
			walk(x, f)
		}
	case []any:
		for _, x := range v {
			walk(x, f)
		}
	}
}

// walkMap calls f with every key and value of every mapping in v.
func walkMap(v any, f func(string, any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			f(k, x)
			walkMap(x, f)
		}
	case []any:
		for _, x := range v {
			walkMap(x, f)
		}
	}
}
