package ipsec_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestSecretRedactsEverywhere(t *testing.T) {
	s := ipsec.NewSecret(testPSK)
	cfg := pskConfig("192.0.2.50")
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outputs["secret "+verb] = fmt.Sprintf(verb, s)
		outputs["config "+verb] = fmt.Sprintf(verb, cfg)
		outputs["pointer "+verb] = fmt.Sprintf(verb, &cfg.Auth)
	}
	outputs["String"] = s.String()
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(j)
	var b strings.Builder
	enc := zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig())
	buf, err := enc.EncodeEntry(zapcore.Entry{Message: "x"}, []zapcore.Field{
		zap.Any("secret", s), zap.Any("auth", cfg.Auth), zap.Stringer("s", s), zap.Reflect("cfg", cfg),
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Write(buf.Bytes())
	outputs["zap"] = b.String()
	for what, out := range outputs {
		if strings.Contains(out, testPSK) || strings.Contains(out, fmt.Sprintf("%x", testPSK)) {
			t.Errorf("%s leaks the secret: %s", what, out)
		}
	}
	if !strings.Contains(outputs["secret %v"], "redacted") {
		t.Errorf("secret prints as %q", outputs["secret %v"])
	}
	var back ipsec.Secret
	if err := back.UnmarshalText([]byte("k")); err != nil || back.IsZero() {
		t.Errorf("UnmarshalText: %v, zero %v", err, back.IsZero())
	}
}

func TestSecretValue(t *testing.T) {
	s := ipsec.NewSecret(testPSK)
	if s.Reveal() != testPSK || s.Len() != len(testPSK) || s.IsZero() {
		t.Errorf("Reveal %q, Len %d, IsZero %v", s.Reveal(), s.Len(), s.IsZero())
	}
	var zero ipsec.Secret
	if !zero.IsZero() || zero.String() != "" || fmt.Sprint(zero) != "" {
		t.Errorf("unset secret prints %q / %q, want empty", zero.String(), fmt.Sprint(zero))
	}
	if got := fmt.Sprintf("%#v", s); got != `ipsec.Secret("<redacted>")` {
		t.Errorf("%%#v = %s", got)
	}
	for _, tc := range []struct {
		a, b ipsec.Secret
		want bool
	}{
		{s, ipsec.NewSecret(testPSK), true},
		{s, ipsec.NewSecret(testPSK + "x"), false},
		{s, ipsec.NewSecret(strings.ToUpper(testPSK)), false},
		{s, zero, false},
		{zero, ipsec.NewSecret(""), true},
	} {
		if got := tc.a.Equal(tc.b); got != tc.want {
			t.Errorf("Equal(%d bytes, %d bytes) = %v, want %v", tc.a.Len(), tc.b.Len(), got, tc.want)
		}
	}
}

// TestSecretNotLogged runs a full session at debug level, including a
// refused load-shared, and checks that no log entry carries the key while
// charon did receive it.
func TestSecretNotLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, pskConfig("192.0.2.50"), []ipsec.Peer{plainHub})
		h.waitCmd("initiate", isCmd("initiate"))
		h.srv.Handle("load-shared", func(req *vicitest.Message) ([]*vicitest.Message, *vicitest.Message) {
			return nil, vicitest.Failure("invalid data: " + req.String("data"))
		})
		h.restartCharon(h.firstBackoff(), false)
		h.waitCmd("refused load-shared", func(c vicitest.Command) bool {
			return c.Name == "load-shared" && h.srv.Accepts() >= 3
		})
		if got := h.srv.Commands()[2].Message.String("data"); got != testPSK {
			t.Fatalf("charon got key %q", got)
		}
		h.waitState("reconnect attempt logged", func(ipsec.State) bool {
			return h.logs.FilterMessage("charon session failed, reconnecting").Len() >= 2
		})
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		for _, e := range h.logs.All() {
			buf, err := enc.EncodeEntry(e.Entry, e.Context)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(buf.String(), testPSK) {
				t.Errorf("log entry leaks the key: %s", buf.String())
			}
		}
	})
}
