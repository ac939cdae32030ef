package router

import (
	"encoding/json"
	"io"
	"math"

	"github.com/rtcio/rtcio-router/router/internal/sio"
)

// jsonSafe returns v in a form encoding/json always accepts. The socket.io
// encoder silently drops a value json rejects and sends a bare `42` frame,
// which breaks clients; NaN and ±Inf (0/0 in an expression) are the usual
// culprits, and they become null. Values that are already safe, which is
// nearly all of them, are returned as they are without copying.
func jsonSafe(v any) any {
	if isJSONSafe(v) {
		return v
	}
	return fixJSON(v)
}

// isJSONSafe reports whether v encodes as JSON unchanged, without
// allocating.
func isJSONSafe(v any) bool {
	switch v := v.(type) {
	case nil, string, bool, int, int64, int32, uint, uint64, uint32, []string, *sio.RawJSON:
		return true
	case float64:
		return !math.IsNaN(v) && !math.IsInf(v, 0)
	case []any:
		for _, item := range v {
			if !isJSONSafe(item) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, item := range v {
			if !isJSONSafe(item) {
				return false
			}
		}
		return true
	default:
		return false
	}
}

func fixJSON(v any) any {
	switch v := v.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return v
	case float32:
		return fixJSON(float64(v))
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = jsonSafe(item)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, item := range v {
			out[k] = jsonSafe(item)
		}
		return out
	default:
		// Anything else (a struct, a time) goes through JSON once; what
		// JSON cannot encode becomes null.
		b, err := json.Marshal(v)
		if err != nil {
			return nil
		}
		var back any
		if json.Unmarshal(b, &back) != nil {
			return nil
		}
		return back
	}
}

func jsonEncode(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
