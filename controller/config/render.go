package config

import (
	"reflect"

	"go.yaml.in/yaml/v3"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// YAML renders the configuration as a file would spell it, every key in
// schema order with its effective value (defaults filled in), secrets
// redacted. Unset keys are left out, so the output loads again.
func (c *Config) YAML() []byte {
	b, err := yaml.Marshal(node(reflect.ValueOf(c).Elem()))
	if err != nil {
		panic("config: rendering YAML: " + err.Error()) // only scalars and mappings: cannot fail
	}
	return b
}

// Tree is the configuration as nested maps and lists (for JSON), with the
// values and omissions of YAML.
func (c *Config) Tree() map[string]any {
	var out map[string]any
	if err := node(reflect.ValueOf(c).Elem()).Decode(&out); err != nil {
		panic("config: decoding the rendered tree: " + err.Error())
	}
	return out
}

func node(v reflect.Value) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode}
	t := v.Type()
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		fv := v.Field(i)
		ft := fv.Type()
		var n *yaml.Node
		switch {
		case ft.Kind() == reflect.Struct && !leafTypes[ft]:
			n = node(fv)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			if fv.Len() == 0 {
				continue
			}
			n = &yaml.Node{Kind: yaml.MappingNode}
			for _, name := range mapKeys(fv, reflect.Value{}) {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, node(fv.MapIndex(reflect.ValueOf(name))))
			}
		case ft.Kind() == reflect.Slice:
			if fv.Len() == 0 {
				continue
			}
			n = &yaml.Node{Kind: yaml.SequenceNode}
			for j := range fv.Len() {
				if ft.Elem().Kind() == reflect.Struct && !leafTypes[ft.Elem()] {
					n.Content = append(n.Content, node(fv.Index(j)))
				} else {
					n.Style = yaml.FlowStyle
					n.Content = append(n.Content, scalar(fv.Index(j)))
				}
			}
		default:
			if n = scalar(fv); n == nil {
				continue
			}
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: tag}, n)
	}
	return m
}

// scalar renders a leaf; nil when it is unset.
func scalar(v reflect.Value) *yaml.Node {
	if s, ok := v.Interface().(ipsec.Secret); ok {
		if s.IsZero() {
			return nil
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s.String()}
	}
	val := render(v)
	tag := "!!str"
	switch v.Kind() {
	case reflect.Bool:
		tag = "!!bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		switch v.Type() {
		case typeDuration:
		case typeRate, typeSize:
			if v.Uint() == 0 {
				return nil // unset
			}
		case typeDSCP:
		default:
			tag = "!!int"
		}
	case reflect.Float32, reflect.Float64:
		tag = "!!float"
		if v.Float() == float64(int64(v.Float())) {
			tag = "!!int" // 10, not !!float 10; the loader takes either
		}
	case reflect.String:
		if val == "" {
			return nil
		}
	}
	if val == "" {
		return nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: val}
}
