package demo

import (
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// AsOf is the clinic's "today" for seeded data: seeded dates and change
// stamps never pass it, so every mutate (stamped with the wall clock) moves
// the watermarks forward.
var AsOf = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	firstNames = []string{"James", "Mary", "José", "Zoë", "Renée", "Björn", "Chloé", "Søren", "Łukasz", "Siobhán",
		"Ana", "Li", "Mohammed", "Fatima", "Olivia", "Liam", "Emma", "Noah", "Ava", "Sophia", "Ethan", "Mia", "Lucas", "Amelia"}
	lastNames = []string{"Smith", "Johnson", "Nguyễn", "García", "Müller", "O'Brien", "Kowalski", "Patel", "Kim", "Brown",
		"Davis", "Martínez", "Lopez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Lee", "Pérez", "Schäfer",
		"Østergaard", "D'Angelo", "Tran", "Walker"}
	cities  = []string{"Portland", "Salem", "Eugene", "Beaverton", "Gresham", "Hillsboro", "Bend", "Medford", "Corvallis", "Tigard"}
	streets = []string{"Main St", "Oak Ave", "Elm St", "Maple Dr", "Cedar Ln", "Pine St", "Broadway", "2nd Ave", "Lakeview Rd", "Church St"}
	states  = []string{"OR", "WA", "CA", "ID", "NV"}
	words   = strings.Fields("patient called to confirm appointment insurance verified pre-auth sent crown seated " +
		"hygiene recall overdue x-rays taken balance paid in full claim received statement mailed " +
		"sensitivity lower left molar follow up two weeks referral to periodontist treatment plan accepted " +
		"left voicemail rescheduled due to illness")
	noteExtras = []string{"Patient prefers mornings.", "Spoke with mom (Zoë).", "Café gift card redeemed.",
		"Requested Spanish-speaking staff — José assisted.", "Pt said: \"see you soon\"", "Copay 50%; 2nd visit.",
		"Path C:\\Images\\xray.jpg", "line one\nline two", "tab\tseparated"}
	emojiNotes = []string{"Great visit 😀", "Thanks! 🦷✨", "Sent reminder 📅", "Kid loved the sticker 😀👍"}
	surfaces   = []string{"", "M", "O", "D", "B", "L", "MO", "DO", "MOD", "OL", "MODBL"}
)

// cdtCode is an ADA CDT procedure code with a plausible fee.
type cdtCode struct {
	Code, Descript string
	Fee            float64
}

var cdtCodes = []cdtCode{
	{"D0120", "Periodic oral evaluation", 55}, {"D0140", "Limited oral evaluation", 85},
	{"D0150", "Comprehensive oral evaluation", 95}, {"D0210", "Intraoral complete series of images", 150},
	{"D0220", "Intraoral periapical first image", 35}, {"D0274", "Bitewings four images", 70},
	{"D0330", "Panoramic image", 120}, {"D1110", "Prophylaxis adult", 105}, {"D1120", "Prophylaxis child", 75},
	{"D1206", "Topical fluoride varnish", 40}, {"D1351", "Sealant per tooth", 55},
	{"D2140", "Amalgam one surface primary or permanent", 150}, {"D2330", "Resin-based composite one surface anterior", 165},
	{"D2391", "Resin-based composite one surface posterior", 185}, {"D2740", "Crown porcelain/ceramic", 1250},
	{"D2750", "Crown porcelain fused to high noble metal", 1150}, {"D2950", "Core buildup including any pins", 275},
	{"D3310", "Endodontic therapy anterior tooth", 850}, {"D3330", "Endodontic therapy molar tooth", 1150},
	{"D4341", "Periodontal scaling and root planing four or more teeth", 250}, {"D4910", "Periodontal maintenance", 155},
	{"D5110", "Complete denture maxillary", 1800}, {"D6010", "Surgical placement of implant body", 2200},
	{"D7140", "Extraction erupted tooth", 185}, {"D7210", "Extraction surgical", 325},
	{"D9110", "Palliative treatment of dental pain", 95}, {"D9944", "Occlusal guard hard appliance full arch", 550},
}

// rngFor returns the deterministic random source of one table for a seed.
func rngFor(seed int64, parts ...string) *rand.Rand {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
}

// world is what every table's generator may refer to: each table's key
// column and the highest key it holds (keys are numbered 1..max).
type world struct {
	keyName map[string]string
	maxKey  map[string]int64
}

// gen writes one table's rows as SQL literals.
type gen struct {
	r         *rand.Rand
	t         *table
	w         *world
	stamp     time.Time // zero when seeding; the change time when mutating
	watermark string    // the table's change column, set to stamp when mutating
	pkSet     map[string]bool
	legacy    map[string]legacyKind // column → legacy value written every LegacyEvery rows; nil for none
}

func newGen(r *rand.Rand, t *table, w *world, stamp time.Time, watermark string) *gen {
	pk := map[string]bool{}
	for _, c := range t.PK {
		pk[c] = true
	}
	return &gen{r: r, t: t, w: w, stamp: stamp, watermark: watermark, pkSet: pk}
}

