package datapackage

import (
	"encoding/binary"
	"math/bits"
)

// SWAR ("SIMD within a register") scanning: test 8 bytes per step for any
// byte that needs attention. Fields are mostly plain ASCII, so this skips
// most of the per-byte work of the converters' hot loops.
const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// wordOf repeats b in every byte of a word.
func wordOf(b byte) uint64 { return lo8 * uint64(b) }

var (
	quoteWord     = wordOf('"')
	backslashWord = wordOf('\\')
)

// hasZero marks (in the top bit) the bytes of v that are zero; only the
// lowest mark is exact, which is all plainPrefix uses.
func hasZero(v uint64) uint64 { return (v - lo8) &^ v & hi8 }

// plainPrefix returns how many leading bytes of s are printable ASCII other
// than '"', '\\' and the byte in delimWord: bytes that can be copied into a
// JSON string as they are.
func plainPrefix(s []byte, delimWord uint64) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		m := (x-wordOf(0x20))&^x&hi8 | x&hi8 | hasZero(x^quoteWord) | hasZero(x^backslashWord) | hasZero(x^delimWord)
		if m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	d := byte(delimWord)
	for ; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x80 || b == '"' || b == '\\' || b == d {
			return i
		}
	}
	return i
}
