package sandbox

import (
	"strings"
	"time"
)

// Screening results as they appear in autoAuthoriresult and manualAuthoriresult.
const (
	resultOK     = "OK"
	resultNG     = "NG"
	resultReview = "審査中"
	resultHold   = "保留"
)

// screeningCeiling is the buyer limit of docs/protocol.md#business-rules: above it the default
// rule declines.
const screeningCeiling = 55000

// profile is the behaviour chosen by the local part of the buyer's e-mail (docs/atodene.md#decisions).
type profile int

const (
	profileDefault profile = iota
	profileNG
	profileReviewOK
	profileReviewNG
	profileHold
	profileSlow
)

// profilePrefixes are tried in order; the first prefix that matches wins.
var profilePrefixes = []struct {
	prefix string
	p      profile
}{
	{"ng", profileNG},
	{"review-ok", profileReviewOK},
	{"review-ng", profileReviewNG},
	{"hold", profileHold},
	{"slow", profileSlow},
}

// profileOf matches the local part case-insensitively, so NG-taro@ and ng-taro@ behave alike.
func profileOf(email string) profile {
	local, _, _ := strings.Cut(email, "@")
	local = strings.ToLower(local)
	for _, pp := range profilePrefixes {
		if strings.HasPrefix(local, pp.prefix) {
			return pp.p
		}
	}
	return profileDefault
}

// step is a manual result that holds from its time on. A review is a list of steps computed when the
// review starts, so that its progress is a pure function of the clock (no timers to stop or test).
type step struct {
	at      time.Time
	result  string
	reasons []string
}

// screening is the state of a transaction's credit decision.
type screening struct {
	at          time.Time // when the screening was made: the registration or the re-screening change
	auto        string    // OK, NG or 審査中
	autoReasons []string  // why an automatic NG was given
	steps       []step    // the manual review, when auto is 審査中
}

var (
	reasonDeclined = []string{"与信審査の結果、お取引をお受けできません。"}
	reasonCeiling  = []string{"ご利用限度額（55,000円）を超えています。"}
	reasonManualNG = []string{"目視審査の結果、お取引をお受けできません。"}
	reasonHold     = []string{"本人確認中"}
	reasonHoldNG   = []string{"本人確認が取れなかったため、お取引をお受けできません。"}
)

// screen decides a new registration or a re-screened change at time now.
func (s *Server) screen(email string, billed int64, now time.Time) screening {
	review := now.Add(s.cfg.ReviewDelay)
	switch profileOf(email) {
	case profileNG:
		return screening{at: now, auto: resultNG, autoReasons: reasonDeclined}
	case profileReviewOK:
		return screening{at: now, auto: resultReview, steps: []step{{at: review, result: resultOK}}}
	case profileReviewNG:
		return screening{at: now, auto: resultReview, steps: []step{{at: review, result: resultNG, reasons: reasonManualNG}}}
	case profileHold:
		return screening{at: now, auto: resultReview, steps: s.holdSteps(review)}
	}
	if billed > screeningCeiling {
		return screening{at: now, auto: resultNG, autoReasons: reasonCeiling}
	}
	return screening{at: now, auto: resultOK}
}

// holdSteps puts a review on hold at from, and declines it once the hold delay has passed, because a
// hold is taken to end NG sooner or later (whether it does at ATODENE is not known:
// docs/protocol.md#screening-results).
func (s *Server) holdSteps(from time.Time) []step {
	return []step{
		{at: from, result: resultHold, reasons: reasonHold},
		{at: from.Add(s.cfg.HoldDelay), result: resultNG, reasons: reasonHoldNG},
	}
}

// manual is the manual result and its reasons at time now: empty while the review is still going.
func (sc *screening) manual(now time.Time) (string, []string) {
	var result string
	var reasons []string
	for _, st := range sc.steps {
		if !now.Before(st.at) {
			result, reasons = st.result, st.reasons
		}
	}
	return result, reasons
}

// decision is the effective result at time now: OK, NG, 審査中 or 保留.
func (sc *screening) decision(now time.Time) string {
	if sc.auto != resultReview {
		return sc.auto
	}
	if m, _ := sc.manual(now); m != "" {
		return m
	}
	return resultReview
}

// authorizedAt is when the OK decision in force at now was given: the time of the screening for an
// automatic OK, the time the review turned OK for a manual one. ok is false when the decision at
// now is not OK (NG, 審査中 or 保留), so that there is no authorization to expire.
func (sc *screening) authorizedAt(now time.Time) (at time.Time, ok bool) {
	switch sc.auto {
	case resultOK:
		return sc.at, true
	case resultReview:
		var result string
		for _, st := range sc.steps {
			if !now.Before(st.at) {
				at, result = st.at, st.result
			}
		}
		return at, result == resultOK
	}
	return time.Time{}, false
}

// reasons are the texts shown in manualAuthorireasons: the manual review's, or the automatic NG's.
func (sc *screening) reasons(now time.Time) []string {
	if _, r := sc.manual(now); len(r) > 0 {
		return r
	}
	return sc.autoReasons
}
