package dbt

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// The merge works on yaml.v3 nodes, so comments, key order and styles of
// the existing file survive. Per key, the generated value wins for what the
// pipeline decides (name, schema, data_type, quoting, meta) and the file's
// value wins for what a person decides: a description that no longer starts
// as generated, tests (the generated ones are added where missing), config
// (freshness thresholds, a loaded_at_field of one's own) and every key the
// generator does not write. Tables and columns follow raw: gone ones are
// removed (and reported), new ones appended.

// generatedPrefixes start every description dbt-sources writes; one that
// starts otherwise was written by a person and is kept.
var generatedPrefixes = []string{"OpenDental's tables as", "Source table ", "MySQL ", "Added by the load"}

// rule merges one key: old is the file's value (nil when absent), fresh
// the generated one; nil drops the key.
type rule func(old, fresh *yaml.Node) *yaml.Node

// mergeInto merges the generated source fresh into the document doc.
func mergeInto(doc *yaml.Node, fresh *yaml.Node) ([]string, error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: the top level is not a mapping", ErrNotSources)
	}
	root := doc.Content[0]
	if v := get(root, "version"); v == nil || v.Value != "2" {
		return nil, fmt.Errorf("%w: it lacks `version: 2`", ErrNotSources)
	}
	sources := get(root, "sources")
	if sources == nil {
		sources = &yaml.Node{Kind: yaml.SequenceNode}
		root.Content = append(root.Content, str("sources"), sources)
	}
	if sources.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%w: sources is not a list", ErrNotSources)
	}
	name := get(fresh, "name").Value
	var changes []string
	for i, s := range sources.Content {
		if n := get(s, "name"); n != nil && n.Value == name {
			sources.Content[i] = mergeMapping(s, fresh, sourceRules(&changes))
			return changes, nil
		}
	}
	sources.Content = append(sources.Content, fresh)
	return []string{"new source " + name}, nil
}

func sourceRules(changes *[]string) map[string]rule {
	return map[string]rule{
		"description": keepDescription,
		"config":      keepConfig(false),
		"tables": func(old, fresh *yaml.Node) *yaml.Node {
			return mergeList(old, fresh, "table", changes, func(o, f *yaml.Node) *yaml.Node {
				return mergeMapping(o, f, tableRules(get(f, "name").Value, changes))
			})
		},
	}
}

func tableRules(table string, changes *[]string) map[string]rule {
	return map[string]rule{
		"description": keepDescription,
		"config":      keepConfig(true),
		"columns": func(old, fresh *yaml.Node) *yaml.Node {
			return mergeList(old, fresh, "column "+table+".", changes, func(o, f *yaml.Node) *yaml.Node {
				return mergeMapping(o, f, columnRules(o))
			})
		},
	}
}

func columnRules(old *yaml.Node) map[string]rule {
	rules := map[string]rule{"description": keepDescription, "data_tests": unionTests, "meta": mergeMeta}
	if tests := get(old, "tests"); tests != nil && get(old, "data_tests") == nil {
		// the file uses dbt's older key: the generated tests join it
		rules["data_tests"] = func(_, fresh *yaml.Node) *yaml.Node {
			unionTests(tests, fresh)
			return nil
		}
	}
	return rules
}

// mergeMapping is fresh's keys, in fresh's order, each merged by its rule
// (default: the generated value, carrying the old value's comments), then
// the keys only old has. Old key nodes are reused, keeping their comments.
func mergeMapping(old, fresh *yaml.Node, rules map[string]rule) *yaml.Node {
	if old == nil || old.Kind != yaml.MappingNode {
		return fresh
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Style: old.Style, HeadComment: old.HeadComment, LineComment: old.LineComment, FootComment: old.FootComment}
	done := map[string]bool{}
	for i := 0; i+1 < len(fresh.Content); i += 2 {
		k, f := fresh.Content[i], fresh.Content[i+1]
		ok, o := pair(old, k.Value)
		var v *yaml.Node
		if r, has := rules[k.Value]; has {
			v = r(o, f)
		} else {
			v = f
			if o != nil {
				v.HeadComment, v.LineComment, v.FootComment = o.HeadComment, o.LineComment, o.FootComment
			}
		}
		done[k.Value] = true
		if v == nil {
			continue
		}
		if ok != nil {
			k = ok
		}
		out.Content = append(out.Content, k, v)
	}
	for i := 0; i+1 < len(old.Content); i += 2 {
		if k := old.Content[i]; !done[k.Value] {
			if r, has := rules[k.Value]; has && r(old.Content[i+1], nil) == nil {
				continue
			}
			out.Content = append(out.Content, k, old.Content[i+1])
		}
	}
	return out
}

