package events_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/testenv/golden"
)

// The JSON Schemas of docs/events.md describe what a publisher should send and what a consumer
// receives. Each is a file of docs/schemas/, shown on the page as it is. The tests in this file keep
// them true: the page shows every file as it is, every file compiles, the documents the worker
// reads and writes pass them, and documents the worker refuses fail them.

const (
	eventsDoc   = "../../docs/events.md"
	schemaDir   = "../../docs/schemas"
	draft202012 = "https://json-schema.org/draft/2020-12/schema"
)

// The $id of each schema of docs/events.md.
const (
	schemaOrder          = "urn:atodene-worker:events:order"
	schemaCancel         = "urn:atodene-worker:events:cancel"
	schemaTracking       = "urn:atodene-worker:events:tracking"
	schemaInvoiceRequest = "urn:atodene-worker:events:invoice-request"
	schemaRecheckRequest = "urn:atodene-worker:events:recheck-request"
	schemaResolveRequest = "urn:atodene-worker:events:resolve-request"
	schemaCredit         = "urn:atodene-worker:events:credit"
	schemaShipment       = "urn:atodene-worker:events:shipment"
	schemaInvoice        = "urn:atodene-worker:events:invoice"
)

// jsonBlock is one ```json block of a Markdown file and the line it starts on.
type jsonBlock struct {
	line int
	text string
}

// jsonBlocks returns the ```json blocks of the Markdown file at path.
func jsonBlocks(t testing.TB, path string) []jsonBlock {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks []jsonBlock
		cur    *jsonBlock
		body   strings.Builder
	)
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```json":
			cur = &jsonBlock{line: n}
			body.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.text = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: the ```json block of line %d is not closed", path, cur.line)
	}
	return blocks
}

// instance reads a JSON document as the validator takes it (numbers as json.Number).
func instance(t testing.TB, raw []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, raw)
	}
	return v
}

// schemaFiles returns the paths of the schema files of docs/schemas/, sorted.
func schemaFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(schemaDir, "*.schema.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schema files in %s: %v", schemaDir, err)
	}
	return files
}

