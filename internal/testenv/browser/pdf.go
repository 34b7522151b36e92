package browser

import (
	"bytes"
	"regexp"

	"github.com/chromedp/chromedp"
)

// PrintToPDF prints the page as the browser's print dialog would, on A4 paper with backgrounds
// printed and the browser's default 1 cm margins, and returns the PDF. opts apply after those
// defaults, e.g. chromedp.PDFLandscape() or chromedp.PDFPreferCSSPageSize(). Wait for the page
// to show what must be printed first.
//
// The error is the browser's (e.g. page ranges that select no page), or wraps
// context.DeadlineExceeded if printing took longer than the action time limit, or
// context.Canceled once the test has ended.
func (b *Browser) PrintToPDF(opts ...chromedp.PDFOption) ([]byte, error) {
	all := append([]chromedp.PDFOption{chromedp.PDFPaper(chromedp.PaperA4), chromedp.PDFPrintBackground()}, opts...)
	return run(b, chromedp.PrintToPDF(all...))
}

// pageObject matches a page object's type entry, "/Type /Page" or "/Type/Page", and not the
// page tree's "/Type /Pages".
var pageObject = regexp.MustCompile(`/Type\s*/Page\b`)

// PDFPageCount returns the number of pages of a PDF as Chromium writes it: the number of page
// objects ("/Type /Page", not "/Type /Pages"). It reads no compressed object streams, which
// Chromium's PDFs do not use for pages, so for other producers' PDFs it may count 0. It returns 0
// for anything that is not a PDF.
func PDFPageCount(pdf []byte) int {
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		return 0
	}
	return len(pageObject.FindAllIndex(pdf, -1))
}
