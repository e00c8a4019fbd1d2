package host

import "net/http"

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error { return nil }
func (s *Server) docs(w http.ResponseWriter, r *http.Request)          {}