// row appends "(v1,v2,…)" for the row numbered key.
func (g *gen) row(b []byte, key int64) []byte {
	b = append(b, '(')
	for i := range g.t.Columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = g.value(b, &g.t.Columns[i], key)
	}
	return append(b, ')')
}

// value appends one column's literal, or the column's legacy value on the
// rows legacyRow picks. The ordinary value is drawn first even then, so the
// random stream (and so every other value) is the same with or without
// legacy values.
func (g *gen) value(b []byte, c *column, key int64) []byte {
	start := len(b)
	b = g.plain(b, c, key)
	if kind, ok := g.legacy[c.Name]; ok && legacyRow(key) {
		b = kind.literal(b[:start], b[start:], key)
	}
	return b
}

// plain appends one column's ordinary literal.
func (g *gen) plain(b []byte, c *column, key int64) []byte {
	if out, ok := g.decided(b, c, key); ok {
		return out
	}
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint", "double", "decimal", "float":
		return g.number(b, c)
	case "date", "datetime", "timestamp", "time":
		return g.temporal(b, c)
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		return quote(b, g.text(c), c.MaxLength)
	case "blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary":
		return g.bytes(b)
	}
	return append(b, "DEFAULT"...)
}

// decided appends the literals the row already decides: its key, a parent's
// key, the change stamp, or (sometimes, for a nullable column) NULL.
func (g *gen) decided(b []byte, c *column, key int64) ([]byte, bool) {
	switch {
	case g.pkSet[c.Name] && isInteger(c.DataType):
		return strconv.AppendInt(b, key, 10), true
	case g.pkSet[c.Name]:
		return quote(b, "k"+strconv.FormatInt(key, 10), c.MaxLength), true
	case c.FK != "" && isInteger(c.DataType):
		return strconv.AppendInt(b, g.foreignKey(c, key), 10), true
	case !g.stamp.IsZero() && (c.DataType == "timestamp" || c.Name == g.watermark) && isTemporal(c.DataType):
		return quote(b, g.stamp.Format(layoutFor(c.DataType)), 0), true
	case c.Nullable && g.r.IntN(100) < 8:
		return append(b, "NULL"...), true
	}
	return b, false
}

// number appends a plausible number for c: flags, small codes, colors,
// money.
func (g *gen) number(b []byte, c *column) []byte {
	r := g.r
	switch c.DataType {
	case "tinyint":
		if strings.HasPrefix(c.Type, "tinyint(1)") || strings.HasPrefix(c.Name, "Is") || strings.HasPrefix(c.Name, "Has") {
			return strconv.AppendInt(b, int64(r.IntN(2)), 10)
		}
		return strconv.AppendInt(b, int64(r.IntN(5)), 10)
	case "smallint":
		return strconv.AppendInt(b, int64(r.IntN(120)), 10)
	case "mediumint", "int":
		if strings.Contains(c.Name, "Color") {
			return strconv.AppendInt(b, int64(int32(r.Uint32())), 10)
		}
		return strconv.AppendInt(b, int64(r.IntN(5000)), 10)
	case "bigint":
		if strings.HasSuffix(c.Name, "Num") {
			return strconv.AppendInt(b, int64(r.IntN(50)), 10)
		}
		return strconv.AppendInt(b, int64(r.IntN(100000)), 10)
	case "float":
		return strconv.AppendFloat(b, float64(r.IntN(1000))/10, 'f', 1, 32)
	}
	if isMoney(c.Name) { // double, decimal
		return strconv.AppendFloat(b, float64(r.IntN(200000))/100, 'f', 2, 64)
	}
	return strconv.AppendFloat(b, float64(r.IntN(10000))/100, 'f', 2, 64)
}

// temporal appends a plausible date or time for c, with OpenDental's
// 0001-01-01 "not set" in some.
func (g *gen) temporal(b []byte, c *column) []byte {
	r := g.r
	switch c.DataType {
	case "date":
		if c.Name == "Birthdate" {
			return quote(b, randTime(r, time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2020, 12, 31, 0, 0, 0, 0, time.UTC)).Format(time.DateOnly), 0)
		}
		if r.IntN(100) < 12 {
			return append(b, "'0001-01-01'"...)
		}
		return quote(b, randTime(r, time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC), AsOf).Format(time.DateOnly), 0)
	case "datetime":
		if r.IntN(100) < 12 {
			return append(b, "'0001-01-01 00:00:00'"...)
		}
		return quote(b, randTime(r, time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC), AsOf).Format(time.DateTime), 0)
	case "timestamp":
		return quote(b, randTime(r, AsOf.AddDate(-2, 0, 0), AsOf).Format(time.DateTime), 0)
	}
	m := 7*60 + 10*r.IntN(66) // time
	return quote(b, time.Date(1, 1, 1, m/60, m%60, 0, 0, time.UTC).Format(time.TimeOnly), 0)
}

