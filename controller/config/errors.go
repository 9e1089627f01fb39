package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
)

// FieldError is one problem with one field of the configuration.
type FieldError struct {
	// Path is the field's location in the file, e.g. "nhrp.nhs[1].nbma".
	Path string
	// Reason says what is wrong.
	Reason string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return "config: " + e.Reason
	}
	return "config: " + e.Path + ": " + e.Reason
}

func fieldErr(path, format string, args ...any) *FieldError {
	return &FieldError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// FieldErrors extracts every *FieldError from err (joined or wrapped).
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		var fe *FieldError
		switch {
		case e == nil:
		case errors.As(e, &fe) && fe == e:
			out = append(out, fe)
		default:
			if j, ok := e.(interface{ Unwrap() []error }); ok {
				for _, x := range j.Unwrap() {
					walk(x)
				}
				return
			}
			walk(errors.Unwrap(e))
		}
	}
	walk(err)
	return out
}

// translateDecodeError turns mapstructure's (joined) errors into FieldErrors
// that name the field path.
func translateDecodeError(err error) error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		var de *mapstructure.DecodeError
		if errors.As(e, &de) && de == e {
			out = append(out, decodeFieldErrors(de)...)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if inner := errors.Unwrap(e); inner != nil {
			walk(inner)
			return
		}
		out = append(out, &FieldError{Reason: e.Error()})
	}
	walk(err)
	return errors.Join(out...)
}

const invalidKeys = "has invalid keys: "

func decodeFieldErrors(de *mapstructure.DecodeError) []error {
	inner := de.Unwrap()
	msg := inner.Error()
	if keys, ok := strings.CutPrefix(msg, invalidKeys); ok {
		var out []error
		for _, k := range strings.Split(keys, ", ") {
			out = append(out, &FieldError{Path: joinPath(mapPath(de.Name()), k), Reason: "unknown key"})
		}
		return out
	}
	var ute *mapstructure.UnconvertibleTypeError
	if errors.As(inner, &ute) {
		msg = fmt.Sprintf("expected %s, got %s", kindName(ute.Expected.Type()), typeName(ute.Value))
	}
	return []error{&FieldError{Path: mapPath(de.Name()), Reason: msg}}
}

// mapPath spells a map entry of a decode error's path ("qos.groups[g]") as
// the file and the validator do ("qos.groups.g"); list indices stay.
func mapPath(p string) string {
	return rewriteIndices(p, func(inner string) string {
		if _, err := strconv.Atoi(inner); err == nil {
			return "[" + inner + "]"
		}
		return "." + inner
	})
}

// rewriteIndices returns p with each bracketed segment "[x]" replaced by
// what(x); the rest of p is kept.
func rewriteIndices(p string, what func(inner string) string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '[')
		if i < 0 {
			break
		}
		j := strings.IndexByte(p[i:], ']')
		if j < 0 {
			break
		}
		b.WriteString(p[:i])
		b.WriteString(what(p[i+1 : i+j]))
		p = p[i+j+1:]
	}
	b.WriteString(p)
	return b.String()
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return t.String()
}
