package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// TestConfigSecretsNeverPrint: a whole Config, printed, marshaled or logged
// by reflection, carries its secrets redacted (ipsec.Secret's own printers
// are tested in ipsec).
func TestConfigSecretsNeverPrint(t *testing.T) {
	s := ipsec.NewSecret("hunter2")
	c := Config{NHRP: NHRP{Authentication: s}, IPsec: IPsec{Auth: IPsecAuth{PSK: s}}}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, c))
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(b))
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zap.DebugLevel))
	log.Info("cfg", zap.Any("secret", s), zap.Stringer("s2", s), zap.Object("s3", s), zap.Any("config", c))
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(o, "hunter2") || strings.Contains(o, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("secret leaked: %s", o)
		}
	}
	if !strings.Contains(fmt.Sprint(s), "<redacted>") || !strings.Contains(string(b), `redacted`) {
		t.Errorf("redaction marker missing: %s / %s", fmt.Sprint(s), b)
	}
}