// schemas compiles every JSON Schema of docs/schemas/ as Draft 2020-12, with format assertions on,
// and returns them by $id. It fails the test if one does not compile.
func schemas(t testing.TB) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	var ids []string
	for _, f := range schemaFiles(t) {
		doc := instance(t, mustRead(t, f))
		obj, _ := doc.(map[string]any)
		id, _ := obj["$id"].(string)
		if s, _ := obj["$schema"].(string); s != draft202012 {
			t.Errorf("%s: $schema %q, want %q", f, s, draft202012)
		}
		if id == "" {
			t.Errorf("%s: a schema without $id", f)
			continue
		}
		if slices.Contains(ids, id) {
			t.Errorf("%s: a second schema with $id %s", f, id)
			continue
		}
		if err := c.AddResource(id, doc); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		ids = append(ids, id)
	}
	out := map[string]*jsonschema.Schema{}
	for _, id := range ids {
		sch, err := c.Compile(id)
		if err != nil {
			t.Errorf("schema %s does not compile: %v", id, err)
			continue
		}
		out[id] = sch
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// schemaInclude is the line of docs/events.md that names the schema file shown in the ```json block
// after it.
var schemaInclude = regexp.MustCompile("^\\[`docs/schemas/([a-z-]+\\.schema\\.json)`\\]\\(schemas/([a-z-]+\\.schema\\.json)\\):$")

// TestSchemaFilesAreOnThePage: docs/events.md shows every schema file, once, as the file holds it,
// each after a line that links to the file, and shows no other schema. With -update, it copies the
// files into the page's blocks instead.
func TestSchemaFilesAreOnThePage(t *testing.T) {
	page := string(mustRead(t, eventsDoc))
	lines := strings.SplitAfter(page, "\n")
	shown := map[string]int{}
	var out strings.Builder
	for i := 0; i < len(lines); i++ {
		out.WriteString(lines[i])
		m := schemaInclude.FindStringSubmatch(strings.TrimSuffix(lines[i], "\n"))
		if m == nil {
			if strings.TrimSpace(lines[i]) == "```json" && i+1 < len(lines) && strings.Contains(lines[i+1], `"$schema"`) {
				t.Errorf("%s:%d: a schema that is not a file of docs/schemas/ (put it in a file and show it after a link to it)", eventsDoc, i+1)
			}
			continue
		}
		name := m[1]
		if m[2] != name {
			t.Errorf("%s:%d: the link names %s but points at %s", eventsDoc, i+1, name, m[2])
		}
		shown[name]++
		if i+2 >= len(lines) || strings.TrimSpace(lines[i+1]) != "" || strings.TrimSpace(lines[i+2]) != "```json" {
			t.Errorf("%s:%d: the link to %s is not followed by a blank line and a ```json block", eventsDoc, i+1, name)
			continue
		}
		out.WriteString(lines[i+1] + lines[i+2])
		end := i + 3
		for end < len(lines) && strings.TrimSpace(lines[end]) != "```" {
			end++
		}
		if end == len(lines) {
			t.Fatalf("%s:%d: the block of %s is not closed", eventsDoc, i+3, name)
		}
		block := strings.Join(lines[i+3:end], "")
		file, err := os.ReadFile(filepath.Join(schemaDir, name))
		if err != nil {
			t.Errorf("%s:%d: %v", eventsDoc, i+1, err)
			file = []byte(block)
		}
		if block != string(file) && !golden.Updating() {
			t.Errorf("%s:%d: the block differs from docs/schemas/%s (run go test ./internal/events -run TestSchemaFilesAreOnThePage -update to copy the file here)", eventsDoc, i+3, name)
		}
		out.Write(file)
		i = end - 1
	}
	for _, f := range schemaFiles(t) {
		if n := shown[filepath.Base(f)]; n != 1 {
			t.Errorf("%s shows %s %d times, want once", eventsDoc, filepath.Base(f), n)
		}
	}
	if golden.Updating() && out.String() != page {
		if err := os.WriteFile(eventsDoc, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("copied the schema files into %s", eventsDoc)
	}
}

// schema returns the schema with this $id, failing the test if the page has none.
func schema(t testing.TB, all map[string]*jsonschema.Schema, id string) *jsonschema.Schema {
	t.Helper()
	sch, ok := all[id]
	if !ok {
		t.Fatalf("%s holds no schema %s", schemaDir, id)
	}
	return sch
}

func checkValid(t testing.TB, sch *jsonschema.Schema, raw []byte) {
	t.Helper()
	if err := sch.Validate(instance(t, raw)); err != nil {
		t.Errorf("refused by %s:\n%s\n%v", sch.Location, raw, err)
	}
}

func checkInvalid(t testing.TB, sch *jsonschema.Schema, raw []byte) {
	t.Helper()
	if err := sch.Validate(instance(t, raw)); err == nil {
		t.Errorf("accepted by %s, but the worker refuses it:\n%s", sch.Location, raw)
	}
}

// dataOf returns the data of a CloudEvent.
func dataOf(t testing.TB, event []byte) []byte {
	t.Helper()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(event, &env); err != nil || len(env.Data) == 0 {
		t.Fatalf("not a CloudEvent with data: %v\n%s", err, event)
	}
	return env.Data
}

// leaves maps the JSON paths of the strings of a decoded JSON value (buyer.zip, items[0].name) to
// the strings.
func leaves(v any) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if prefix != "" {
					k = prefix + "." + k
				}
				walk(k, e)
			}
		case []any:
			for i, e := range x {
				walk(prefix+"["+itoa(i)+"]", e)
			}
		case string:
			out[prefix] = x
		}
	}
	walk("", v)
	return out
}

func TestSchemasCompile(t *testing.T) {
	t.Parallel()
	all := schemas(t)
	for _, id := range []string{schemaOrder, schemaCancel, schemaTracking, schemaInvoiceRequest, schemaRecheckRequest, schemaResolveRequest,
		schemaCredit, schemaShipment, schemaInvoice} {
		schema(t, all, id)
	}
}

