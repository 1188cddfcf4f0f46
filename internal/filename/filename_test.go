package filename_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/filename"
)

func TestSafe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"Customer groups", "Customer_groups"},
		{"../../etc/passwd", "_.._etc_passwd"},
		{"a/b\\c:d*e", "a_b_c_d_e"},
		{"{5F0C5B0E-0000}", "_5F0C5B0E-0000_"},
		{"Kundengruppen ÄÖÜ", "Kundengruppen_ÄÖÜ"},
		{"...", "x"},
		{"", "x"},
		{".hidden.", "hidden"},
		{"nul\x00byte", "nul_byte"},
	} {
		require.Equal(t, tc.want, filename.Safe(tc.in, "x"), tc.in)
	}
	long := filename.Safe(strings.Repeat("é", 200), "x")
	require.LessOrEqual(t, len(long), 120)
	require.True(t, utf8.ValidString(long))
}

func FuzzSafe(f *testing.F) {
	f.Add("Customer groups")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, s string) {
		got := filename.Safe(s, "x")
		require.NotEmpty(t, got)
		require.LessOrEqual(t, len(got), 120)
		require.NotContains(t, got, "/")
		require.NotContains(t, got, "\\")
		require.NotEqual(t, "..", got)
		require.False(t, strings.HasPrefix(got, "."))
		require.True(t, utf8.ValidString(got))
	})
}
