package sampledata

// Rule is the sandbox behaviour an order is made for (docs/atodene.md#decisions), chosen by the buyer's
// e-mail address and the billed amount.
type Rule int

// The sandbox's rules.
const (
	Ordinary  Rule = iota // auto OK
	NG                    // ng…: auto NG
	ReviewOK              // review-ok…: 審査中, then OK
	ReviewNG              // review-ng…: 審査中, then NG
	Hold                  // hold…: 審査中, 保留, then NG
	Slow                  // slow…: OK, answered slowly
	OverLimit             // an ordinary buyer billed over 55,000 yen: NG
)

var ruleNames = [...]string{Ordinary: "ordinary", NG: "ng", ReviewOK: "review-ok", ReviewNG: "review-ng",
	Hold: "hold", Slow: "slow", OverLimit: "over-limit"}

func (r Rule) String() string { return ruleNames[r] }

// EmailPrefix is the e-mail local-part prefix that selects the rule in the sandbox: "" for
// Ordinary and OverLimit, which the billed amount tells apart.
func (r Rule) EmailPrefix() string {
	switch r {
	case NG, ReviewOK, ReviewNG, Hold, Slow:
		return r.String() + "-"
	}
	return ""
}