// mergeList merges two lists of named mappings: old's items in old's order
// (merged with fresh's of the same name, or removed when fresh has none),
// then fresh's new items. what names the items in changes.
func mergeList(old, fresh *yaml.Node, what string, changes *[]string, merge func(o, f *yaml.Node) *yaml.Node) *yaml.Node {
	if fresh == nil {
		return old
	}
	if old == nil || old.Kind != yaml.SequenceNode {
		return fresh
	}
	byName := map[string]*yaml.Node{}
	for _, f := range fresh.Content {
		byName[get(f, "name").Value] = f
	}
	out := &yaml.Node{Kind: yaml.SequenceNode, Style: old.Style, HeadComment: old.HeadComment, LineComment: old.LineComment, FootComment: old.FootComment}
	seen := map[string]bool{}
	for _, o := range old.Content {
		n := get(o, "name")
		if n == nil {
			out.Content = append(out.Content, o) // not ours to judge
			continue
		}
		f, ok := byName[n.Value]
		if !ok {
			*changes = append(*changes, "removed "+what+n.Value+" (no longer in raw)")
			continue
		}
		seen[n.Value] = true
		out.Content = append(out.Content, merge(o, f))
	}
	for _, f := range fresh.Content {
		if n := get(f, "name").Value; !seen[n] {
			*changes = append(*changes, "new "+what+n)
			out.Content = append(out.Content, f)
		}
	}
	return out
}

// keepDescription keeps a description a person wrote; a generated one is
// refreshed.
func keepDescription(old, fresh *yaml.Node) *yaml.Node {
	if fresh == nil {
		return old
	}
	if old == nil || old.Kind != yaml.ScalarNode {
		return fresh
	}
	for _, p := range generatedPrefixes {
		if strings.HasPrefix(old.Value, p) {
			fresh.HeadComment, fresh.LineComment, fresh.FootComment = old.HeadComment, old.LineComment, old.FootComment
			return fresh
		}
	}
	return old
}

// keepConfig keeps the file's config and adds the generated keys it lacks;
// table (true for a table's config) leaves loaded_at_query out where the
// file sets a loaded_at_field of its own (dbt refuses both).
func keepConfig(table bool) rule {
	return func(old, fresh *yaml.Node) *yaml.Node {
		if fresh == nil || old == nil || old.Kind != yaml.MappingNode {
			if old != nil {
				return old
			}
			return fresh
		}
		for i := 0; i+1 < len(fresh.Content); i += 2 {
			k := fresh.Content[i].Value
			if get(old, k) != nil || (table && k == "loaded_at_query" && get(old, "loaded_at_field") != nil) {
				continue
			}
			old.Content = append(old.Content, fresh.Content[i], fresh.Content[i+1])
		}
		return old
	}
}

// unionTests is old's tests plus the generated ones it lacks.
func unionTests(old, fresh *yaml.Node) *yaml.Node {
	if fresh == nil || old == nil || old.Kind != yaml.SequenceNode {
		if old != nil {
			return old
		}
		return fresh
	}
	have := map[string]bool{}
	for _, t := range old.Content {
		have[testName(t)] = true
	}
	for _, t := range fresh.Content {
		if !have[testName(t)] {
			old.Content = append(old.Content, t)
		}
	}
	return old
}

// testName is a test's name: the scalar, or the key of a one-key mapping
// ({unique: {config: …}}).
func testName(n *yaml.Node) string {
	if n.Kind == yaml.MappingNode && len(n.Content) > 0 {
		return n.Content[0].Value
	}
	return n.Value
}

// mergeMeta is the generated meta with the file's other meta keys kept.
func mergeMeta(old, fresh *yaml.Node) *yaml.Node {
	if fresh == nil {
		return old
	}
	if old == nil || old.Kind != yaml.MappingNode {
		return fresh
	}
	for i := 0; i+1 < len(old.Content); i += 2 {
		if get(fresh, old.Content[i].Value) == nil {
			fresh.Content = append(fresh.Content, old.Content[i], old.Content[i+1])
		}
	}
	return fresh
}

// get is the value of key in mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	_, v := pair(m, key)
	return v
}

// pair is the key and value nodes of key in mapping m, or nils.
func pair(m *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}