// The normal form of every order the worker accepts passes the order schema: the data of
// testdata/order.created.json and each accepted case of testdata/mall_orders.json, decoded with
// DecodeOrder and written again. A case whose input was in normal form already (DecodeOrder
// changed no string of it) passes as it was received too.
func TestOrderSchemaAcceptsTheNormalForm(t *testing.T) {
	t.Parallel()
	sch := schema(t, schemas(t), schemaOrder)

	example := dataOf(t, mustRead(t, filepath.Join("testdata", "order.created.json")))
	checkValid(t, sch, example)
	o, err := decodeOrder(t)
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, sch, marshal(t, o))

	var cases []mallCase
	if err := json.Unmarshal(mustRead(t, filepath.Join("testdata", "mall_orders.json")), &cases); err != nil {
		t.Fatal(err)
	}
	accepted, asReceived := 0, 0
	for _, c := range cases {
		if c.Problems != nil {
			continue
		}
		accepted++
		edits := func() []edit { // fresh: inbound rewrites the paths of its edits
			out := make([]edit, len(c.Edits))
			for i, e := range c.Edits {
				out[i] = edit{path: e[0].(string), value: e[1]}
			}
			return out
		}
		o, err := decodeOrder(t, edits()...)
		if err != nil {
			t.Errorf("%s: refused: %v", c.Name, err)
			continue
		}
		sent := marshal(t, o)
		if err := sch.Validate(instance(t, sent)); err != nil {
			t.Errorf("%s: the normal form is refused by the order schema:\n%s\n%v", c.Name, sent, err)
		}

		received := dataOf(t, inbound(t, events.TypeOrderCreated, nil, edits()))
		var in any
		if err := json.Unmarshal(received, &in); err != nil {
			t.Fatal(err)
		}
		out := leaves(instance(t, sent))
		normal := true
		for path, v := range leaves(in) {
			if out[path] != v {
				normal = false
			}
		}
		if normal != (len(o.Normalized) == 0 && c.SentLength == nil) {
			t.Errorf("%s: input in normal form %v, but DecodeOrder lists %d values normalised", c.Name, normal, len(o.Normalized))
		}
		if normal {
			asReceived++
			if err := sch.Validate(instance(t, received)); err != nil {
				t.Errorf("%s: the input, in normal form, is refused by the order schema:\n%s\n%v", c.Name, received, err)
			}
		}
	}
	if accepted == 0 || asReceived == 0 || asReceived == accepted {
		t.Errorf("%d accepted cases, %d of them in normal form as received: the corpus no longer tests both kinds", accepted, asReceived)
	}
}

// Every case of testdata/mall_orders.json that the worker refuses, the order schema refuses too,
// at the field the worker names: a publisher that checks its documents against the schema is not
// surprised by a dead letter for a rule the schema could have told it.
func TestOrderSchemaRefusesTheRefusedMallOrders(t *testing.T) {
	t.Parallel()
	sch := schema(t, schemas(t), schemaOrder)
	var cases []mallCase
	if err := json.Unmarshal(mustRead(t, filepath.Join("testdata", "mall_orders.json")), &cases); err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, c := range cases {
		if c.Problems == nil {
			continue
		}
		refused++
		edits := make([]edit, len(c.Edits))
		for i, e := range c.Edits {
			edits[i] = edit{path: e[0].(string), value: e[1]}
		}
		received := dataOf(t, inbound(t, events.TypeOrderCreated, nil, edits))
		err := sch.Validate(instance(t, received))
		if err == nil {
			t.Errorf("%s: accepted by the order schema, but the worker refuses it (%v)", c.Name, c.Problems)
			continue
		}
		for field := range c.Problems {
			if at := "'/" + strings.ReplaceAll(field, ".", "/") + "'"; !strings.Contains(err.Error(), at) {
				t.Errorf("%s: the schema refuses it, but not at %s, where the worker does:\n%v", c.Name, at, err)
			}
		}
	}
	if refused == 0 {
		t.Error("testdata/mall_orders.json holds no refused case")
	}
}

