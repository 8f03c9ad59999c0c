// Package browsertest starts headless Chromium for the tests that drive the
// console and the chat in a real browser (Debian's chromium; under CI a
// missing one fails the test, elsewhere it skips: testenv).
package browsertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/govline/ivr/internal/testenv"
)

// Start starts a headless Chromium on a profile of its own (two browsers
// share no cookie) and returns its first tab's context, which ends after
// timeout. The browser stops and its profile is removed when the test
// ends.
func Start(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	exe := testenv.Tool(t, "chromium (with chromium-driver)", "chromium", "chromium-browser", "google-chrome")
	profile, err := os.MkdirTemp("", "ivr-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Chromium's helper processes may still write the profile for a moment
	// after the browser is cancelled: remove it with retries, not through
	// t.TempDir (whose cleanup fails the test on a race with them).
	t.Cleanup(func() {
		for range 20 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile))
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	// Cleanups run last-in first-out: the timeout, the tab, the browser,
	// then the profile.
	t.Cleanup(cancelA)
	t.Cleanup(cancelB)
	t.Cleanup(cancel)
	return ctx
}
