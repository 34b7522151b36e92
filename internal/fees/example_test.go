package fees_test

import (
	"fmt"

	"github.com/atodene-worker/atodene-worker/internal/fees"
)

// The common default: a flat 205 yen added to every order, as most shops configure it.
func Example() {
	table := fees.Table{
		Mode: fees.ModeAdd,
		Rows: []fees.Row{{Min: 1, Max: 999999, Fee: 205}},
	}
	res, err := table.Apply(0, 2950) // no fee on the order yet, billed 2,950 yen
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("fee %d, billed %d (row %d)\n", res.Fee, res.BilledAmount, res.Row)
	// Output: fee 205, billed 3155 (row 1)
}

// A mall already charged 330 yen; the shop's table says the fee is 300, so the fee is replaced
// and the billed amount follows.
func ExampleTable_Apply_overwrite() {
	table := fees.Table{
		Mode: fees.ModeOverwrite,
		Rows: []fees.Row{
			{Min: 1, Max: 9999, Fee: 300},
			{Min: 10000, Max: 999999, Fee: 0},
			{}, {}, {}, // unused rows of the operators' screen
		},
	}
	for _, billed := range []int64{3330, 12330} {
		res, _ := table.Apply(330, billed)
		fmt.Printf("billed %d → fee %d, billed %d\n", billed, res.Fee, res.BilledAmount)
	}
	// Output:
	// billed 3330 → fee 300, billed 3300
	// billed 12330 → fee 0, billed 12000
}

func ExampleTable_Validate() {
	table := fees.Table{
		Mode: fees.ModeAdd,
		Rows: []fees.Row{
			{Min: 1, Max: 1000, Fee: 205},
			{Min: 500, Max: 100, Fee: 205},
			{Min: 900, Max: 5000, Fee: -1},
		},
	}
	fmt.Println(table.Validate())
	// Output:
	// row 2: min 500 > max 100
	// row 3: fee -1 is negative
	// row 3: 900–5000 → -1 overlaps row 1 (1–1000 → 205)
}

func ExampleParseMode() {
	for _, s := range []string{"add", "上書きする", "Keep"} {
		m, _ := fees.ParseMode(s)
		fmt.Println(m, m.Label())
	}
	// Output:
	// add 加算する
	// overwrite 上書きする
	// keep 変更しない
}
