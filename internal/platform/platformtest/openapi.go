package platformtest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/agenthost/agenthost/internal/platform/api"
)

// The platform's OpenAPI document as a response validator, built once;
// the validator is not documented as safe for concurrent use.
var (
	oaOnce sync.Once
	oaMu   sync.Mutex
	oaVal  validator.Validator
	oaErr  error
)

// OpenAPIValidator returns the validator of api.OpenAPI, or why the
// document does not load.
func OpenAPIValidator() (validator.Validator, error) {
	oaOnce.Do(func() {
		doc, err := libopenapi.NewDocument(api.OpenAPI)
		if err != nil {
			oaErr = fmt.Errorf("openapi: %w", err)
			return
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			oaErr = fmt.Errorf("openapi: %v", errs)
			return
		}
		oaVal = v
	})
	return oaVal, oaErr
}

// CheckResponse validates one real answer against the platform's OpenAPI
// document: its status is documented for the operation and its body
// matches the schema. Answers to paths the document does not have (the
// dashboard's files) are not checked here; TestOpenAPIRoutes holds the
// document to the registered routes.
func CheckResponse(req *http.Request, status int, header http.Header, body []byte) []string {
	v, err := OpenAPIValidator()
	if err != nil {
		return []string{err.Error()}
	}
	resp := &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)), Request: req}
	oaMu.Lock()
	ok, errs := v.ValidateHttpResponse(req, resp)
	oaMu.Unlock()
	if ok {
		return nil
	}
	var out []string
	for _, e := range errs {
		if e.ValidationType == "path" {
			return nil // not an API route
		}
		msg := e.Message
		if e.Reason != "" {
			msg += ": " + e.Reason
		}
		for _, se := range e.SchemaValidationErrors {
			msg += "; " + se.Reason + " at " + se.FieldPath
		}
		out = append(out, msg)
	}
	return out
}
