package deploy_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.uber.org/zap/zaptest"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
	"github.com/atodene-worker/atodene-worker/internal/worker"
)

const (
	dashboardFile = "grafana/atodene-worker.json"
	rulesFile     = "prometheus/alerts.yaml"
)

// prometheusOwn are the series Prometheus makes itself for each target it scrapes, which the
// rules may use beside the worker's: up says whether the scrape worked.
var prometheusOwn = map[string]bool{"up": true}

// TestDashboardAndAlertsUseExportedMetrics: the alert rules pass the validation of `promtool check
// rules` (rulefmt.ParseFile, which parses every expression), have unique names and a runbook row
// each in docs/operations-worker.md; every expression of the rules and of the dashboard's targets
// parses as PromQL, and every metric they select is one a running worker exports, as its
// /metrics shows after it handled an order.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	exported := scrapeWorker(t)
	p := parser.NewParser(parser.Options{})
	check := func(where, expr string) {
		t.Helper()
		e, err := p.ParseExpr(expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", where, expr, err)
			return
		}
		used := metricNames(e)
		if len(used) == 0 {
			t.Errorf("%s: %q selects no metric by name", where, expr)
		}
		for _, name := range used {
			if !exported[name] && !prometheusOwn[name] {
				t.Errorf("%s: %q uses %s, which the worker does not export", where, expr, name)
			}
		}
	}

	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("promtool check rules: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	runbook := runbookRows(t)
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			if alerts[name] {
				t.Errorf("%s: %s defined twice", rulesFile, name)
			}
			alerts[name] = true
			check(rulesFile+": "+name, r.Expr)
			if r.Alert != "" && !runbook[r.Alert] {
				t.Errorf("docs/operations-worker.md#alerts has no row for %s", r.Alert)
			}
			if r.Alert != "" && !strings.Contains(r.Annotations["runbook"], r.Alert) {
				t.Errorf("%s: %s's runbook annotation %q does not name it", rulesFile, r.Alert, r.Annotations["runbook"])
			}
		}
	}
	if len(alerts) < 6 {
		t.Errorf("%s: only %d rules read", rulesFile, len(alerts))
	}
	for name := range runbook {
		if !alerts[name] {
			t.Errorf("docs/operations-worker.md#alerts has a row for %s, which %s lacks", name, rulesFile)
		}
	}

	targets := dashboardTargets(t)
	if len(targets) < 10 {
		t.Errorf("%s: only %d targets read", dashboardFile, len(targets))
	}
	for _, tg := range targets {
		check(dashboardFile+": "+tg.panel, grafanaVariables.Replace(tg.expr))
	}
}

// grafanaVariables gives Grafana's built-in interval variables a value, as Grafana does before it
// sends a query.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// metricNames returns the metric names the selectors of e ask for.
func metricNames(e parser.Expr) []string {
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && name == "" {
					name = m.Value
				}
			}
			out = append(out, name)
		}
		return nil
	})
	return out
}

type target struct{ panel, expr string }

// dashboardTargets returns the PromQL of every target of the dashboard's panels, those of
// collapsed rows included, after checking that its panels have unique ids.
func dashboardTargets(t *testing.T) []target {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		ID      int     `json:"id"`
		Type    string  `json:"type"`
		Title   string  `json:"title"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var dash struct {
		UID    string  `json:"uid"`
		Title  string  `json:"title"`
		Panels []panel `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("%s: no uid or title", dashboardFile)
	}
	var out []target
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d used twice", dashboardFile, p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no target", dashboardFile, p.Title)
			}
			for _, tg := range p.Targets {
				out = append(out, target{p.Title, tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	return out
}

// runbookRows returns the alert names of the table under "## Alerts" in docs/operations-worker.md.
func runbookRows(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile("../docs/operations-worker.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Alerts\n")
	if !ok {
		t.Fatal("docs/operations-worker.md has no ## Alerts section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	out := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(\\w+)` \\|").FindAllStringSubmatch(section, -1) {
		out[m[1]] = true
	}
	return out
}

// scrapeWorker runs a worker (an in-process NATS server, the shared Redis under a key prefix of
// the test's own, a sandbox), has it handle one order, and returns the names of the series its
// /metrics shows: a histogram's _bucket, _sum and _count.
func scrapeWorker(t *testing.T) map[string]bool {
	t.Helper()
	sb, err := sandbox.New(sandbox.Config{Shops: []sandbox.Shop{sandbox.DemoShop}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { sb.Close(); srv.Close() })
	shops, err := config.NewShops([]config.Shop{{ID: "shop-a", Atodene: config.Atodene{
		BaseURL: srv.URL + "/api/", ShopCode: sandbox.DemoShop.ShopCode, LinkID: sandbox.DemoShop.LinkID,
		LinkPassword: config.NewSecret(sandbox.DemoShop.LinkPassword), InvoiceDelivery: config.InvoiceSeparate,
	}, Fees: fees.Table{Mode: fees.ModeKeep}}})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(testenv.StartNATS(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	rdb, prefix := testenv.Redis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := config.DefaultSettings()
	s.HTTPAddr = ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, worker.Deps{Settings: s, Shops: shops, NATS: nc, Redis: rdb, KeyPrefix: prefix,
			Logger: zaptest.NewLogger(t), HTTPListener: ln})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	base := "http://" + s.HTTPAddr
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	wait.For(t, 10*time.Second, "the worker ready", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]any{
		"shop_id": "shop-a", "order_id": "M-1", "ordered_at": "2026-11-26T10:14:03+09:00",
		"buyer": map[string]any{"name": "加藤 太郎", "name_kana": "カトウ タロウ", "zip": "150-0001",
			"address": "東京都渋谷区神宮前1-1-1", "phone": "03-1234-5678", "email": "taro@example.jp"},
		"items":        []any{map[string]any{"name": "緑茶ティーバッグ 50包", "unit_price": 1200, "quantity": 2}},
		"shipping_fee": 550, "fee": 0, "discount": 0, "billed_amount": 2950,
	})
	body, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: "ev-1", Source: "test", Type: events.TypeOrderCreated,
		Time: "2026-11-26T10:15:00+09:00", DataContentType: "application/json", Data: data})
	msg := nats.NewMsg(events.Subject(events.TypeOrderCreated, "shop-a"))
	msg.Data = body
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(events.MsgID("test", "ev-1"))); err != nil {
		t.Fatal(err)
	}
	var families map[string]*dto.MetricFamily
	wait.For(t, 10*time.Second, "the order handled", func() bool {
		code, body := get("/metrics")
		if code != http.StatusOK {
			return false
		}
		tp := expfmt.NewTextParser(model.UTF8Validation)
		families, err = tp.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return families["atodene_worker_provider_call_seconds"] != nil && families["atodene_worker_handler_seconds"] != nil
	})
	names := map[string]bool{}
	for name, mf := range families {
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	if !names["atodene_worker_messages_total"] || !names["go_goroutines"] {
		t.Fatalf("/metrics lacks the worker's metrics: %v", slices.Sorted(maps.Keys(names)))
	}
	return names
}
