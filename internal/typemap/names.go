package typemap

import (
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"
)

// MaxIdent is PostgreSQL's identifier limit in bytes (NAMEDATALEN-1).
const MaxIdent = 63

// RawName is the raw name of a source table or column: the source's name
// (in snake_case with snake), kept exactly when it fits PostgreSQL's 63
// bytes; a longer one (MySQL allows 64 characters, up to 192 bytes) is
// shortened by FitIdent. The load names raw's tables and columns with it,
// and verify finds them with it.
func RawName(name string, snake bool) string {
	if snake {
		name = SnakeCase(name)
	}
	return FitIdent(name)
}

// FitIdent makes a name fit PostgreSQL's 63 bytes, which would otherwise
// cut it silently (and two names sharing their first 63 bytes would become
// one): a longer name becomes its first 54 bytes (on a character boundary),
// "_" and 8 hex digits of the SHA-256 of the whole name. Stable across runs,
// distinct for distinct names.
func FitIdent(s string) string {
	if len(s) <= MaxIdent {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	short := s
	for len(short) > MaxIdent-9 {
		_, size := utf8.DecodeLastRuneInString(short)
		short = short[:len(short)-size]
	}
	return short + "_" + hex.EncodeToString(sum[:4])
}
