package verify

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBefore(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"9", "10", true},
		{"10", "9", false},
		{"18446744073709551614", "18446744073709551615", true},
		{"-5", "3", true},
		{"2024-01-01 00:00:05", "2024-01-01 00:00:05.000000", false},
		{"2024-01-01 00:00:04.999999", "2024-01-01 00:00:05", true},
		{"2024-01-02", "2024-01-10", true},
		{"0000-00-00 00:00:00", "2024-01-01 00:00:00", true},
	} {
		assert.Equal(t, c.want, before(c.a, c.b), "%s < %s", c.a, c.b)
	}
}
