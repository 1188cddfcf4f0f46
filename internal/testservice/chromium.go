package testservice

import (
	"os"
	"testing"
)

// DefaultChromium is where Debian's chromium package puts the browser.
const DefaultChromium = "/usr/bin/chromium"

// Chromium returns the path of the browser the page's tests drive
// (EXPORTBRIDGE_CHROMIUM, default DefaultChromium). Without one the test
// skips, or fails when EXPORTBRIDGE_TEST_REQUIRE names "chromium".
func Chromium(t testing.TB) string {
	t.Helper()
	path := os.Getenv("EXPORTBRIDGE_CHROMIUM")
	if path == "" {
		path = DefaultChromium
	}
	if _, err := os.Stat(path); err != nil {
		if required("chromium") {
			t.Fatalf("chromium is required (EXPORTBRIDGE_TEST_REQUIRE) but missing: %v", err)
		}
		t.Skipf("no Chromium at %s (apt-get install chromium, or set EXPORTBRIDGE_CHROMIUM): %v", path, err)
	}
	return path
}
