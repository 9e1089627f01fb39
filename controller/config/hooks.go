package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

var (
	typeAddr        = reflect.TypeFor[netip.Addr]()
	typePrefix      = reflect.TypeFor[netip.Prefix]()
	typeAddrPort    = reflect.TypeFor[netip.AddrPort]()
	typeDuration    = reflect.TypeFor[time.Duration]()
	typeSecret      = reflect.TypeFor[ipsec.Secret]()
	typeNHSProtocol = reflect.TypeFor[NHSProtocol]()
	typeRate        = reflect.TypeFor[Rate]()
	typeSize        = reflect.TypeFor[Size]()
	typeDSCP        = reflect.TypeFor[DSCP]()
	typeQoSEgress   = reflect.TypeFor[QoSEgress]()
)

// leafTypes are struct types decoded from a scalar by decodeHook; the env
// binder must not descend into them.
var leafTypes = map[reflect.Type]bool{
	typeAddr: true, typePrefix: true, typeAddrPort: true,
	typeSecret: true, typeNHSProtocol: true,
}

// decodeHook converts YAML and environment scalars into the config's types
// with messages that say what was expected. It runs with WeaklyTypedInput
// off, so everything lenient is explicit here.
func decodeHook(from, to reflect.Type, data any) (any, error) {
	if data == nil {
		return data, nil
	}
	switch to {
	case typeAddr:
		return parseScalar(data, scalarString, parseAddr, "an IPv4 or IPv6 address")
	case typePrefix:
		return parseScalar(data, scalarString, netip.ParsePrefix, "an address prefix (like 10.0.0.1/24)")
	case typeAddrPort:
		return parseScalar(data, scalarString, netip.ParseAddrPort, "an address:port (like 10.0.0.1:179)")
	case typeNHSProtocol:
		return parseScalar(data, scalarString, parseNHSProtocol, "")
	case typeSecret:
		s, ok := data.(string)
		if !ok {
			return nil, fmt.Errorf("expected a string, got %s (quote the value)", typeName(data))
		}
		return ipsec.NewSecret(s), nil
	case typeDuration:
		return toDuration(data)
	case typeRate:
		return parseScalar(data, unitString, ParseRate, "")
	case typeSize:
		return parseScalar(data, unitString, ParseSize, "")
	case typeDSCP:
		return parseScalar(data, unitString, ParseDSCP, "")
	case typeQoSEgress:
		if s, ok := data.(string); ok { // "egress: NAME"
			return map[string]any{"group": s}, nil
		}
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return toInt(data, to)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return toUint(data, to)
	case reflect.Float32, reflect.Float64:
		return toFloat(data, to)
	case reflect.Bool:
		return toBool(data)
	case reflect.String:
		if from.Kind() != reflect.String {
			return nil, fmt.Errorf("expected a string, got %s %v (quote the value)", typeName(data), data)
		}
	case reflect.Slice:
		switch d := data.(type) {
		case string:
			// Environment values are comma-separated lists.
			if d == "" {
				return []string{}, nil
			}
			return strings.Split(d, ","), nil
		case []any, []string:
		default:
			return nil, fmt.Errorf("expected a list, got %s", typeName(data))
		}
	case reflect.Struct, reflect.Map:
		if from.Kind() != reflect.Map {
			return nil, fmt.Errorf("expected a mapping, got %s", typeName(data))
		}
	}
	return data, nil
}

// parseScalar reads a scalar as a string with read and parses it. A parse
// error is replaced by "<value> is not <isNot>" unless isNot is empty
// (the parser's own message already says what was expected).
func parseScalar[T any](data any, read func(any) (string, error), parse func(string) (T, error), isNot string) (any, error) {
	s, err := read(data)
	if err != nil {
		return nil, err
	}
	v, err := parse(s)
	if err != nil {
		if isNot != "" {
			return nil, fmt.Errorf("%q is not %s", s, isNot)
		}
		return nil, err
	}
	return v, nil
}

