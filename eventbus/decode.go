package eventbus

import (
	"encoding/json"
	"fmt"
)

// Decode returns e.Data as a T. It works the same in-process and after a
// wire: when Data holds a T (or a *T) it is returned as is; when it holds
// JSON ([]byte or json.RawMessage) it is unmarshalled; otherwise it is
// converted through JSON (a map into a struct, say).
func Decode[T any](e Event) (T, error) {
	var v T
	switch d := e.Data.(type) {
	case T:
		return d, nil
	case *T:
		if d != nil {
			return *d, nil
		}
		return v, fmt.Errorf("eventbus: decode %s %s: nil *%T", e.Type, e.ID, v)
	case json.RawMessage:
		return v, unmarshal(e, d, &v)
	case []byte:
		return v, unmarshal(e, d, &v)
	case nil:
		return v, fmt.Errorf("eventbus: decode %s %s: no data", e.Type, e.ID)
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return v, fmt.Errorf("eventbus: decode %s %s: %w", e.Type, e.ID, err)
		}
		return v, unmarshal(e, b, &v)
	}
}

func unmarshal(e Event, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("eventbus: decode %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}
