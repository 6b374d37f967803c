package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// MaxBodyBytes bounds every request body; larger ones are answered 413.
const MaxBodyBytes = 1 << 20

// readBody reads the whole (already size-limited) body. On failure it has
// answered the request (413, or 400) and returns ok false.
func readBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeBodyError(w, err)
		return nil, false
	}
	return body, true
}

func writeBodyError(w http.ResponseWriter, err error) {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeProblem(w, tooLarge())
		return
	}
	writeProblem(w, newProblem(http.StatusBadRequest, ProblemMalformed, "Malformed request",
		"the request body could not be read"))
}

func tooLarge() *Problem {
	return newProblem(http.StatusRequestEntityTooLarge, ProblemTooLarge, "Request too large",
		fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes))
}

// decodeJSON decodes body, which must hold exactly one JSON object of v's
// shape: no unknown fields, no wrong types, nothing after it. On failure it
// answers 400 and returns false.
func decodeJSON(w http.ResponseWriter, body []byte, v any) bool {
	if err := strictUnmarshal(body, v); err != nil {
		writeProblem(w, newProblem(http.StatusBadRequest, ProblemMalformed, "Malformed request", err.Error()))
		return false
	}
	return true
}

func strictUnmarshal(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return errors.New("the request body is empty; a JSON object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	// Into a struct, only an object or null decodes without error, and
	// null would leave v empty: it is a wrong type like any other.
	if trimmed[0] != '{' {
		return errors.New("the request body must be a JSON object, not null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("the request body holds more than one JSON value")
	}
	return nil
}

// describeJSONError turns a decoding error into a message for the client
// that names the field, without Go type names.
func describeJSONError(err error) error {
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("malformed JSON at byte %d: %v", e.Offset, e)
	}
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if e.Field == "" {
			return fmt.Errorf("the request body must be a JSON object, not %s", e.Value)
		}
		return fmt.Errorf("field %q must be %s, not %s", e.Field, jsonKind(e.Type.Kind().String()), e.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("malformed JSON: unexpected end of input")
	}
	// The remaining decoder errors (unknown field, ...) are already phrased
	// for JSON ("json: unknown field \"x\"").
	return fmt.Errorf("malformed request: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	default:
		return "an object"
	}
}

// marshal encodes v as one line of JSON (with a trailing newline), without
// escaping HTML characters: these bodies are JSON, not markup.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) { jsonAnswer(status, v).write(w) }

func writeRaw(w http.ResponseWriter, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