// bytes appends 8 to 31 random bytes as a hex literal.
func (g *gen) bytes(b []byte) []byte {
	raw := make([]byte, 8+g.r.IntN(24))
	for i := range raw {
		raw[i] = byte(g.r.Uint32())
	}
	b = append(b, "X'"...)
	for _, x := range raw {
		b = append(b, "0123456789ABCDEF"[x>>4], "0123456789ABCDEF"[x&15])
	}
	return append(b, '\'')
}

// foreignKey draws an existing parent key. A column named after the parent's
// key is always set; other references (ProvHyg, NextAptNum, InsPlan2 …) are
// often 0, OpenDental's "none".
func (g *gen) foreignKey(c *column, key int64) int64 {
	max := g.w.maxKey[c.FK]
	if max <= 0 {
		return 0
	}
	if g.t.Name == "patient" && c.Name == "Guarantor" {
		if key <= max && g.r.IntN(100) < 70 {
			return key
		}
	}
	if c.Name != g.w.keyName[c.FK] && g.r.IntN(100) < 25 {
		return 0
	}
	return 1 + g.r.Int64N(max)
}

func (g *gen) text(c *column) string {
	r := g.r
	n := c.Name
	switch {
	case n == "LName":
		return lastNames[r.IntN(len(lastNames))]
	case n == "FName" || n == "Preferred":
		return firstNames[r.IntN(len(firstNames))]
	case n == "MiddleI":
		return string(rune('A' + r.IntN(26)))
	case n == "ProcCode" || n == "OldCode":
		return cdtCodes[r.IntN(len(cdtCodes))].Code
	case n == "ToothNum":
		return strconv.Itoa(1 + r.IntN(32))
	case n == "Surf":
		return surfaces[r.IntN(len(surfaces))]
	case n == "SSN":
		return strconv.Itoa(100000000 + r.IntN(899999999))
	case n == "Zip":
		return strconv.Itoa(97000 + r.IntN(999))
	case n == "State":
		return states[r.IntN(len(states))]
	case n == "City":
		return cities[r.IntN(len(cities))]
	case n == "Address":
		return strconv.Itoa(1+r.IntN(9999)) + " " + streets[r.IntN(len(streets))]
	case strings.Contains(n, "Phone"):
		return "(503) 555-" + strconv.Itoa(1000+r.IntN(9000))
	case strings.Contains(n, "Email"):
		return strings.ToLower(firstNames[r.IntN(len(firstNames))]) + strconv.Itoa(r.IntN(1000)) + "@example.com"
	case n == "Descript" || n == "Description" || n == "AbbrDesc":
		return cdtCodes[r.IntN(len(cdtCodes))].Descript
	case strings.HasSuffix(n, "Note") || strings.HasSuffix(n, "Notes"):
		if c.Wide && r.IntN(100) < 5 {
			return emojiNotes[r.IntN(len(emojiNotes))]
		}
		if r.IntN(100) < 10 {
			return noteExtras[r.IntN(len(noteExtras))]
		}
		if r.IntN(100) < 20 {
			return ""
		}
		return sentence(r, 4+r.IntN(12))
	}
	if c.MaxLength > 0 && c.MaxLength <= 4 {
		return string(rune('A' + r.IntN(26)))
	}
	if c.DataType == "varchar" || c.DataType == "char" {
		if r.IntN(100) < 30 {
			return ""
		}
		return sentence(r, 1+r.IntN(3))
	}
	if r.IntN(100) < 40 {
		return ""
	}
	return sentence(r, 3+r.IntN(20))
}

func sentence(r *rand.Rand, n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(words[r.IntN(len(words))])
	}
	return sb.String()
}

func isMoney(name string) bool {
	for _, k := range []string{"Fee", "Amt", "Amount", "Pay", "WriteOff", "Price", "Cost", "Bal", "Charge", "Ded", "Copay", "Allowed", "Est"} {
		if strings.Contains(name, k) {
			return true
		}
	}
	return false
}

func isTemporal(dataType string) bool {
	switch dataType {
	case "date", "datetime", "timestamp":
		return true
	}
	return false
}

func layoutFor(dataType string) string {
	if dataType == "date" {
		return time.DateOnly
	}
	return time.DateTime
}

func randTime(r *rand.Rand, lo, hi time.Time) time.Time {
	span := hi.Unix() - lo.Unix()
	return time.Unix(lo.Unix()+r.Int64N(span), 0).UTC()
}

// quote appends s as a MySQL string literal, cut to max characters (0 = no limit).
func quote(b []byte, s string, max int64) []byte {
	if max > 0 && int64(utf8.RuneCountInString(s)) > max {
		rs := []rune(s)
		s = string(rs[:max])
	}
	b = append(b, '\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '\\':
			b = append(b, '\\', c)
		case 0:
			b = append(b, '\\', '0')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case 0x1a:
			b = append(b, '\\', 'Z')
		default:
			b = append(b, c)
		}
	}
	return append(b, '\'')
}
