package dbt

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrNotSources marks an existing file that is not a dbt properties file
// this command can merge into; it is left as it is.
var ErrNotSources = errors.New("not a dbt properties file")

// header is the comment above a new file.
const header = `dbt sources for the raw schema, written by ` + "`pipeline dbt-sources`" + ` (dbt 1.10 or later:
freshness uses config.loaded_at_query). Re-running it refreshes columns, types, quoting and
meta, keeps descriptions you edited, tests you added and any key it does not write.`

// Render is the sources file for src: old (the existing file, nil when
// none) with src's source merged in, or a new file. It also returns what
// changed for humans (tables and columns added or removed).
func Render(src *Source, old []byte) ([]byte, []string, error) {
	fresh := sourceNode(src)
	var doc yaml.Node
	var changes []string
	if len(bytes.TrimSpace(old)) == 0 {
		root := mapping("version", intNode(2), "sources", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{fresh}})
		root.HeadComment = header
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}
		for _, t := range src.Tables {
			changes = append(changes, "new table "+t.Name)
		}
	} else {
		if err := yaml.Unmarshal(old, &doc); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrNotSources, err)
		}
		var err error
		if changes, err = mergeInto(&doc, fresh); err != nil {
			return nil, nil, err
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, nil, fmt.Errorf("encode sources: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, nil, fmt.Errorf("encode sources: %w", err)
	}
	return buf.Bytes(), changes, nil
}

// sourceNode is the generated YAML of src.
func sourceNode(src *Source) *yaml.Node {
	tbls := &yaml.Node{Kind: yaml.SequenceNode}
	for _, t := range src.Tables {
		tbls.Content = append(tbls.Content, tableNode(t))
	}
	fresh := mapping("warn_after", period(src.WarnAfter), "error_after", period(src.ErrorAfter))
	return mapping("name", str(src.Name), "description", str(src.Description), "schema", str(src.Schema),
		"loader", str("pipeline"), "config", mapping("freshness", fresh), "tables", tbls)
}

func tableNode(t Table) *yaml.Node {
	n := mapping("name", str(t.Name), "description", str(t.Description))
	if t.Quote {
		n.Content = append(n.Content, str("quoting"), flow(mapping("identifier", boolNode(true))))
	}
	n.Content = append(n.Content, str("config"), mapping("loaded_at_query", str(t.LoadedAtQuery)))
	cols := &yaml.Node{Kind: yaml.SequenceNode}
	for _, c := range t.Columns {
		cols.Content = append(cols.Content, columnNode(c))
	}
	key := str("columns")
	if len(t.CompositeKey) > 0 {
		key.HeadComment = "Composite primary key (" + strings.Join(t.CompositeKey, ", ") + "): raw enforces it (PRIMARY KEY), and each\n" +
			"column is tested not_null. To test uniqueness in dbt too, install dbt_utils and add to this table:\n" +
			"  data_tests:\n    - dbt_utils.unique_combination_of_columns:\n        combination_of_columns: [" + strings.Join(t.CompositeKey, ", ") + "]"
	}
	n.Content = append(n.Content, key, cols)
	return n
}

func columnNode(c Column) *yaml.Node {
	n := mapping("name", str(c.Name), "description", str(c.Description), "data_type", str(c.DataType))
	if c.Quote {
		n.Content = append(n.Content, str("quote"), boolNode(true))
	}
	keys := make([]string, 0, len(c.Meta))
	for k := range c.Meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	meta := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	for _, k := range keys {
		meta.Content = append(meta.Content, str(k), str(c.Meta[k]))
	}
	n.Content = append(n.Content, str("meta"), meta)
	if len(c.Tests) > 0 {
		tests := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, t := range c.Tests {
			tests.Content = append(tests.Content, str(t))
		}
		n.Content = append(n.Content, str("data_tests"), tests)
	}
	return n
}

func period(p Period) *yaml.Node {
	return flow(mapping("count", intNode(p.Hours), "period", str("hour")))
}

// mapping builds a mapping node from key, value pairs (keys as strings).
func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Content = append(n.Content, str(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return n
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
func intNode(i int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}
func boolNode(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}
func flow(n *yaml.Node) *yaml.Node { n.Style = yaml.FlowStyle; return n }