// The outcome golden files pass the schema of their type, and so does a credit outcome that lists
// values sent in normal form.
func TestOutcomeSchemasAcceptOutcomes(t *testing.T) {
	t.Parallel()
	all := schemas(t)
	byType := map[string]string{"credit": schemaCredit, "shipment": schemaShipment, "invoice": schemaInvoice}

	files, err := filepath.Glob(filepath.Join("testdata", "*.golden.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden outcome files: %v", err)
	}
	for _, f := range files {
		raw := mustRead(t, f)
		var env struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		kind, _, _ := strings.Cut(env.Type, ".")
		id, ok := byType[kind]
		if !ok {
			t.Errorf("%s: no schema for outcome type %q", f, env.Type)
			continue
		}
		checkValid(t, schema(t, all, id), dataOf(t, raw))
	}

	// A gift whose consignee came in the forms of a mall: the credit outcome lists what was sent.
	o, err := decodeOrder(t, edit{"ship_to", map[string]any{"name": "山田 花子", "name_kana": "ﾔﾏﾀﾞ ﾊﾅｺ", "zip": "〒530-0001",
		"address": "大阪府大阪市北区梅田1-1", "phone": "+81-6-1234-5678"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Normalized) == 0 {
		t.Fatal("the consignee's values were not normalised")
	}
	normalized := append(o.Normalized, events.Normalized{Field: "invoice_delivery", Value: events.DeliverySeparate})
	at := time.Date(2026, 11, 26, 10, 15, 2, 0, time.FixedZone("JST", 9*60*60))
	body, err := events.NewOutcome("demo:G-1:1a2b3c4d:2:credit.ok", events.TypeCreditOK, "ev-1", at, events.Credit{
		ShopID: testShop, OrderID: "kitchen-goods-store-10000003", TransactionID: "12345678901", Result: "ok",
		Fee: 205, BilledAmount: 3155, DecidedAt: at.Format(time.RFC3339), Normalized: normalized,
	})
	if err != nil {
		t.Fatal(err)
	}
	data := dataOf(t, body)
	if !bytes.Contains(data, []byte(`"normalized":[{"field":"ship_to.name_kana","value":"ヤマダ ハナコ"}`)) {
		t.Errorf("the outcome does not list the normalised values first to last:\n%s", data)
	}
	checkValid(t, schema(t, all, schemaCredit), data)
}

// The small inbound events pass their schemas as the contract shows them and in the normal form
// the decoders give values written otherwise.
func TestInboundSchemasAcceptEvents(t *testing.T) {
	t.Parallel()
	all := schemas(t)

	tracking := schema(t, all, schemaTracking)
	for _, data := range []map[string]any{
		{"shop_id": testShop, "order_id": "100000123", "carrier": "yamato", "tracking_number": "1234-5678-9012", "invoice_date": "2026-11-27"},
		{"shop_id": testShop, "order_id": "274555-20170615-0823997264", "carrier": "12", "tracking_number": "123456789012"},
		{"shop_id": testShop, "order_id": "A1", "carrier": " ＳＡＧＡＷＡ ", "tracking_number": "１２３４－５６７８－９０１２", "invoice_date": "２０２６／１１／２７"},
		{"shop_id": testShop, "order_id": "A1", "carrier": "Yamato", "tracking_number": "1234 5678 9012", "invoice_date": "2026/11/27"},
	} {
		tr, err := decode(t, events.TypeTrackingEntered, inbound(t, events.TypeTrackingEntered, data, nil), events.DecodeTracking)
		if err != nil {
			t.Errorf("%v: refused: %v", data, err)
			continue
		}
		checkValid(t, tracking, marshal(t, tr))
	}
	checkValid(t, tracking, marshal(t, map[string]any{"shop_id": testShop, "order_id": "100000123", "carrier": "yamato",
		"tracking_number": "1234-5678-9012", "invoice_date": "2026-11-27"}))

	cancel := schema(t, all, schemaCancel)
	for _, data := range []map[string]any{
		{"shop_id": testShop, "order_id": "100000123", "reason": "購入者都合"},
		{"shop_id": testShop, "order_id": "kitchen-goods-store-10000003"},
	} {
		c, err := decode(t, events.TypeOrderCancelled, inbound(t, events.TypeOrderCancelled, data, nil), events.DecodeCancel)
		if err != nil {
			t.Errorf("%v: refused: %v", data, err)
			continue
		}
		checkValid(t, cancel, marshal(t, data))
		checkValid(t, cancel, marshal(t, c))
	}

	request := schema(t, all, schemaInvoiceRequest)
	for _, order := range []string{"100000123", strings.Repeat("y", 50)} {
		data := map[string]any{"shop_id": testShop, "order_id": order}
		r, err := decode(t, events.TypeInvoiceRequested, inbound(t, events.TypeInvoiceRequested, data, nil), events.DecodeInvoiceRequest)
		if err != nil {
			t.Errorf("%v: refused: %v", data, err)
			continue
		}
		checkValid(t, request, marshal(t, r))
	}

	recheck := schema(t, all, schemaRecheckRequest)
	for _, op := range []string{"ops-tanaka", "田中", strings.Repeat("o", 64)} {
		data := map[string]any{"shop_id": testShop, "order_id": "100000123", "operator": op}
		r, err := decode(t, events.TypeRecheckRequested, inbound(t, events.TypeRecheckRequested, data, nil), events.DecodeRecheckRequest)
		if err != nil {
			t.Errorf("%v: refused: %v", data, err)
			continue
		}
		checkValid(t, recheck, marshal(t, data))
		checkValid(t, recheck, marshal(t, r))
	}

	resolve := schema(t, all, schemaResolveRequest)
	for _, data := range []map[string]any{
		{"shop_id": testShop, "order_id": "100000123", "operator": "ops-tanaka", "transaction_id": "12345678901"},
		{"shop_id": testShop, "order_id": "100000123", "operator": "ops-tanaka", "not_registered": true},
		{"shop_id": testShop, "order_id": "100000123", "operator": "ops-tanaka", "transaction_id": "12345678901", "not_registered": false},
		{"shop_id": testShop, "order_id": "A1", "operator": "ops", "transaction_id": "１２３４５６７８９０１"},
	} {
		r, err := decode(t, events.TypeResolveRequested, inbound(t, events.TypeResolveRequested, data, nil), events.DecodeResolveRequest)
		if err != nil {
			t.Errorf("%v: refused: %v", data, err)
			continue
		}
		checkValid(t, resolve, marshal(t, r))
	}
}

// The examples of the page pass their schemas: the ```json blocks without "$schema", told apart
// by the field only their kind has.
func TestSchemasAcceptThePageExamples(t *testing.T) {
	t.Parallel()
	all := schemas(t)
	kinds := []struct{ field, id string }{
		{"ordered_at", schemaOrder}, {"decided_at", schemaCredit}, {"reported_at", schemaShipment}, {"invoice", schemaInvoice},
	}
	checked := map[string]int{}
	for _, b := range jsonBlocks(t, eventsDoc) {
		if strings.Contains(b.text, `"$schema"`) {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(b.text), &obj); err != nil {
			t.Errorf("%s:%d: the example is not a JSON object: %v", eventsDoc, b.line, err)
			continue
		}
		for _, k := range kinds {
			if _, ok := obj[k.field]; ok {
				if err := schema(t, all, k.id).Validate(instance(t, []byte(b.text))); err != nil {
					t.Errorf("%s:%d: the example is refused by %s: %v", eventsDoc, b.line, k.id, err)
				}
				checked[k.id]++
				break
			}
		}
	}
	for _, k := range kinds {
		if checked[k.id] == 0 {
			t.Errorf("%s: no example checked against %s", eventsDoc, k.id)
		}
	}
}

// The schemas refuse documents the worker refuses.
func TestSchemasRefuseWhatTheWorkerRefuses(t *testing.T) {
	t.Parallel()
	all := schemas(t)
	order := schema(t, all, schemaOrder)
	long := strings.Repeat("1", 51)

	for _, tc := range []struct {
		name  string
		edit  edit
		field string
	}{
		{"order_id of 51 characters", edit{"order_id", long}, "order_id"},
		{"zip of 6 digits", edit{"buyer.zip", "150001"}, "buyer.zip"},
		{"kana in kanji", edit{"buyer.name_kana", "加藤 太郎"}, "buyer.name_kana"},
		{"phone of 9 digits", edit{"buyer.phone", "03-123-4567"}, "buyer.phone"},
		{"consignee kana in kanji", edit{"ship_to", map[string]any{"name": "山田 花子", "name_kana": "山田 花子", "zip": "530-0001",
			"address": "大阪府大阪市北区梅田1-1", "phone": "06-1234-5678"}}, "ship_to.name_kana"},
	} {
		_, err := decodeOrder(t, tc.edit)
		checkProblems(t, err, []string{tc.field})
		checkInvalid(t, order, dataOf(t, inbound(t, events.TypeOrderCreated, nil, []edit{tc.edit})))
	}

	for _, tc := range []struct {
		eventType string
		id        string
		data      map[string]any
		decode    func(testing.TB, []byte) error
	}{
		{events.TypeOrderCancelled, schemaCancel, map[string]any{"shop_id": testShop, "order_id": long},
			func(t testing.TB, b []byte) error {
				_, err := decode(t, events.TypeOrderCancelled, b, events.DecodeCancel)
				return err
			}},
		{events.TypeTrackingEntered, schemaTracking, map[string]any{"shop_id": testShop, "order_id": long, "carrier": "yamato", "tracking_number": "1234-5678-9012"},
			func(t testing.TB, b []byte) error {
				_, err := decode(t, events.TypeTrackingEntered, b, events.DecodeTracking)
				return err
			}},
		{events.TypeInvoiceRequested, schemaInvoiceRequest, map[string]any{"shop_id": testShop, "order_id": long},
			func(t testing.TB, b []byte) error {
				_, err := decode(t, events.TypeInvoiceRequested, b, events.DecodeInvoiceRequest)
				return err
			}},
	} {
		checkProblems(t, tc.decode(t, inbound(t, tc.eventType, tc.data, nil)), []string{"order_id"})
		checkInvalid(t, schema(t, all, tc.id), marshal(t, tc.data))
	}

	// The operator events: the operator's rules, and exactly one of transaction_id and
	// not_registered.
	recheck := func(t testing.TB, b []byte) error {
		_, err := decode(t, events.TypeRecheckRequested, b, events.DecodeRecheckRequest)
		return err
	}
	resolve := func(t testing.TB, b []byte) error {
		_, err := decode(t, events.TypeResolveRequested, b, events.DecodeResolveRequest)
		return err
	}
	ids := func(kv ...any) map[string]any {
		data := map[string]any{"shop_id": testShop, "order_id": "100000123", "operator": "ops-tanaka"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == absent {
				delete(data, kv[i].(string))
				continue
			}
			data[kv[i].(string)] = kv[i+1]
		}
		return data
	}
	for _, tc := range []struct {
		name      string
		eventType string
		id        string
		data      map[string]any
		decode    func(testing.TB, []byte) error
		field     string
	}{
		{"recheck without operator", events.TypeRecheckRequested, schemaRecheckRequest, ids("operator", absent), recheck, "operator"},
		{"recheck, operator empty", events.TypeRecheckRequested, schemaRecheckRequest, ids("operator", ""), recheck, "operator"},
		{"recheck, operator of 65", events.TypeRecheckRequested, schemaRecheckRequest, ids("operator", strings.Repeat("o", 65)), recheck, "operator"},
		{"recheck, operator with a tab", events.TypeRecheckRequested, schemaRecheckRequest, ids("operator", "ops\ttanaka"), recheck, "operator"},
		{"resolve, neither", events.TypeResolveRequested, schemaResolveRequest, ids(), resolve, "transaction_id"},
		{"resolve, both", events.TypeResolveRequested, schemaResolveRequest, ids("transaction_id", "12345678901", "not_registered", true), resolve, "not_registered"},
		{"resolve, not_registered false alone", events.TypeResolveRequested, schemaResolveRequest, ids("not_registered", false), resolve, "transaction_id"},
		{"resolve, transaction with letters", events.TypeResolveRequested, schemaResolveRequest, ids("transaction_id", "TX-1"), resolve, "transaction_id"},
		{"resolve, transaction of 21", events.TypeResolveRequested, schemaResolveRequest, ids("transaction_id", strings.Repeat("1", 21)), resolve, "transaction_id"},
		{"resolve without operator", events.TypeResolveRequested, schemaResolveRequest, ids("not_registered", true, "operator", absent), resolve, "operator"},
	} {
		checkProblems(t, tc.decode(t, inbound(t, tc.eventType, tc.data, nil)), []string{tc.field})
		if err := schema(t, all, tc.id).Validate(instance(t, marshal(t, tc.data))); err == nil {
			t.Errorf("%s: accepted by %s, but the worker refuses it", tc.name, tc.id)
		}
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
