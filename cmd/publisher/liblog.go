package main

import (
	"io"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// libraryLogger writes what the libraries log on their own (go-redis: its failed dials) to w as
// the command's other messages are: "publisher: redis: …", one line each.
func libraryLogger(w io.Writer) *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zapcore.EncoderConfig{
		NameKey: "logger", MessageKey: "msg", ConsoleSeparator: ": ",
		EncodeName: func(name string, pe zapcore.PrimitiveArrayEncoder) {
			pe.AppendString(strings.ReplaceAll(name, ".", ": "))
		},
	})
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), zap.WarnLevel)).Named("publisher")
}
