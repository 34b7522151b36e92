package handlers

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// fill sets every exported field of the value v points to, recursively, to a value that is not
// zero: a field added to the type later is filled too.
func fill(t *testing.T, v reflect.Value, name string) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString(name)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(7)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), name)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(t, v.Index(0), name)
	case reflect.Map:
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k, name+"-key")
		fill(t, e, name)
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(k, e)
	case reflect.Struct:
		for f := range v.Type().Fields() {
			if f.IsExported() {
				fill(t, v.FieldByIndex(f.Index), f.Name)
			}
		}
	default:
		t.Fatalf("fill: cannot fill %s of kind %s", name, v.Kind())
	}
}

func filled[T any](t *testing.T) T {
	t.Helper()
	var v T
	fill(t, reflect.ValueOf(&v).Elem(), reflect.TypeFor[T]().Name())
	return v
}

// TestOutcomeMappingIsExplicit: the outcome JSON of a provider error and of invoice print data
// holds the contract's fields, in the contract's order, whatever else the client's types carry.
// Every field of atodene.ProviderError and atodene.Invoice is set (those added later too), and
// nothing but the mapped fields reaches the JSON.
func TestOutcomeMappingIsExplicit(t *testing.T) {
	t.Parallel()
	pe := filled[atodene.ProviderError](t)
	for _, errs := range [][]events.ProviderError{
		outcomeErrors([]atodene.ProviderError{pe}),
		recordedErrors([]orderstate.Error{filled[orderstate.Error](t)}),
	} {
		got, err := json.Marshal(errs)
		if err != nil {
			t.Fatal(err)
		}
		want := `[{"point":"Point","code":"Code","message":"Message"}]`
		if string(got) != want {
			t.Errorf("errors = %s, want %s", got, want)
		}
	}

	inv := filled[atodene.Invoice](t)
	got, err := json.Marshal(invoicePrintData(inv))
	if err != nil {
		t.Fatal(err)
	}
	// The contract's form: each print field by its name, as a string, beside the detail lines.
	var shape map[string]json.RawMessage
	if err := json.Unmarshal(got, &shape); err != nil {
		t.Fatal(err)
	}
	details, _ := json.Marshal(inv.Details)
	if len(shape) != len(inv.Fields)+1 || string(shape["details"]) != string(details) {
		t.Errorf("invoice = %s, want the %d fields of %v and details %s", got, len(inv.Fields), inv.Fields, details)
	}
	for name, v := range inv.Fields {
		if want, _ := json.Marshal(v); string(shape[name]) != string(want) {
			t.Errorf("invoice.%s = %s, want %s", name, shape[name], want)
		}
	}

	// nil stays nil, so that an invoice.ok leaves errors out and credit.* and shipment.* write [].
	if outcomeErrors(nil) != nil || recordedErrors(nil) != nil {
		t.Error("no errors mapped to a non-nil list")
	}
}

// TestApprovalWhileTheOldCancelWaitsKeepsItDue: an approval recorded while a re-authorization's
// old transaction still waits for its cancel's retry makes the retry's timer stale (a new series),
// so the cancel is due now under the new one: the state relies on the re-authorization's timer
// for it, due now, rather than on none.
func TestApprovalWhileTheOldCancelWaitsKeepsItDue(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	st := orderstate.State{Status: orderstate.StatusOK, TransactionID: "22222222222",
		Reauth: &orderstate.Reauth{Seq: 4, Phase: orderstate.ReauthCancelling, Old: "11111111111", Attempt: 2, Scheduled: true, At: now.Add(10 * time.Minute)}}
	authorized(&st, now)
	due, relies := st.TimerDue()
	if st.Reauth.Seq != 5 || st.Reauth.Scheduled || !relies || !due.Equal(now) {
		t.Fatalf("reauth %+v; relies on a timer %v due %s; want series 5, unscheduled, the cancel due now (%s)", st.Reauth, relies, due, now)
	}
}
