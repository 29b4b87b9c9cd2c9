package discover

import (
	"bytes"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// identifying are OpenDental's columns that identify a person, as named in
// the vendored 24.3 schema (internal/opendental/data), with the policy
// discover suggests for them: numbers with no analytic use are dropped,
// names and contact details hashed (joins and distinct counts still work),
// and what analyses need (age, city, zip) kept, named so the decision is
// visible. Keys are lower case: MySQL column names are case-insensitive.
var identifying = map[string]tables.ColumnPolicy{
	"ssn": tables.Drop, "medicaidid": tables.Drop,
	"lname": tables.Hash, "fname": tables.Hash, "middlei": tables.Hash, "mi": tables.Hash,
	"preferred": tables.Hash, "preferredname": tables.Hash,
	"patientname": tables.Hash, "chartnumber": tables.Hash,
	"hmphone": tables.Hash, "wkphone": tables.Hash, "wirelessphone": tables.Hash, "email": tables.Hash,
	"address": tables.Hash, "address2": tables.Hash,
	"birthdate": tables.Keep, "city": tables.Keep, "zip": tables.Keep,
}

// personMarkers make a table one about people (a patient, provider,
// referral, employee …) rather than a business (a carrier's or clinic's
// address is not patient data): it has one of these columns.
var personMarkers = []string{"lname", "fname", "patientname", "ssn", "birthdate"}

// Suggestion is one suggested column policy.
type Suggestion struct {
	Column string
	Policy tables.ColumnPolicy
}

// Suggest lists, in column order, the policies discover proposes for m's
// identifying columns; none for a table that is not about people.
func Suggest(m *schema.Table) []Suggestion {
	person := false
	for _, c := range m.Columns {
		for _, p := range personMarkers {
			person = person || strings.EqualFold(c.Name, p)
		}
	}
	if !person {
		return nil
	}
	var out []Suggestion
	for _, c := range m.Columns {
		if p, ok := identifying[strings.ToLower(c.Name)]; ok {
			out = append(out, Suggestion{Column: c.Name, Policy: p})
		}
	}
	return out
}

// suggestionMarker starts the comment discover writes; a table whose entry
// carries it (or sets column_policies) is not offered it again.
const suggestionMarker = "column_policies suggested by `pipeline discover`"

// suggestionComment is the commented-out column_policies line for s.
func suggestionComment(s []Suggestion) string {
	var b bytes.Buffer
	node := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	for _, x := range s {
		node.Content = append(node.Content, tables.NameNode(x.Column), &yaml.Node{Kind: yaml.ScalarNode, Value: string(x.Policy)})
	}
	enc := yaml.NewEncoder(&b)
	_ = enc.Encode(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "column_policies"}, node}})
	_ = enc.Close()
	return suggestionMarker + " for identifying columns (patient data);\n" +
		"not applied: uncomment and edit to apply (drop: not in raw, hash: keyed HMAC, keep: as is):\n" +
		strings.TrimSpace(b.String())
}

// addSuggestions writes the suggestion comment into every table entry of
// the tables.yml document data that has suggestions, sets no
// column_policies and has not been offered them; it returns data unchanged
// when there is nothing to add.
func addSuggestions(data []byte, s *schema.Database) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return data, err
	}
	tbls := valueOf(doc.Content[0], "tables")
	if tbls == nil || tbls.Kind != yaml.MappingNode {
		return data, nil
	}
	added := false
	for i := 0; i+1 < len(tbls.Content); i += 2 {
		m, entry := s.Tables[tbls.Content[i].Value], tbls.Content[i+1]
		if m == nil || entry.Kind != yaml.MappingNode || len(entry.Content) == 0 || offered(entry) {
			continue
		}
		if sug := Suggest(m); len(sug) > 0 {
			first := entry.Content[0]
			first.HeadComment = strings.TrimSpace(suggestionComment(sug) + "\n" + first.HeadComment)
			added = true
		}
	}
	if !added {
		return data, nil
	}
	return tables.EncodeNode(&doc)
}

// offered reports whether a table entry sets column_policies or already
// carries the suggestion (the user's choice either way).
func offered(entry *yaml.Node) bool {
	for i := 0; i+1 < len(entry.Content); i += 2 {
		k := entry.Content[i]
		if k.Value == "column_policies" || strings.Contains(k.HeadComment, suggestionMarker) {
			return true
		}
	}
	return false
}

func valueOf(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
