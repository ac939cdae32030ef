// Package rtcio holds the built-in rules file, so the binary runs the
// reference server's behaviour with no file on disk. The file itself,
// rtcio.yaml at the repository root, is the one users read and copy.
package rtcio

import _ "embed"

// DefaultRules is rtcio.yaml as shipped: the rtc.io quickstart server,
// event for event.
//
//go:embed rtcio.yaml
var DefaultRules []byte

// DefaultRulesName is how errors and logs name the embedded file.
const DefaultRulesName = "rtcio.yaml (built in)"