// parseAddr parses an address without zone.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err == nil && a.Zone() != "" {
		err = errors.New("zone")
	}
	return a, err
}

func parseNHSProtocol(s string) (NHSProtocol, error) {
	var p NHSProtocol
	err := p.UnmarshalText([]byte(s))
	return p, err
}

// unitString returns a scalar with an optional unit as a string: numbers
// are taken as they are (no unit).
func unitString(data any) (string, error) {
	switch v := data.(type) {
	case string:
		return v, nil
	case int, int64, uint64:
		return fmt.Sprint(v), nil
	}
	return "", fmt.Errorf("expected a number or a string with a unit, got %s %v", typeName(data), data)
}

func scalarString(data any) (string, error) {
	if s, ok := data.(string); ok {
		return s, nil
	}
	return "", fmt.Errorf("expected a string, got %s %v", typeName(data), data)
}

func typeName(data any) string {
	switch data.(type) {
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case bool:
		return "boolean"
	case int, int64, uint64, float64:
		return "number"
	case string:
		return "string"
	}
	return reflect.TypeOf(data).String()
}

func toDuration(data any) (any, error) {
	switch v := data.(type) {
	case string:
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (like 600s or 10m)", v)
		}
		return d, nil
	case int, int64, uint64, float64:
		return nil, fmt.Errorf("%v has no unit (write %vs)", v, v)
	case time.Duration:
		return v, nil
	}
	return nil, fmt.Errorf("expected a duration (like 600s), got %s", typeName(data))
}

// number returns data as an int64 or float64 when it is numeric or a numeric
// string.
func number(data any) (i int64, f float64, isInt bool, err error) {
	switch v := data.(type) {
	case int:
		return int64(v), 0, true, nil
	case int64:
		return v, 0, true, nil
	case uint64:
		if v > math.MaxInt64 {
			return 0, 0, false, fmt.Errorf("%d is out of range", v)
		}
		return int64(v), 0, true, nil
	case float64:
		return 0, v, false, nil
	case string:
		if n, perr := strconv.ParseInt(v, 0, 64); perr == nil {
			return n, 0, true, nil
		}
		if x, perr := strconv.ParseFloat(v, 64); perr == nil {
			return 0, x, false, nil
		}
		return 0, 0, false, fmt.Errorf("%q is not a number", v)
	}
	return 0, 0, false, fmt.Errorf("expected a number, got %s", typeName(data))
}

// integer returns data as an int64; a fraction is refused.
func integer(data any) (int64, error) {
	i, f, isInt, err := number(data)
	if err != nil {
		return 0, err
	}
	if !isInt {
		return 0, fmt.Errorf("%v is not an integer", f)
	}
	return i, nil
}

func toInt(data any, to reflect.Type) (any, error) {
	i, err := integer(data)
	if err != nil {
		return nil, err
	}
	v := reflect.New(to).Elem()
	if v.OverflowInt(i) {
		return nil, fmt.Errorf("%d is out of range", i)
	}
	v.SetInt(i)
	return v.Interface(), nil
}

func toUint(data any, to reflect.Type) (any, error) {
	i, err := integer(data)
	if err != nil {
		return nil, err
	}
	v := reflect.New(to).Elem()
	if i < 0 || v.OverflowUint(uint64(i)) {
		return nil, fmt.Errorf("%d is out of range (0..%d)", i, uint64(1)<<(to.Bits())-1)
	}
	v.SetUint(uint64(i))
	return v.Interface(), nil
}

func toFloat(data any, to reflect.Type) (any, error) {
	i, f, isInt, err := number(data)
	if err != nil {
		return nil, err
	}
	if isInt {
		f = float64(i)
	}
	v := reflect.New(to).Elem()
	v.SetFloat(f)
	return v.Interface(), nil
}

func toBool(data any) (any, error) {
	switch v := data.(type) {
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not a boolean (true or false)", v)
		}
		return b, nil
	}
	return nil, fmt.Errorf("expected true or false, got %s %v", typeName(data), data)
}
