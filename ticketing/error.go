package ticketing

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes. The HTTP layer maps each to a status in one function.
const (
	EINVALID  = "invalid"   // the input breaks a rule; Fields says which
	ENOTFOUND = "not_found" // no such concert or ticket
	ECONFLICT = "conflict"  // the request conflicts with the current state (e.g. cancel a pending ticket)
	ESOLDOUT  = "sold_out"  // no seat left (the ticket was rejected)
	EINTERNAL = "internal"  // anything else: a bug or an infrastructure failure
)

// Error is the one error type of the ticketing services. Messages are safe to
// show to the caller. An HTTP layer maps the codes in one place, e.g.
// EINVALID 422 (with Fields), ENOTFOUND 404, ECONFLICT and ESOLDOUT 409,
// anything else 500 (with a generic message: see ErrorMessage).
type Error struct {
	Code    string
	Message string
	Fields  []FieldError // for EINVALID: every broken rule at once
}

// FieldError is one invalid input field. Field is the JSON name.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return fmt.Sprintf("ticketing: %s: %s", e.Code, e.Message)
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return fmt.Sprintf("ticketing: %s: %s (%s)", e.Code, e.Message, strings.Join(parts, "; "))
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the *Error in err's chain, "" for nil, and
// EINTERNAL for any other error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the *Error in err's chain, or
// "internal error" for any other error (whose text may not be for the caller).
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return "internal error"
}
